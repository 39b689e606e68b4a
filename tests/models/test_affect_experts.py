"""Voice prosody and text affect experts: features from real (espeak-ng) speech and text."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from mmstream.events import EMOTIONS
from mmstream.models import prosody, text_affect
from mmstream.models.affect_experts import TextExpert, VoiceExpert

RATE = 16_000
SENTENCE = "I cannot believe what just happened here, this is the moment we waited for"


@pytest.fixture(autouse=True)
def _no_grad() -> object:
    with torch.no_grad():
        yield


def _espeak(tmp_path: Path, name: str, *args: str) -> np.ndarray:
    import subprocess

    raw, out = tmp_path / f"{name}.raw.wav", tmp_path / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", *args, "-w", str(raw), SENTENCE], check=True,
                   capture_output=True)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(raw), "-ac", "1", "-ar",
                    str(RATE), str(out)], check=True)
    with wave.open(str(out)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    return pcm.astype(np.float32) / 32768


def _arousal(samples: np.ndarray) -> float:
    feats = prosody.prosody_features(samples)
    assert feats.present, feats.as_dict()
    _, _, arousal = VoiceExpert()(torch.from_numpy(feats.vector[None]))
    return float(arousal)


def test_pitch_of_a_voiced_tone_is_measured() -> None:
    t = np.arange(2 * RATE) / RATE
    syllables = (1 + np.sin(2 * np.pi * 4 * t)) / 2  # 4 Hz loudness modulation like speech
    tone = (0.3 * np.sin(2 * np.pi * 200 * t) * syllables).astype(np.float32)
    feats = prosody.prosody_features(tone).as_dict()
    assert abs(feats["f0_median_hz"] - 200) < 5
    assert feats["voiced_fraction"] > 0.7
    assert 2.5 <= feats["speaking_rate_hz"] <= 5.5  # ~4 loudness peaks a second


@pytest.mark.parametrize("name", ["silence", "white noise", "steady hum", "too short"])
def test_no_voice_is_absent_not_neutral(name: str) -> None:
    t = np.arange(2 * RATE) / RATE
    signal = {
        "silence": np.zeros(2 * RATE),
        "white noise": 0.1 * np.random.default_rng(0).standard_normal(2 * RATE),
        "steady hum": 0.3 * np.sin(2 * np.pi * 100 * t),
        "too short": 0.3 * np.sin(2 * np.pi * 150 * t[:1000]),
    }[name]
    feats = prosody.prosody_features(signal.astype(np.float32))
    assert not feats.present and feats.confidence == 0.0


def test_excited_speech_has_more_arousal_than_calm_speech(tmp_path: Path) -> None:
    excited = _espeak(tmp_path, "excited", "-p", "85", "-s", "230", "-a", "180")
    normal = _espeak(tmp_path, "normal")
    calm = _espeak(tmp_path, "calm", "-p", "15", "-s", "95", "-a", "40")
    a_excited, a_normal, a_calm = (_arousal(x[: 3 * RATE]) for x in (excited, normal, calm))
    assert a_excited > a_normal > a_calm
    feats = prosody.prosody_features(excited[: 3 * RATE])
    assert feats.confidence > 0.5
    probs, valence, _ = VoiceExpert()(torch.from_numpy(feats.vector[None]))
    assert abs(float(probs.sum()) - 1) < 1e-5 and -1 <= float(valence) <= 1
    calm_feats = prosody.prosody_features(calm[: 3 * RATE])
    calm_probs, _, _ = VoiceExpert()(torch.from_numpy(calm_feats.vector[None]))
    high = [EMOTIONS.index(e) for e in ("angry", "surprise", "fear")]
    assert float(probs[0, high].sum()) > float(calm_probs[0, high].sum())


@pytest.mark.parametrize(("text", "emotion", "sign"), [
    ("I am very happy today, this is wonderful.", "happy", 1),
    ("I am so angry, this is terrible and I hate it!", "angry", -1),
    ("I feel sad and lonely.", "sad", -1),
    ("I am scared, something is wrong, help!", "fear", -1),
    ("The coffee is on the table.", "neutral", 0),
])
def test_text_affect_reads_emotion_and_valence(text: str, emotion: str, sign: int) -> None:
    feats = text_affect.text_features(text, asr_confidence=0.9)
    assert feats.present and 0 < feats.confidence <= 0.9
    probs, valence = TextExpert()(torch.from_numpy(feats.vector[None]))
    assert EMOTIONS[int(probs.argmax())] == emotion
    if sign:
        assert float(valence) * sign > 0.3
    else:
        assert abs(float(valence)) < 0.5


def test_no_words_means_no_text_modality() -> None:
    for text in ("", "   ", "..."):
        feats = text_affect.text_features(text)
        assert not feats.present and feats.confidence == 0.0
    short = text_affect.text_features("yes", asr_confidence=0.9)
    assert short.present and short.confidence < 0.3  # one word says little
