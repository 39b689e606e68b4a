"""Words whisper wrote that nobody said, found from its own word timings and probabilities.

Given audio that ends in silence or room noise, whisper sometimes goes on after the speech.
On recordings of real people (benchmarks/real_speech.py) these shapes account for nearly all
of it, and each has a tell in the final's word timestamps or probabilities:

- a *tail*: one or two words after the last sentence that whisper itself doubts
  ("... the next available representative. time." with p = 0.01, "... level. You", "Peace.");
- an *echo*: the last sentence once more, squeezed into audio that holds no more speech
  ("Please try again. Please try again." where two of the copy's words last 0 ms);
- a *squeezed* sentence: several words that whisper's alignment fitted into no time (its
  median word under 50 ms), as a loop it wrote at the end of the audio ("… level. Thank you
  very much for watching, and I'll see you in the next video, …", every word 0 ms long);
- words placed after the voice stopped (the VAD's end of speech), and stock phrases of
  Whisper's training data ("Thank you.", "Thanks for watching!", "Next.") that it says over
  silence or noise, kept only when whisper is sure of them.

These guards look at one final's words (finals are decoded with word timestamps) and return
which to keep. A sentence really said twice, or a real "thank you", keeps its words: an echo's
words last under half as long as those of the sentence it copies, spoken words last longer
than 50 ms, and a tail or a stock phrase must be doubted by whisper. What they cost is measured
by benchmarks/bench_asr_real.py (docs/speech.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from mmstream.models.text import normalise_word

TAIL_MAX_WORDS = 2  # a last "sentence" this short may be a tail
DOUBTED = 0.6  # mean word probability below which whisper doubts what it wrote
SPOKEN_AFTER_S = 0.2  # words starting this long after the VAD's end of speech were not said
ECHO_SQUEEZE = 0.5  # an echo's words last under this share of those of the sentence it copies
SQUEEZED_S = 0.05  # a sentence whose typical word lasts under this was fitted into no speech
SENTENCE_END = (".", "?", "!", "...")
STOCK_PHRASES = frozenset({
    "you", "thank you", "thank you very much", "thanks for watching", "thank you for watching",
    "thanks", "bye", "bye bye", "next", "so", "okay", "oh", "uh", "um", "hmm", "the end",
    "please subscribe", "see you next time", "i'll see you next time",
})


class TimedWord(Protocol):
    """What the guards read of a word (faster-whisper's Word, or ours)."""

    word: str
    start: float
    end: float
    probability: float


def kept_words(words: Sequence[TimedWord], speech_end: float | None) -> list[int]:
    """Indices of the words that were said. `speech_end` is where the VAD heard the voice stop,
    on the words' clock (None: unknown)."""
    keep = [i for i, w in enumerate(words) if any(c.isalnum() for c in w.word)]
    if speech_end is not None:  # a word that starts in the silence after the voice
        keep = [i for i in keep if words[i].start < speech_end + SPOKEN_AFTER_S]
    while True:
        sentences = _sentences([words[i] for i in keep])
        if not sentences:
            return keep
        last = sentences[-1]
        drop = (_is_tail(words, keep, sentences) or _is_echo(words, keep, sentences)
                or _is_squeezed(words, keep, sentences)
                or _is_doubted_stock_phrase(words, keep, sentences))
        if not drop:
            return keep
        keep = keep[:last[0]]


def _sentences(words: Sequence[TimedWord]) -> list[tuple[int, int]]:
    """(first, end) index ranges of the sentences in `words` (the last may be unfinished)."""
    found, start = [], 0
    for i, w in enumerate(words):
        if w.word.strip().endswith(SENTENCE_END):
            found.append((start, i + 1))
            start = i + 1
    if start < len(words):
        found.append((start, len(words)))
    return found


def _mean_probability(words: Sequence[TimedWord], keep: list[int], span: tuple[int, int]
                      ) -> float:
    chosen = [words[i].probability for i in keep[span[0]:span[1]]]
    return sum(chosen) / len(chosen)


def _is_tail(words: Sequence[TimedWord], keep: list[int], sentences: list[tuple[int, int]]
             ) -> bool:
    last = sentences[-1]
    return (len(sentences) > 1 and last[1] - last[0] <= TAIL_MAX_WORDS
            and _mean_probability(words, keep, last) < DOUBTED)


def _typical_length(words: Sequence[TimedWord], keep: list[int], span: tuple[int, int]
                    ) -> float:
    """The median duration of the words in `span`."""
    lengths = sorted(words[i].end - words[i].start for i in keep[span[0]:span[1]])
    return lengths[len(lengths) // 2]


def _is_echo(words: Sequence[TimedWord], keep: list[int], sentences: list[tuple[int, int]]
             ) -> bool:
    if len(sentences) < 2:
        return False
    (a0, a1), (b0, b1) = sentences[-2], sentences[-1]

    def said(lo: int, hi: int) -> list[str]:
        return [normalise_word(words[i].word) for i in keep[lo:hi]]

    return (b1 - b0 >= 2 and said(a0, a1) == said(b0, b1) and _typical_length(
        words, keep, (b0, b1)) < ECHO_SQUEEZE * _typical_length(words, keep, (a0, a1)))


def _is_squeezed(words: Sequence[TimedWord], keep: list[int], sentences: list[tuple[int, int]]
                 ) -> bool:
    """A sentence of several words that whisper's alignment fitted into no time at all: no
    speech was there ("... level. Thank you very much for watching, and I'll see you in the
    next video, ..." with every word 0 ms long at the end of the audio)."""
    last = sentences[-1]
    return last[1] - last[0] >= 2 and _typical_length(words, keep, last) < SQUEEZED_S


def _is_doubted_stock_phrase(words: Sequence[TimedWord], keep: list[int],
                             sentences: list[tuple[int, int]]) -> bool:
    last = sentences[-1]
    text = " ".join(normalise_word(words[i].word) for i in keep[last[0]:last[1]])
    return text in STOCK_PHRASES and _mean_probability(words, keep, last) < DOUBTED
