"""Text of streaming transcripts: which words of a partial are stable, word times in range."""

from __future__ import annotations

from mmstream.events import Word
from mmstream.models.whisper import normalise_word


class LocalAgreement:
    """Words two consecutive partial passes agree on become stable and stay stable."""

    def __init__(self) -> None:
        self.committed: list[str] = []
        self.previous: list[str] = []

    def update(self, words: list[str]) -> tuple[str, str]:
        """Take one pass's words; returns (text, stable prefix) for the partial."""
        agreed = 0
        for a, b in zip(self.previous, words, strict=False):
            if normalise_word(a) != normalise_word(b):
                break
            agreed += 1
        if agreed > len(self.committed) and starts_with(words, self.committed):
            self.committed = words[:agreed]
        self.previous = words
        if starts_with(words, self.committed):
            text_words = words
        else:  # this pass disagrees with what was promised stable: keep the promise
            text_words = self.committed + words[len(self.committed):]
        return " ".join(text_words), " ".join(self.committed)


def clamped_words(words: list[Word], start: float, end: float) -> list[Word]:
    """Word times inside the utterance's speech (whisper's drift into the padding removed)."""
    out = []
    for word in words:
        a = min(max(word.start, start), end)
        out.append(Word(word.word, a, min(max(word.end, a), end), word.probability))
    return out


def starts_with(words: list[str], prefix: list[str]) -> bool:
    return len(words) >= len(prefix) and all(
        normalise_word(a) == normalise_word(b) for a, b in zip(words, prefix, strict=False))
