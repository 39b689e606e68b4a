"""What the live view keeps: bounded, partials replaced by finals, news by revision."""

from __future__ import annotations

import pytest

from mmstream.config import WebConfig, load_pipeline
from mmstream.errors import ConfigError
from mmstream.web.live.state import LiveState
from tests.web.live_helpers import emotion, frame, transcript


def test_a_final_replaces_the_partials_of_its_utterance_and_news_come_by_revision() -> None:
    state = LiveState(WebConfig())
    state.add_event(transcript("the cof", final=False, utterance=3))
    seen = state.revision
    state.add_event(transcript("the coffee is ready", final=True, utterance=3))
    state.add_event(transcript("the coffee is ready", final=True, utterance=3), generation=2)
    lines = state.streams["cam"].transcripts
    assert [(line.key, line.text, line.final) for line in lines.values()] == [
        ("0.3", "the coffee is ready", True), ("2.3", "the coffee is ready", True)]
    news = state.changes_since(seen)["cam"]
    assert [line["key"] for line in news["transcripts"]] == ["0.3", "2.3"]
    assert len(news["events"]) == 2 and "mood" not in news
    assert state.changes_since(state.revision) == {}


def test_everything_kept_is_bounded() -> None:
    state = LiveState(WebConfig(max_events=5, max_transcripts=3, history_s=10))
    for n in range(40):
        state.add_event(transcript(f"line {n}", final=True, utterance=n, t=float(n)))
        state.add_event(emotion(float(n)))
        state.add_frame(frame(t=float(n)))
    cam = state.streams["cam"]
    assert [line.text for line in cam.transcripts.values()] == ["line 37", "line 38", "line 39"]
    assert len(cam.events) == 5 and cam.frame_no == 40
    assert [point.t for point in cam.mood] == [float(n) for n in range(29, 40)]


def test_web_config_off_loopback_needs_a_token_from_the_file_or_the_environment() -> None:
    base = {"sources": [{"kind": "synthetic"}], "web": {"host": "0.0.0.0"}}
    with pytest.raises(ConfigError, match=r"web\.host 0\.0\.0\.0 .* set web\.token"):
        load_pipeline(base=base, environ={})
    config = load_pipeline(base=base, environ={"MMSTREAM_WEB__TOKEN": "x" * 20,
                                               "MMSTREAM_WEB__PORT": "0"})
    assert config.web.token == "x" * 20 and config.web.port == 0
    assert "x" * 20 not in repr(config.web)
    with pytest.raises(ConfigError) as short:
        load_pipeline(base=base, environ={"MMSTREAM_WEB__TOKEN": "tooshort"})
    assert "web.token" in str(short.value) and "tooshort" not in str(short.value)
    with pytest.raises(ConfigError, match=r"web\.frame_fps"):
        load_pipeline(base={**base, "web": {"frame_fps": 5}}, environ={})


def test_the_view_is_served_only_where_there_is_something_to_watch() -> None:
    paced = load_pipeline(base={"sources": [{"kind": "synthetic", "realtime": True}]},
                          environ={})
    fast = load_pipeline(base={"sources": [{"kind": "synthetic", "realtime": False}]},
                         environ={})
    off = load_pipeline(base={"sources": [{"kind": "synthetic", "realtime": True}],
                              "web": {"enabled": False}}, environ={})
    assert (paced.serves_web, fast.serves_web, off.serves_web) == (True, False, False)
