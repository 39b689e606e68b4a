"""Drop counters in words: every code the parts count has a plain explanation, and the live
view's health panel shows it beside the counter."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import async_wait_until

from mmstream.config import WebConfig
from mmstream.config.sources import SyntheticSourceConfig
from mmstream.drop_reasons import REASONS, explain
from mmstream.runtime.control import PipelineControl
from mmstream.runtime.pipeline import Pipeline
from mmstream.sources.synthetic import SyntheticSource
from mmstream.stages.control import ControlStage
from mmstream.web.live.view import LiveView
from tests.pipelines import synthetic_config

# one counter of each kind, named as the parts name them
COUNTED = {
    "window:text_not_waited_for:sample": ("window", "text_not_waited_for", "sample"),
    "infer:shed:stale_window:cam": ("infer", "shed:stale_window", "cam"),
    "infer:carried:cam": ("infer", "carried", "cam"),
    "overload:shed:VideoFrame": ("overload", "shed", "VideoFrame"),
    "decode->window:overflow:VideoFrame": ("decode->window", "overflow", "VideoFrame"),
    "transcribe:partial_skipped_busy": ("transcribe", "partial_skipped_busy", ""),
    "transcribe:partial_skipped_slow": ("transcribe", "partial_skipped_slow", ""),
    "control:paused:AudioChunk": ("control", "paused", "AudioChunk"),
    "control:rate:VideoFrame": ("control", "rate", "VideoFrame"),
    "mqtt:spool_full:priority2": ("mqtt", "spool_full", "priority2"),
    "mqtt:spool_expired": ("mqtt", "spool_expired", ""),
    "mqtt:disk_full": ("mqtt", "disk_full", ""),
    "transcribe:words_invented": ("transcribe", "words_invented", ""),
    "mqtt:qos0_offline": ("mqtt", "qos0_offline", ""),
    "input_overflow": ("", "input_overflow", ""),
    "ring_overflow_frames": ("", "ring_overflow_frames", ""),
}


def test_every_counted_reason_is_explained_in_words() -> None:
    for key, (where, code, detail) in COUNTED.items():
        reason = explain(key)
        assert (reason.where, reason.reason, reason.detail) == (where, code, detail), key
        assert reason.text == REASONS[code] and "_" not in reason.text
    assert {code for _, code, _ in COUNTED.values()} == set(REASONS)
    assert explain("window:text_not_waited_for:sample").line == (
        "windows analysed before their speech was transcribed (speech recognition was behind)"
        " (sample)")
    unknown = explain("newstage:something_new")
    assert (unknown.where, unknown.reason, unknown.text) == ("newstage", "", "something_new")


async def test_the_health_panel_names_a_drop_in_words(tmp_path: Path) -> None:
    config = synthetic_config(tmp_path, 60)
    view = LiveView(WebConfig(port=0))
    sink = view.sink_for(config)
    source = SyntheticSource(SyntheticSourceConfig(duration_s=60, realtime=True, width=32,
                                                   height=24))
    paused = ControlStage(PipelineControl(paused=True))
    pipeline = Pipeline([source], [paused], [sink], device_id="t1")
    stop = asyncio.Event()
    run = asyncio.create_task(pipeline.run(stop))
    try:
        await async_wait_until(lambda: pipeline.drops().get("control:paused:VideoFrame"),
                               30, "a frame dropped while paused")
        drops = {row["key"]: row for row in view.health.snapshot()["drops"]}
    finally:
        stop.set()
        await asyncio.wait_for(run, 30)
    row = drops["control:paused:VideoFrame"]
    assert row["where"] == "control" and row["count"] >= 1
    assert row["text"] == "media dropped while analysis was paused (control command) (VideoFrame)"
