"""Sets of real speech for the speech benchmark, built from recordings of real people.

The source is `../shared/speech-dev/` (60 prompts of one real voice with their transcripts; set
MMSTREAM_SPEECH_DEV to use another folder of the same shape: WAVs + `transcripts.tsv` with
columns file, text). From it:

- `clean`: the recordings one by one, as the issue measured them (each spoken, then silence);
- `talks`: three or four recordings joined with natural gaps of 0.3-0.9 s, like one person
  talking on (pauses inside what is said: the endpointer's hard case);
- `noisy`: the talks in a room (sox reverb) with pink noise at 10 dB SNR;
- `nonspeech`: no voice at all (silence, room noise, hum, music-like tones, clicks and knocks),
  for counting finals made only of words that were not said.

Every clip is 16 kHz mono float32 with `SILENCE_AFTER_S` of silence (or of its room noise) at
its end; references are normalised by `normalise_text` (lower case, no punctuation, digits
spelled out), so the WER compares words, not formatting.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

AUDIO_RATE = 16_000
SILENCE_AFTER_S = 4.0
REPO = Path(__file__).resolve().parent.parent
SPEECH_DEV = Path(os.environ.get("MMSTREAM_SPEECH_DEV", REPO.parent / "shared" / "speech-dev"))

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


@dataclass(frozen=True)
class Clip:
    name: str
    audio: np.ndarray
    text: str  # what was said ("" for no speech)
    speech_end_s: float  # the last sample of voice; silence follows


def number_words(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    rest = n % 1000
    return number_words(n // 1000) + " thousand" + ("" if rest == 0 else " " + number_words(rest))


def normalise_text(text: str) -> str:
    """Lower case, digits spelled out, no punctuation: how the WER is counted."""
    text = re.sub(r"(\d),(\d{3})", r"\1\2", text.lower())
    text = re.sub(r"\d+", lambda m: f" {number_words(int(m.group()))} "
                  if len(m.group()) < 7 else m.group(), text)
    text = text.replace("-", " ").replace("#", " pound ")
    return " ".join(re.sub(r"[^\w' ]+", " ", text).split())


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance, reference words) on normalised words."""
    ref, hyp = normalise_text(reference).split(), normalise_text(hypothesis).split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1], len(ref)


def corpus_wer(pairs: list[tuple[str, str]]) -> float:
    errors = [word_errors(ref, hyp) for ref, hyp in pairs]
    return sum(e for e, _ in errors) / max(1, sum(n for _, n in errors))


def _decode(path: Path, effects: list[str] | None = None) -> np.ndarray:
    """A file as 16 kHz mono float32 (through sox when `effects` are given)."""
    if effects:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "fx.wav"  # -D: no dither, so a set is the same in every run
            subprocess.run(["sox", "-D", str(path), "-r", str(AUDIO_RATE), "-c", "1", str(out),
                            *effects], check=True, capture_output=True)
            return _decode(out)
    raw = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(path), "-ac", "1", "-ar",
                          str(AUDIO_RATE), "-f", "f32le", "-"], check=True,
                         capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.float32).copy()


def recordings(folder: Path = SPEECH_DEV) -> list[tuple[Path, str]]:
    with (folder / "transcripts.tsv").open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [(folder / row["file"], " ".join(row["text"].split())) for row in rows]


def _trimmed(audio: np.ndarray) -> np.ndarray:
    """Without the recording's own leading and trailing silence (-40 dBFS)."""
    loud = np.nonzero(np.abs(audio) > 0.01)[0]
    return audio[max(0, loud[0] - 800):loud[-1] + 800] if len(loud) else audio[:0]


def _with_silence(audio: np.ndarray, lead_s: float = 0.5) -> tuple[np.ndarray, float]:
    lead = np.zeros(int(lead_s * AUDIO_RATE), np.float32)
    tail = np.zeros(int(SILENCE_AFTER_S * AUDIO_RATE), np.float32)
    return np.concatenate([lead, audio, tail]), (len(lead) + len(audio)) / AUDIO_RATE


