"""What a report computes from events: its time axis, summary and chart rows."""

from __future__ import annotations

import json
import re
from pathlib import Path

from mmstream.events import (
    Emotion,
    EmotionEvent,
    Event,
    Fused,
    FusedEvent,
    Scene,
    SceneEvent,
    Status,
    StatusEvent,
    Tag,
    Transcript,
    TranscriptEvent,
)
from mmstream.web.report import write_report
from mmstream.web.summary import summarize, time_span
from mmstream.web.timeline import chart_data, transcript_lines

LIVE_T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC


def scene(t: float, *labels: str, stream: str = "cam0") -> SceneEvent:
    return SceneEvent(stream_id=stream, t_capture=t, payload=Scene(
        tags=[Tag(label, 0.9) for label in labels], model="scene-model/2"))


def emotion(t: float, label: str, valence: float, stream: str = "cam0") -> EmotionEvent:
    return EmotionEvent(stream_id=stream, t_capture=t, payload=Emotion(
        label=label, scores={label: 0.7}, valence=valence, model="emotion-model/3"))


def status(t: float, drops: dict[str, int], state: str = "degraded") -> StatusEvent:
    return StatusEvent(stream_id="cam0", t_capture=t, payload=Status(
        state=state, message="analysis cannot keep up", drops=drops))  # type: ignore[arg-type]


def said(t: float, text: str, start: float, end: float, final: bool = True) -> TranscriptEvent:
    return TranscriptEvent(stream_id="mic0", t_capture=t, payload=Transcript(
        final=final, text=text, start=start, end=end))


def test_summary_of_a_media_time_run() -> None:
    events: list[Event] = [said(3.0, "hello there", 1.0, 2.8), scene(2.0, "kitchen"),
                           emotion(2.0, "happy", 0.5), scene(4.0, "kitchen", "person"),
                           status(LIVE_T0, {"cam0.video": 3}),
                           status(LIVE_T0 + 5, {"cam0.video": 7, "overload:frames": 2}),
                           FusedEvent(stream_id="cam0", t_capture=4.0, payload=Fused(
                               window_start=2.0, window_end=4.0, model="fused/1"))]
    span = time_span(events, (0.5, 4.5))
    summary = summarize(events, span, title="run", source="run.jsonl")
    # a wall-clock status in a media-time run stays off the time axis
    assert (span.first, span.last, span.origin, span.is_live) == (0.5, 4.5, 0.0, False)
    assert summary.counts == {"transcript": 1, "scene": 2, "emotion": 1, "fused": 1,
                              "status": 2}
    assert summary.drops == {"cam0.video": 7, "overload:frames": 2}  # counters: the largest
    assert summary.models == ["emotion-model/3", "fused/1", "scene-model/2"]
    assert summary.streams == ["cam0", "mic0"] and summary.start_utc == ""
    assert [s.when for s in summary.statuses] == ["2026-01-01 00:00:00 UTC",
                                                  "2026-01-01 00:00:05 UTC"]


def test_a_live_run_counts_from_its_first_event() -> None:
    events: list[Event] = [scene(LIVE_T0 + 10, "garden"), emotion(LIVE_T0 + 12, "sad", -0.5),
                           status(LIVE_T0 + 11, {})]
    span = time_span(events)
    summary = summarize(events, span, title="live", source="live.mcap")
    assert (span.origin, span.duration_s, summary.start_utc) == (
        LIVE_T0 + 10, 2.0, "2026-01-01 00:00:10 UTC")
    assert [s.when for s in summary.statuses] == ["1.0 s"]
    assert chart_data(events, span)["range"] == [0.0, 2.0]


