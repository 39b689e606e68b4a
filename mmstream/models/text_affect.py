"""Text: the affect of what was said, from the transcript, with VADER plus an emotion word list.

VADER (Hutto & Gilbert 2014) gives the sentiment of a sentence — negative/neutral/positive
proportions and a compound score in [-1, 1] that accounts for negation, intensifiers ("very"),
capitals and punctuation. The compound score is the text's valence. Sentiment alone cannot tell
anger from sadness or fear, so a small word list of unambiguous emotion words (below; edit it
freely) adds one cue per emotion. `affect_experts.TextExpert` maps both to the 7 FER emotions
with calibrated weights that `mmstream train` can refit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

EMOTION_WORDS: dict[str, frozenset[str]] = {
    "angry": frozenset("angry anger furious mad annoyed annoying irritated outraged rage hate "
                       "hated stupid damn shut yelling livid frustrated frustrating".split()),
    "disgust": frozenset("disgusting disgusted gross yuck eww nasty revolting sick vile filthy "
                         "rotten stinks smells".split()),
    "fear": frozenset("afraid scared fear frightened terrified worried anxious nervous panic "
                      "help danger dangerous emergency fire careful threat".split()),
    "happy": frozenset("happy glad great wonderful love lovely awesome excellent fantastic "
                       "delighted joy fun nice thanks thank excited beautiful yay".split()),
    "sad": frozenset("sad unhappy sorry miss lonely depressed cry crying tears hurt lost "
                     "upset tired alone grief disappointed".split()),
    "surprise": frozenset("wow whoa surprise surprised unexpected amazing unbelievable "
                          "suddenly really omg incredible shocked".split()),
}
KEYWORD_EMOTIONS: tuple[str, ...] = tuple(EMOTION_WORDS)  # the 6 non-neutral classes
FEATURES: tuple[str, ...] = ("neg", "neu", "pos", "compound",
                             *(f"words_{e}" for e in KEYWORD_EMOTIONS), "exclaim", "question")
N_FEATURES = len(FEATURES)
_WORD = re.compile(r"[a-z']+")

# Calibration: logit of each emotion = bias + Σ weight × feature.
TEXT_WEIGHTS: dict[str, dict[str, float]] = {
    "angry": {"neg": 1.5, "compound": -0.5, "words_angry": 4.0, "exclaim": 0.5},
    "disgust": {"neg": 1.0, "words_disgust": 4.0},
    "fear": {"neg": 1.2, "words_fear": 4.0},
    "happy": {"pos": 3.0, "compound": 2.0, "words_happy": 3.0},
    "sad": {"neg": 1.5, "compound": -0.5, "words_sad": 4.0},
    "surprise": {"words_surprise": 4.0, "exclaim": 0.7, "question": 0.3},
    "neutral": {"neu": 3.0},
}
TEXT_BIAS: dict[str, float] = {"angry": -1.0, "disgust": -1.5, "fear": -1.2, "happy": -0.5,
                               "sad": -1.0, "surprise": -1.2, "neutral": 0.0}
DEFAULT_ASR_CONFIDENCE = 0.7  # when the transcript does not say how sure it is


@dataclass(frozen=True, slots=True)
class TextFeatures:
    vector: np.ndarray  # [N_FEATURES] float32 in FEATURES order
    present: bool  # there was text to read
    confidence: float  # 0..1: recognition confidence × how much was said


@lru_cache(maxsize=1)
def _vader() -> object:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def text_features(text: str, asr_confidence: float | None = None) -> TextFeatures:
    """Affect features of a transcript (empty or wordless text gives `present=False`)."""
    words = _WORD.findall(text.lower())
    if not words:
        return TextFeatures(np.zeros(N_FEATURES, np.float32), False, 0.0)
    scores = _vader().polarity_scores(text)  # type: ignore[attr-defined]
    hits = [sum(w in EMOTION_WORDS[e] for w in words) for e in KEYWORD_EMOTIONS]
    vector = np.array([
        scores["neg"], scores["neu"], scores["pos"], scores["compound"],
        *(min(1.0, h / 2) for h in hits),  # one hit counts half, two or more fully
        float("!" in text), float("?" in text),
    ], dtype=np.float32)
    asr = DEFAULT_ASR_CONFIDENCE if not asr_confidence else asr_confidence
    confidence = asr * min(1.0, len(words) / 4)  # a word or two says little about affect
    return TextFeatures(vector, True, round(float(confidence), 4))
