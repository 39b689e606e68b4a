"""Voice: prosody features of a 16 kHz window, and their calibrated mapping to emotion evidence.

Features (vectorised numpy, one call per window): loudness and its dynamics, pitch (normalised
autocorrelation per 40 ms frame), pitch variability and range in semitones, speaking rate
(syllable nuclei: peaks of the smoothed loudness envelope in voiced stretches), spectral
centroid, flatness and zero-crossing rate.

What the voice can tell: prosody is a good cue for *arousal* (loud, fast, high and variable
pitch, bright spectrum = aroused; quiet, slow, low, monotone = calm or sad) and a poor cue for
*valence* (Juslin & Laukka 2003; Scherer 2003). `VoiceExpert` therefore turns the features into
an arousal score and reads the 7 emotions off their arousal on the circumplex, with a prior that
favours neutral; valence follows from the emotion evidence and stays weak. Its constants are the
calibration below (typical conversational speech, about -26 dBFS, 4 syllables/s, 2-3 semitones
of pitch spread); `affect_experts.VoiceExpert` holds them as parameters, so `mmstream
train` can refit them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmstream.media import AUDIO_RATE

FEATURES: tuple[str, ...] = (
    "energy_db", "energy_std_db", "active_fraction", "voiced_fraction", "f0_median_hz",
    "f0_std_st", "f0_range_st", "speaking_rate_hz", "centroid_hz", "flatness", "zcr",
)
N_FEATURES = len(FEATURES)
FRAME = 640  # 40 ms: two periods of the lowest pitch we look for
HOP = 160  # 10 ms
F0_MIN, F0_MAX = 70.0, 400.0
VOICING_THRESHOLD = 0.45  # normalised autocorrelation peak that counts as voiced
SILENCE_DB = -50.0  # frames quieter than this are not speech, whatever the dynamics
MIN_VOICED_FRACTION = 0.08  # below this the window holds no usable voice
MIN_SAMPLES = FRAME * 4
OCTAVE_TOLERANCE = 0.9
MIN_DYNAMICS_DB = 6.0  # speech rises and falls; a steady tone or hum does not

# Calibration: feature → arousal z-score (centre, spread, weight).
AROUSAL_CUES: dict[str, tuple[float, float, float]] = {
    "energy_db": (-26.0, 6.0, 0.30),
    "energy_std_db": (6.0, 3.0, 0.10),
    "f0_median_hz": (160.0, 50.0, 0.15),
    "f0_std_st": (2.5, 1.5, 0.20),
    "speaking_rate_hz": (4.0, 1.5, 0.15),
    "centroid_hz": (1500.0, 600.0, 0.10),
}
# Circumplex coordinates of the 7 FER classes: (valence, arousal) in [-1, 1].
CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "angry": (-0.6, 0.8), "disgust": (-0.6, 0.3), "fear": (-0.6, 0.6), "happy": (0.8, 0.5),
    "sad": (-0.7, -0.5), "surprise": (0.3, 0.8), "neutral": (0.0, -0.1),
}
# Base rates of the emotions in everyday speech: most windows are neutral.
VOICE_PRIOR: dict[str, float] = {
    "angry": 0.08, "disgust": 0.04, "fear": 0.06, "happy": 0.2, "sad": 0.1, "surprise": 0.07,
    "neutral": 0.45,
}
AROUSAL_WIDTH = 0.35  # how sharply arousal picks emotions (std of each emotion's arousal)


@dataclass(frozen=True, slots=True)
class ProsodyFeatures:
    vector: np.ndarray  # [N_FEATURES] float32 in FEATURES order
    present: bool  # enough voiced speech to say anything
    confidence: float  # 0..1: how much voiced, clear speech the window holds

    def as_dict(self) -> dict[str, float]:
        return {name: round(float(v), 3) for name, v in zip(FEATURES, self.vector, strict=True)}


def _frames(samples: np.ndarray, size: int, hop: int) -> np.ndarray:
    count = 1 + (len(samples) - size) // hop
    index = np.arange(size)[None, :] + hop * np.arange(count)[:, None]
    return samples[index]


def _pitch(frames: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: (f0 Hz, voicing strength) from the lag-corrected normalised autocorrelation."""
    centred = frames - frames.mean(axis=1, keepdims=True)
    n = centred.shape[1]
    spectrum = np.fft.rfft(centred, 2 * n, axis=1)
    acf = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :n]
    lo, hi = int(rate / F0_MAX), int(rate / F0_MIN)
    lags = np.arange(lo, hi + 1)
    # Dividing by the overlap length undoes the taper of the biased autocorrelation.
    norm = acf[:, lags] / (acf[:, :1] + 1e-12) * (n / (n - lags))[None, :]
    # The shortest lag whose local peak nearly matches the best one: multiples of the
    # period score as high, and picking them would halve the pitch (octave errors).
    peak = np.zeros_like(norm, dtype=bool)
    peak[:, 1:-1] = (norm[:, 1:-1] >= norm[:, :-2]) & (norm[:, 1:-1] >= norm[:, 2:])
    strong = peak & (norm >= OCTAVE_TOLERANCE * norm.max(axis=1, keepdims=True))
    best = np.where(strong.any(axis=1), strong.argmax(axis=1), norm.argmax(axis=1))
    return rate / lags[best], norm[np.arange(len(norm)), best]


