"""The recorder sink: fed by the tap before anything can shed inputs, filtered by stream,
configured by the `record:` section."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mmstream.build import build_pipeline
from mmstream.config import FAST, RecordConfig, validate_pipeline
from mmstream.errors import ConfigError
from mmstream.events import Scene, SceneEvent, Tag
from mmstream.media import VideoFrame
from mmstream.recording.info import inspect_recording
from mmstream.replay.diff import diff_runs, load_events
from mmstream.runtime.pipeline import Pipeline
from mmstream.runtime.stage import Stage
from mmstream.sinks.jsonl import JsonlSink
from mmstream.sinks.recorder import RecorderSink
from mmstream.sources.synthetic import SyntheticSource
from mmstream.stages.overload import OverloadStage
from mmstream.stages.record_tap import RecordTap
from tests.recording.recording_helpers import NO_ANALYSIS, synthetic_sources


class EatFrames(Stage):
    """A stage that consumes every frame (as analysis stages may): the tap still records it."""

    name = "eat-frames"

    async def process(self, item: Any) -> None:
        if isinstance(item, VideoFrame):
            await self.emit(SceneEvent(stream_id=item.stream_id, t_capture=item.t_capture,
                                       payload=Scene(tags=[Tag("bars", 0.5 + item.index / 100)])))
            return
        await self.emit(item)


async def test_tap_records_inputs_that_later_stages_consume(tmp_path: Path) -> None:
    path, events = tmp_path / "rec.mcap", tmp_path / "events.jsonl"
    config = validate_pipeline({"sources": synthetic_sources(("syn",), 1.0)})
    recorder = RecorderSink(RecordConfig(path=path), "test")
    sources = [SyntheticSource(config.sources[0])]  # type: ignore[arg-type]
    pipeline = Pipeline(sources, [RecordTap(recorder.record_input), EatFrames()],
                        [JsonlSink(events), recorder], device_id="test", policy=FAST)
    await pipeline.run()
    counts = {c.topic: c.messages for c in inspect_recording(path).channels}
    assert counts == {"/syn/video": 5, "/syn/audio": 10, "/syn/events/scene": 5}
    recorded, written = load_events(path), load_events(events)
    assert diff_runs(recorded, written).byte_identical and len(written) == 5


def test_pipeline_builder_puts_the_tap_before_the_overload_governor(tmp_path: Path) -> None:
    config = validate_pipeline({
        "sources": synthetic_sources(("syn",), 1.0), "stages": NO_ANALYSIS,
        "record": {"path": str(tmp_path / "r.mcap")}})
    pipeline = build_pipeline(config.model_copy(update={"runtime": config.runtime.model_copy(
        update={"mode": "paced"})}))  # shedding is for paced and live runs
    assert [s.name for s in pipeline.stages][:2] == ["record", "overload"]
    governor = pipeline.stages[1]
    assert isinstance(governor, OverloadStage)
    assert [c.name for c in pipeline.channels_state(after="overload")] == [
        "overload->sinks"], "the governor watches what follows it"
    recorder = next(s for s in pipeline.sinks if isinstance(s, RecorderSink))
    assert not recorder.wants_media


def test_record_streams_filter_and_folder_target(tmp_path: Path) -> None:
    config = validate_pipeline({
        "sources": synthetic_sources(("keep", "skip"), 1.0), "stages": NO_ANALYSIS,
        "record": {"dir": str(tmp_path / "recs"), "streams": ["keep"]}})
    asyncio.run(build_pipeline(config).run())
    (only,) = (tmp_path / "recs").glob("rec-*-0000.mcap")
    assert {c.stream_id for c in inspect_recording(only).channels} == {"keep"}


def test_record_section_needs_exactly_one_target() -> None:
    with pytest.raises(ConfigError, match=r"record: .*exactly one of record\.path"):
        validate_pipeline({"sources": [{"kind": "synthetic"}], "record": {}})
