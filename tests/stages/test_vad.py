"""Silero VAD run incrementally, and the utterance state machine on real speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmstream.media import AUDIO_RATE
from mmstream.stages.vad import (
    FRAME,
    Pause,
    SileroVad,
    Utterance,
    UtteranceSegmenter,
    VadSettings,
)
from tests.speech_clips import conversation, white_noise


def utterances(samples: np.ndarray, settings: VadSettings | None = None,
               chunk: int = 1600) -> list[tuple[float, float]]:
    vad, segmenter = SileroVad(), UtteranceSegmenter(settings or VadSettings())
    found = []
    for i in range(0, len(samples), chunk):
        found += segmenter.push(vad(samples[i:i + chunk]))
    last = segmenter.finish()
    found += [last] if last is not None else []
    return [(u.start / AUDIO_RATE, u.end / AUDIO_RATE) for u in found]


def test_incremental_vad_matches_one_pass_over_the_whole_clip(tmp_path: Path) -> None:
    from faster_whisper.vad import get_vad_model

    audio, _ = conversation(tmp_path, ["Incremental voice activity detection."])
    audio = audio[: len(audio) // FRAME * FRAME]
    whole = get_vad_model()(audio).reshape(-1)
    vad, rng, pieces, at = SileroVad(), np.random.default_rng(1), [], 0
    while at < len(audio):  # odd chunk sizes, as live blocks come
        size = int(rng.integers(50, 4000))
        pieces.append(vad(audio[at:at + size]))
        at += size
    streamed = np.concatenate(pieces)
    assert len(streamed) == len(whole)
    np.testing.assert_allclose(streamed, whole, atol=1e-5)
    assert streamed.max() > 0.9 and streamed[:20].max() < 0.1  # speech found, lead-in silent


def test_two_sentences_give_two_utterances_at_the_right_times(tmp_path: Path) -> None:
    audio, truth = conversation(tmp_path, ["The garage door is open.",
                                           "Please close it before dinner."], gap_s=1.5)
    found = utterances(audio)
    assert len(found) == 2, found
    for (start, end), spoken in zip(found, truth, strict=True):
        assert abs(start - spoken.start) < 0.15 and abs(end - spoken.end) < 0.3, (found, truth)


def test_silence_and_white_noise_are_not_speech() -> None:
    quiet = np.zeros(5 * AUDIO_RATE, np.float32)
    assert utterances(quiet) == []
    assert utterances(white_noise(5.0, level=0.05)) == []
    assert utterances(white_noise(5.0, level=0.3, seed=2)) == []


def test_short_bursts_are_dropped_by_min_speech(tmp_path: Path) -> None:
    audio, _ = conversation(tmp_path, ["Hi."], gap_s=1.0)
    assert len(utterances(audio)) == 1
    assert utterances(audio, VadSettings(min_speech_ms=2000)) == []


def frames_of(*runs: tuple[float, int]) -> np.ndarray:
    """Probabilities: (value, how many 32 ms frames) runs."""
    return np.concatenate([np.full(n, p, np.float32) for p, n in runs])


def test_long_speech_is_cut_at_its_latest_pause() -> None:
    settings = VadSettings(max_speech_s=5.0, min_silence_ms=500)
    segmenter = UtteranceSegmenter(settings)
    # 4 s of speech, a 160 ms pause (too short to end it), then speech on past the limit
    probs = frames_of((0.0, 10), (0.9, 125), (0.1, 5), (0.9, 100), (0.0, 30))
    found = segmenter.push(probs)
    assert [u.cut for u in found] == [True, False]
    cut, rest = found
    assert cut.start == 10 * FRAME and cut.end == 135 * FRAME  # at the pause, not mid-speech
    assert rest.start == 140 * FRAME  # the next piece starts where speech resumed
    assert (cut.end - cut.start) / AUDIO_RATE <= settings.max_speech_s


@pytest.mark.parametrize("dip_at", [100, 140])
def test_long_speech_without_pause_is_cut_at_the_weakest_frame(dip_at: int) -> None:
    settings = VadSettings(max_speech_s=5.0)
    probs = np.full(200, 0.95, np.float32)
    probs[dip_at] = 0.55  # a word boundary the VAD barely notices (still above threshold)
    found = UtteranceSegmenter(settings).push(probs)
    assert found and found[0].cut
    assert found[0].end == dip_at * FRAME


def test_a_pause_is_reported_once_and_the_speech_may_end_there() -> None:
    """With `pause_ms`, a silence inside speech is reported when it has lasted that long (in
    whole frames, and never shorter than the padding a final needs); ending the utterance there
    gives the speech up to the silence, as the full hang-over would have."""
    settings = VadSettings(min_silence_ms=500, speech_pad_ms=200, pause_ms=150)
    assert settings.pause_frames == 7  # 200 ms (the padding) = 6.25 frames -> 7
    segmenter = UtteranceSegmenter(settings)
    found = [segmenter.step(p) for p in frames_of((0.0, 10), (0.9, 40), (0.1, 8)).tolist()]
    pauses = [(i, x) for i, x in enumerate(found) if isinstance(x, Pause)]
    assert [i for i, _ in pauses] == [10 + 40 + 7 - 1]  # once, on the 7th silent frame
    assert pauses[0][1] == Pause(10 * FRAME, 50 * FRAME)
    assert segmenter.end_at_pause() == Utterance(10 * FRAME, 50 * FRAME)
    assert not segmenter.in_speech
    # without ending it there, the hang-over ends the same speech later
    late = UtteranceSegmenter(settings).push(frames_of((0.0, 10), (0.9, 40), (0.1, 20)))
    assert late == [Utterance(10 * FRAME, 50 * FRAME)]
    assert VadSettings().pause_frames is None  # off by default
    assert VadSettings(pause_ms=600).pause_frames is None  # not shorter than min_silence