def _speaking_rate(level_db: np.ndarray, voiced: np.ndarray, duration_s: float) -> float:
    """Syllable nuclei per second: loudness peaks ≥ 3 dB above the dip before them, ≥ 100 ms
    apart, inside voiced frames."""
    smooth = np.convolve(level_db, np.ones(5) / 5, mode="same")
    peaks = np.flatnonzero((smooth[1:-1] > smooth[:-2]) & (smooth[1:-1] >= smooth[2:])) + 1
    count, last_peak, dip = 0, -10, np.inf
    position = 0
    for peak in peaks:
        dip = min(dip, smooth[position:peak + 1].min())
        position = peak
        if voiced[peak] and smooth[peak] - dip >= 3.0 and peak - last_peak >= 10:
            count += 1
            last_peak, dip = peak, np.inf
    return count / max(duration_s, 1e-3)


def _robust_std(values: np.ndarray) -> float:
    """Spread from the interquartile range: a few octave errors must not look like emotion."""
    q75, q25 = np.percentile(values, [75, 25])
    return float((q75 - q25) / 1.349)


def prosody_features(samples: np.ndarray, rate: int = AUDIO_RATE) -> ProsodyFeatures:
    """Prosody of one mono float window (any length; under 0.16 s gives `present=False`)."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    if len(samples) < MIN_SAMPLES:
        return ProsodyFeatures(np.zeros(N_FEATURES, np.float32), False, 0.0)
    frames = _frames(samples.astype(np.float64), FRAME, HOP)
    level_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-10)
    loud = level_db.max()
    active = (level_db > SILENCE_DB) & (level_db > loud - 35.0)
    f0, strength = _pitch(frames, rate)
    voiced = active & (strength > VOICING_THRESHOLD)
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(FRAME)[None, :], axis=1)) + 1e-10
    freqs = np.fft.rfftfreq(FRAME, 1 / rate)
    centroid = (spectrum * freqs).sum(1) / spectrum.sum(1)
    flatness = np.exp(np.log(spectrum).mean(1)) / spectrum.mean(1)
    zcr = (np.abs(np.diff(np.signbit(frames), axis=1)).mean(1)) * rate / 2
    voiced_fraction = float(voiced.mean())
    semitones = 12 * np.log2(f0[voiced] / np.median(f0[voiced])) if voiced.any() else np.zeros(1)
    use = active if active.any() else np.ones_like(active)
    vector = np.array([
        level_db[use].mean(), level_db[use].std(), active.mean(), voiced_fraction,
        np.median(f0[voiced]) if voiced.any() else 0.0, _robust_std(semitones),
        np.percentile(semitones, 90) - np.percentile(semitones, 10),
        _speaking_rate(level_db, voiced, len(samples) / rate),
        centroid[use].mean(), flatness[use].mean(), zcr[use].mean(),
    ], dtype=np.float32)
    # How far the speech stands above the quietest frames: a crude signal-to-noise ratio.
    snr_db = float(loud - np.percentile(level_db, 10))
    present = (voiced_fraction >= MIN_VOICED_FRACTION and loud > SILENCE_DB
               and snr_db >= MIN_DYNAMICS_DB)
    # Confidence grows with voiced time (saturating at 40% of the window) and with the SNR.
    confidence = min(1.0, voiced_fraction / 0.4) * min(1.0, max(0.0, snr_db) / 20.0)
    return ProsodyFeatures(vector, present, round(confidence if present else 0.0, 4))