def test_rows_are_present_where_their_windows_say_so() -> None:
    events: list[Event] = [scene(1.0, "kitchen"), scene(2.0, "kitchen", "person"),
                           scene(3.0, "person"), scene(4.0, "person", "dog"),
                           emotion(1.0, "sad", -0.4), emotion(2.0, "happy", 0.6),
                           emotion(3.0, "happy", float("nan"))]
    charts = chart_data(events, time_span(events))
    assert charts["scene"] == {"rows": ["person", "kitchen", "dog"], "x": [1.0, 2.0, 3.0, 4.0],
                               "values": [[None, 0, 0, 0], [1, 1, None, None],
                                          [None, None, None, 2]], "hidden": 0}
    assert charts["emotion"]["rows"] == ["happy", "sad"]  # in the order of EMOTIONS
    # valence: NaN (not JSON) is left out
    assert charts["valence"] == {"x": [1.0, 2.0], "series": [{"label": "cam0",
                                                               "values": [-0.4, 0.6]}]}


def test_rows_of_several_streams_are_named_by_stream_and_capped() -> None:
    many = [f"tag{n:02d}" for n in range(15)]
    events: list[Event] = [scene(1.0, *many, stream="cam0"), scene(1.0, "door", stream="cam1"),
                           scene(2.0, "door", stream="cam1")]
    block = chart_data(events, time_span(events))["scene"]
    assert block["rows"][0] == "cam1 · door" and len(block["rows"]) == 12
    assert block["hidden"] == 4


def test_fused_events_stand_in_for_missing_scene_and_emotion_events() -> None:
    events: list[Event] = [FusedEvent(stream_id="cam0", t_capture=t, payload=Fused(
        window_start=t - 2, window_end=t, scene=[Tag("office", 0.8)], emotion="neutral",
        valence=0.1)) for t in (2.0, 3.0)]
    charts = chart_data(events, time_span(events))
    assert charts["scene"]["rows"] == ["office"] and charts["emotion"]["rows"] == ["neutral"]
    assert charts["valence"]["series"][0]["values"] == [0.1, 0.1]


def test_transcripts_sit_on_the_track_where_they_were_said() -> None:
    events: list[Event] = [said(5.0, "later", 4.0, 5.0), said(1.0, "hel", 0.0, 1.0, False),
                           said(2.5, "hello", 0.0, 2.0)]
    lines = transcript_lines(events, time_span(events))
    assert [(line.text, line.final) for line in lines] == [
        ("hello", True), ("hel", False), ("later", True)]
    assert [(line.left_pct, line.width_pct) for line in lines] == [
        (0.0, 40.0), (0.0, 20.0), (80.0, 20.0)]


def test_text_from_events_cannot_break_out_of_the_page(tmp_path: Path) -> None:
    evil = "</script><img src=//x onerror=alert(1)>"
    out = tmp_path / "report.html"
    write_report([said(2.0, evil, 0.0, 1.0), scene(2.0, evil)], [], out)
    html = out.read_text()
    assert evil not in html and "&lt;/script&gt;&lt;img src=//x" in html
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html,
                     re.DOTALL)
    assert data is not None and json.loads(data.group(1))["scene"]["rows"] == [evil]


def test_scene_bars_cover_each_window_span() -> None:
    """A cat that appears at 3.33 s is in windows [2, 4] and [3, 5]: its bar runs from 2 s to
    5 s (each window over its span), not from the first window's end (4 s)."""
    def window(end: float, *labels: str) -> list[Event]:
        tags = [Tag(label, 0.9) for label in labels]
        return [SceneEvent(stream_id="cam0", t_capture=end, payload=Scene(tags=tags)),
                FusedEvent(stream_id="cam0", t_capture=end, payload=Fused(
                    window_start=end - 2, window_end=end, scene=tags))]

    events = [e for end, labels in ((2.0, ("room",)), (3.0, ("room",)), (4.0, ("room", "cat")),
                                    (5.0, ("room", "cat")), (6.0, ("room",)), (7.0, ()))
              for e in window(end, *labels)]
    block = chart_data(events, time_span(events))["scene"]
    cat = block["rows"].index("cat")
    covered = [t for t, v in zip(block["x"], block["values"][cat], strict=True) if v is not None]
    assert covered[0] == 2.0 and covered[-1] == 5.0
    assert all(2.0 <= t <= 5.0 for t in covered) and 3.5 in covered  # one bar, no gap
    room = block["rows"].index("room")
    assert [t for t, v in zip(block["x"], block["values"][room], strict=True)
            if v is None] == []  # 0 -> 6: every window's span
