"""The guards against words whisper wrote that nobody said.

The echo and the tails ("time.", "ends.") are whisper tiny.en's own finals (word, start, end,
probability; seconds into the decoded audio) for real recordings followed by silence
(tests/data/speech, ../shared/speech-dev), so the guards' decisions on them do not depend on
the CPU that made them; the other lists show what must stay and the rules' edges."""

from __future__ import annotations

from mmstream.events import Word
from mmstream.models.invented_words import kept_words


def words(*said: tuple[str, float, float, float]) -> list[Word]:
    return [Word(*w) for w in said]


def text(found: list[Word], speech_end: float | None = None) -> str:
    return " ".join(found[i].word for i in kept_words(found, speech_end))


def test_an_echo_squeezed_into_no_audio_is_dropped() -> None:
    echo = words(("Please", 0.0, 0.58, 0.72), ("try", 0.58, 0.86, 0.97),
                 ("again.", 0.86, 0.92, 0.99), ("Please", 0.92, 0.92, 0.72),
                 ("try", 0.92, 0.92, 0.98), ("again.", 0.92, 1.4, 1.0))
    assert text(echo) == "Please try again."


def test_a_sentence_really_said_twice_stays() -> None:
    twice = words(("Come", 0.0, 0.3, 0.9), ("in.", 0.3, 0.6, 0.9),
                  ("Come", 1.2, 1.5, 0.9), ("in.", 1.5, 1.8, 0.9))
    assert text(twice) == "Come in. Come in."


def test_a_doubted_tail_after_the_last_sentence_is_dropped() -> None:
    tail = words(("the", 6.22, 6.36, 0.99), ("next", 6.36, 6.72, 0.99),
                 ("available", 6.72, 7.22, 0.99), ("representative.", 7.22, 8.0, 0.93),
                 ("time.", 8.0, 8.19, 0.007))
    assert text(tail) == "the next available representative."
    ends = words(("unmuted", 9.9, 10.44, 0.85), ("participants.", 10.44, 10.96, 0.99),
                 ("ends.", 10.96, 11.26, 0.57))
    assert text(ends) == "unmuted participants."
    you = words(("default", 1.0, 1.4, 0.98), ("level.", 1.4, 1.8, 0.97), ("You", 1.9, 2.0, 0.3))
    assert text(you) == "default level."


def test_a_short_last_sentence_whisper_is_sure_of_stays() -> None:
    sure = words(("Is", 0.0, 0.2, 0.9), ("it", 0.2, 0.3, 0.9), ("open?", 0.3, 0.7, 0.95),
                 ("Yes.", 1.2, 1.5, 0.92))
    assert text(sure) == "Is it open? Yes."


def test_words_placed_after_the_voice_stopped_are_dropped() -> None:
    late = words(("Turn", 0.0, 0.2, 0.9), ("it", 0.2, 0.3, 0.9), ("off.", 0.3, 0.6, 0.9),
                 ("Thank", 1.5, 1.7, 0.8), ("you.", 1.7, 1.9, 0.8))
    assert text(late, speech_end=0.65) == "Turn it off."
    assert text(late, speech_end=None) == "Turn it off. Thank you."  # unknown: kept


def test_a_doubted_stock_phrase_is_dropped_and_a_sure_one_stays() -> None:
    assert text(words(("Thank", 0.1, 0.3, 0.4), ("you.", 0.3, 0.5, 0.5))) == ""
    assert text(words(("Thank", 0.1, 0.3, 0.9), ("you.", 0.3, 0.5, 0.95))) == "Thank you."
    assert text(words(("Next.", 0.1, 0.4, 0.3))) == ""
    assert text(words((".", 0.1, 0.4, 0.3))) == ""  # punctuation alone is no word


def test_a_loop_squeezed_into_no_time_is_dropped() -> None:
    """What tiny.en wrote live after "To reset your speaking volume to the default level.",
    prompted with the stream's earlier finals: a loop with every word 0 ms long."""
    real = words(("default", 75.48, 75.76, 0.96), ("level.", 75.76, 76.32, 0.99))
    loop = [Word(w, 76.32, 76.32, p) for w, p in zip(
        "Thank you very much for watching, and I'll see you in the next video.".split(),
        (0.002, 0.985, 0.127, 0.984, 0.073, 0.312, 0.289, 0.219, 0.436, 0.981, 0.164, 0.397,
         0.919, 0.594), strict=True)]
    assert text(real + loop) == "default level."
    quick = words(("I", 1.0, 1.04, 0.9), ("see.", 1.04, 1.3, 0.9))  # short words, real time
    assert text(real + quick) == "default level. I see."
