"""Words compared as words: case and punctuation aside."""

from __future__ import annotations

import re

_PUNCT = re.compile(r"[^\w']+")


def normalise_word(word: str) -> str:
    return _PUNCT.sub("", word.lower())
