"""Live transcription of real recordings (tests/data/speech): what was said, and nothing else.

Whisper's words differ a little between CPUs, so the assertions leave margins: a WER bound on
words normalised as people read them, counts of finals, and where they lie."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmstream.config import FAST, TranscribeConfig
from mmstream.events import TranscriptEvent
from mmstream.media import AUDIO_RATE
from mmstream.runtime.harness import run_stage
from mmstream.stages.transcribe import TranscribeStage
from tests.speech_clips import chunks, read_wav, white_noise
from tests.word_errors import word_error_rate

SPEECH = Path(__file__).resolve().parent.parent / "data" / "speech"
SILENCE_AFTER_S = 4.0
CONTRACTIONS = {"i'm": "i am", "that's": "that is", "can't": "can not", "cannot": "can not"}


def said(path: str) -> str:
    with (SPEECH / "transcripts.tsv").open(newline="") as handle:
        return next(r["text"] for r in csv.DictReader(handle, delimiter="\t") if r["file"] == path)


def plain(text: str) -> str:
    """As people read it: contractions spelled out (whisper writes either)."""
    words = re.sub(r"[^\w' ]+", " ", text.lower()).split()
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def recording(path: str, silence_after_s: float = SILENCE_AFTER_S) -> np.ndarray:
    return np.concatenate([np.zeros(AUDIO_RATE // 2, np.float32), read_wav(SPEECH / path),
                           np.zeros(int(silence_after_s * AUDIO_RATE), np.float32)])


async def finals_of(audio: np.ndarray, **config: Any) -> list[TranscriptEvent]:
    out = await run_stage(TranscribeStage(TranscribeConfig(**config), policy=FAST),
                          chunks(audio))
    return [e for e in out if isinstance(e, TranscriptEvent) and e.payload.final]


@pytest.mark.slow
@pytest.mark.parametrize("path", ["invalid.flac", "queue-periodic-announce.flac"])
async def test_silence_after_a_real_voice_adds_no_words(path: str) -> None:
    """Where whisper tiny.en, given the silence after these, wrote "Please try again. Please
    try again." and "... representative. time.": the finals hold what was said."""
    finals = await finals_of(recording(path))
    text = " ".join(e.payload.text for e in finals)
    assert finals and word_error_rate(plain(said(path)), plain(text)) <= 0.15, text
    speech_end = 0.5 + len(read_wav(SPEECH / path)) / AUDIO_RATE
    assert all(w.start < speech_end for e in finals for w in e.payload.words), text


@pytest.mark.slow
@pytest.mark.parametrize("pause_s", [0.22, 0.6])
async def test_a_pause_inside_a_sentence_loses_no_words(pause_s: float) -> None:
    """"Please enter a new extension, followed by pound." with its own pause at the comma
    (0.22 s): shorter than a sentence's end, one final. Stretched to 0.6 s, the words before
    it read as a finished sentence and whisper is sure of them, so the pause may end it there
    (issue 32: a finished sentence ends at 300 ms): then the rest is its own final, decoded
    whole, and no word is lost either way."""
    voice = read_wav(SPEECH / "agent-newlocation.flac")
    at = int(1.95 * AUDIO_RATE)  # inside the recording's own pause (1.84-2.06 s)
    stretched = np.concatenate([voice[:at], np.zeros(int((pause_s - 0.22) * AUDIO_RATE),
                                                     np.float32), voice[at:]])
    audio = np.concatenate([np.zeros(AUDIO_RATE // 2, np.float32), stretched,
                            np.zeros(int(SILENCE_AFTER_S * AUDIO_RATE), np.float32)])
    finals = await finals_of(audio)
    texts = [e.payload.text for e in finals]
    if pause_s < 0.3:
        assert len(finals) == 1, texts
    assert 1 <= len(finals) <= 2, texts
    heard = " ".join(texts)
    assert word_error_rate(plain(said("agent-newlocation.flac")), plain(heard)) <= 0.25, texts
    assert finals[0].payload.start < 0.5 + 1.84 and finals[-1].payload.end > 0.5 + 1.95 + (
        pause_s - 0.22) + 0.5  # both sides of the pause are in a final


@pytest.mark.slow
async def test_room_noise_music_and_knocks_give_no_transcript() -> None:
    rng = np.random.default_rng(4)
    t = np.arange(8 * AUDIO_RATE) / AUDIO_RATE
    notes = np.repeat(220 * 2 ** (rng.integers(0, 12, size=16) / 12), AUDIO_RATE // 2)
    music = 0.15 * np.sin(2 * np.pi * np.cumsum(notes) / AUDIO_RATE).astype(np.float32)
    hum = (0.05 * np.sin(2 * np.pi * 50 * t) + 0.03 * np.sin(2 * np.pi * 100 * t))
    knocks = white_noise(8.0, level=0.003, seed=9)
    for at in rng.uniform(0, 7.8, size=6):
        k = int(at * AUDIO_RATE)
        knocks[k:k + 800] += (0.5 * rng.standard_normal(800) * np.exp(-np.arange(800) / 120))
    audio = np.concatenate([music, hum.astype(np.float32), knocks, white_noise(6.0, 0.05)])
    out = await run_stage(TranscribeStage(TranscribeConfig(), policy=FAST), chunks(audio))
    assert [e for e in out if isinstance(e, TranscriptEvent)] == []