def clean_set(limit: int | None = None, folder: Path = SPEECH_DEV) -> list[Clip]:
    clips = []
    for path, text in recordings(folder)[:limit]:
        audio, end = _with_silence(_trimmed(_decode(path)))
        clips.append(Clip(path.stem, audio, text, end))
    return clips


def talk_set(count: int = 12, per_talk: int = 3, seed: int = 7,
             folder: Path = SPEECH_DEV) -> list[Clip]:
    """Recordings joined with natural gaps, like one person talking on."""
    rng = np.random.default_rng(seed)
    pool = recordings(folder)
    clips = []
    for index in range(count):
        picked = rng.choice(len(pool), size=per_talk, replace=False)
        parts, texts = [], []
        for k, which in enumerate(picked):
            path, text = pool[which]
            if k:
                parts.append(np.zeros(int(rng.uniform(0.3, 0.9) * AUDIO_RATE), np.float32))
            parts.append(_trimmed(_decode(path)))
            texts.append(text)
        audio, end = _with_silence(np.concatenate(parts))
        clips.append(Clip(f"talk{index}", audio, " ".join(texts), end))
    return clips


def noisy(clips: list[Clip], snr_db: float = 10.0, seed: int = 11) -> list[Clip]:
    """The clips in a room: reverb (sox), then pink noise at `snr_db` over the whole clip."""
    rng = np.random.default_rng(seed)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            dry = Path(tmp) / f"{clip.name}.wav"
            _write_wav(dry, clip.audio)
            wet = _decode(dry, ["reverb", "40", "50", "70"])[:len(clip.audio)]
            voice = wet[wet != 0]
            power = float(np.mean(voice ** 2)) if len(voice) else 1e-6
            noise = _pink(len(wet), rng) * np.sqrt(power / 10 ** (snr_db / 10))
            out.append(Clip(f"{clip.name}_noisy", (wet + noise).astype(np.float32), clip.text,
                            clip.speech_end_s))
    return out


def nonspeech_set(seconds: float = 30.0, seed: int = 5) -> list[Clip]:
    """No voice at all: each clip should give no transcript."""
    rng = np.random.default_rng(seed)
    n = int(seconds * AUDIO_RATE)
    t = np.arange(n) / AUDIO_RATE
    hum = 0.05 * np.sin(2 * np.pi * 50 * t) + 0.03 * np.sin(2 * np.pi * 100 * t)
    notes = 220 * 2 ** (rng.integers(0, 12, size=int(seconds * 2)) / 12)
    melody = np.repeat(notes, n // len(notes) + 1)[:n]
    music = 0.15 * np.sin(2 * np.pi * np.cumsum(melody) / AUDIO_RATE) * (
        0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))
    knocks = np.zeros(n)
    for at in rng.uniform(0, seconds - 0.2, size=int(seconds / 2)):
        k = int(at * AUDIO_RATE)
        knocks[k:k + 800] += 0.5 * rng.standard_normal(800) * np.exp(-np.arange(800) / 120)
    sets = {"silence": np.zeros(n), "room_noise": 0.02 * _pink(n, rng),
            "loud_noise": 0.2 * _pink(n, rng), "hum": hum, "music": music,
            "knocks": knocks + 0.005 * _pink(n, rng)}
    return [Clip(name, audio.astype(np.float32), "", 0.0) for name, audio in sets.items()]


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f) noise of unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    pink = np.fft.irfft(spectrum, n)
    return (pink / np.sqrt(np.mean(pink ** 2))).astype(np.float32)


def _write_wav(path: Path, audio: np.ndarray) -> None:
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "s16le", "-ar",
                    str(AUDIO_RATE), "-ac", "1", "-i", "-", str(path)], input=pcm, check=True)
