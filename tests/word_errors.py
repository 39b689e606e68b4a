"""How far a transcript is from what was said: the measure the speech tests and the ASR
benchmark hold transcription to."""

from __future__ import annotations

from mmstream.models.text import normalise_word


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance / reference words, on normalised words (case, punctuation)."""
    ref = [w for w in (normalise_word(x) for x in reference.replace("-", " ").split()) if w]
    hyp = [w for w in (normalise_word(x) for x in hypothesis.replace("-", " ").split()) if w]
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))
