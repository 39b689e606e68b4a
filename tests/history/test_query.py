"""The query interface on a synthetic store: words (stemmed), tags, emotions, time, streams,
combined; bad input is refused in one line or searched as words."""

from __future__ import annotations

import time

import pytest

from mmstream.events import (
    Emotion,
    EmotionEvent,
    Event,
    Scene,
    SceneEvent,
    Tag,
    Transcript,
    TranscriptEvent,
)
from mmstream.history.query import Query, QueryError, parse_when, search_words
from mmstream.history.search import SqliteHistory
from tests.history.helpers import written_store

NOW = time.time()


def _moment(stream: str, t: float, text: str, tag: str, emotion: str) -> list[Event]:
    return [
        TranscriptEvent(stream_id=stream, t_capture=t, device_id="dev", payload=Transcript(
            final=True, text=text, start=t - 2, end=t - 0.5)),
        SceneEvent(stream_id=stream, t_capture=t - 0.5, device_id="dev",
                   payload=Scene(tags=[Tag(tag, 0.9)])),
        EmotionEvent(stream_id=stream, t_capture=t - 0.5, device_id="dev", payload=Emotion(
            label=emotion, scores={emotion: 0.8}, valence=-0.5 if emotion == "angry" else 0.2)),
    ]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> SqliteHistory:
    path = tmp_path_factory.mktemp("history") / "h.db"
    written_store(path, [
        *_moment("door", NOW - 7200, "The package is at the door", "person", "neutral"),
        *_moment("door", NOW - 600, "Another parcel arrived", "person", "angry"),
        *_moment("kitchen", NOW - 300, "Packages everywhere in the kitchen", "dog", "happy"),
        *_moment("kitchen", NOW - 100, "Nothing to see", "cat", "sad"),
    ])
    return SqliteHistory(path)


def texts(history: SqliteHistory, **query: object) -> list[str]:
    return [moment.text for moment in history.search(Query(**query))]  # type: ignore[arg-type]


def test_words_are_found_stemmed(history: SqliteHistory) -> None:
    assert texts(history, text="packages") == ["Packages everywhere in the kitchen",
                                               "The package is at the door"]
    assert texts(history, text="package door") == ["The package is at the door"]


def test_filters_combine_across_modalities(history: SqliteHistory) -> None:
    assert texts(history, text="package", streams=("door",)) == ["The package is at the door"]
    assert texts(history, text="package", tags=("dog",)) == ["Packages everywhere in the kitchen"]
    assert texts(history, tags=("person",), emotions=("angry",), types=("transcript",)) == [
        "Another parcel arrived"]
    assert texts(history, text="package", since=NOW - 3600) == [
        "Packages everywhere in the kitchen"]
    assert texts(history, text="package", until=NOW - 3600) == ["The package is at the door"]
    assert texts(history, text="package", tags=("cat",)) == []


def test_a_moment_carries_its_scene_and_emotion(history: SqliteHistory) -> None:
    [moment] = history.search(Query(text="parcel"))
    assert (moment.stream, moment.tags, moment.emotion, moment.person) == (
        "door", ("person",), "angry", True)
    assert moment.line().split(" — ")[1:] == ["'Another parcel arrived'", "person · angry"]


def test_tag_or_emotion_alone_gives_the_windows(history: SqliteHistory) -> None:
    [moment] = history.search(Query(emotions=("sad",)))
    assert (moment.kind, moment.stream, moment.text) == ("window", "kitchen", "Nothing to see")
    assert {m.stream for m in history.search(Query(tags=("person",)))} == {"door"}


@pytest.mark.parametrize("text", ['"package', "package*", "NEAR(package door)", "(package",
                                  "-package", "package AND", "pack'age OR door)", "a:b ^c"])
def test_query_syntax_is_searched_as_words(history: SqliteHistory, text: str) -> None:
    history.search(Query(text=text))  # never an FTS5 syntax error
    assert search_words(text)


def test_a_query_without_words_is_refused_in_one_line() -> None:
    with pytest.raises(QueryError, match="give words"):
        Query(text='"*" -')


def test_times() -> None:
    assert parse_when("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_when("30m", now=10_000.0) == 10_000.0 - 1800
    assert parse_when("2026-12-01T08:00") == parse_when("2026-12-01 08:00:00")
    with pytest.raises(QueryError) as refused:
        parse_when("last tuesday")
    assert "30m, 2h" in str(refused.value) and "2026-12-01T08:00" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_timeline_has_speech_tags_and_emotions_per_stream(history: SqliteHistory) -> None:
    days = {day.stream: day for day in history.timeline(NOW - 86400, NOW + 1)}
    assert set(days) == {"door", "kitchen"}
    assert [span.label for span in days["door"].speech] == [
        "The package is at the door", "Another parcel arrived"]
    assert {span.label for span in days["kitchen"].tags} == {"dog", "cat"}
    assert {span.label for span in days["door"].emotions} == {"neutral", "angry"}
