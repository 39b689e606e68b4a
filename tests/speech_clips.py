"""Speech made in the test with espeak-ng, with the truth of where each sentence is."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from conftest import speak

from mmstream.media import AUDIO_RATE, AudioChunk, EndOfStream


@dataclass(frozen=True)
class Spoken:
    text: str
    start: float  # first audible sample (s)
    end: float  # last audible sample (s)


def read_wav(path: Path, rate: int = AUDIO_RATE) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(path), "-ac", "1", "-ar",
                          str(rate), "-f", "f32le", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.float32).copy()


def audible(samples: np.ndarray, rate: int = AUDIO_RATE) -> tuple[int, int]:
    """First and last sample louder than -40 dBFS (espeak pads its output with silence)."""
    loud = np.nonzero(np.abs(samples) > 0.01)[0]
    return int(loud[0]), int(loud[-1])


def conversation(tmp: Path, sentences: list[str], gap_s: float = 1.5, lead_s: float = 1.0,
                 rate: int = AUDIO_RATE) -> tuple[np.ndarray, list[Spoken]]:
    """The sentences one after another, `gap_s` of silence between, and where each one is."""
    tmp.mkdir(parents=True, exist_ok=True)
    parts, truth, at = [np.zeros(int(lead_s * rate), np.float32)], [], int(lead_s * rate)
    for index, text in enumerate(sentences):
        clip = read_wav(speak(text, tmp / f"sentence{index}.wav"), rate)
        a, b = audible(clip, rate)
        clip = clip[a:b + 1]
        truth.append(Spoken(text, at / rate, (at + len(clip)) / rate))
        parts += [clip, np.zeros(int(gap_s * rate), np.float32)]
        at += len(clip) + int(gap_s * rate)
    return np.concatenate(parts), truth


def chunks(samples: np.ndarray, stream_id: str = "mic0", t0: float = 0.0,
           size: int = AUDIO_RATE // 10) -> list[AudioChunk | EndOfStream]:
    """The items a source would yield for `samples`, then the end of the stream."""
    items: list[AudioChunk | EndOfStream] = [
        AudioChunk(stream_id, round(t0 + i / AUDIO_RATE, 6), samples[i:i + size].copy())
        for i in range(0, len(samples), size)]
    return [*items, EndOfStream(stream_id, t0 + len(samples) / AUDIO_RATE)]


def white_noise(seconds: float, level: float = 0.1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * AUDIO_RATE)) * level).astype(np.float32)
