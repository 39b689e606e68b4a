"""Recorder sink + recording source, without models: what goes in comes back out."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mcap.reader import make_reader
from replay_helpers import (
    NO_ANALYSIS,
    inputs_only,
    record_synthetic,
    replay_items,
    same_inputs,
    synthetic_sources,
)

from mmstream.build import build_pipeline
from mmstream.config import RecordConfig, validate_pipeline
from mmstream.errors import ConfigError
from mmstream.events import Scene, SceneEvent, Tag
from mmstream.media import AudioChunk, EndOfStream, VideoFrame
from mmstream.recording.info import inspect_recording
from mmstream.replay.diff import diff_runs, load_events
from mmstream.runtime.pipeline import Pipeline
from mmstream.runtime.stage import Stage
from mmstream.sinks.jsonl import JsonlSink
from mmstream.sinks.recorder import RecorderSink
from mmstream.sources.recording import ReplayedFrame
from mmstream.sources.synthetic import SyntheticSource
from mmstream.stages.overload import OverloadStage
from mmstream.stages.record_tap import RecordTap


def original_items(streams: tuple[str, ...], duration_s: float) -> list[Any]:
    config = validate_pipeline({"sources": synthetic_sources(streams, duration_s)})
    items = [item for source in config.sources
             for item in SyntheticSource(source).items()]  # type: ignore[arg-type]
    return sorted(items, key=lambda item: item.t_capture)


def test_lossless_recording_replays_every_input_exactly(tmp_path: Path) -> None:
    path = tmp_path / "rec.mcap"
    record_synthetic(path, duration_s=2.0, frame_format="png", audio_format="f32")
    items, source = replay_items(path)
    want = original_items(("syn",), 2.0)
    got = inputs_only(items)
    assert len(got) == len(want) == 30  # 10 frames + 20 audio chunks
    assert all(same_inputs(g, w) for g, w in zip(got, want, strict=True))
    assert all(isinstance(i, ReplayedFrame) for i in got if isinstance(i, VideoFrame)), (
        "fast replays never shed frames")
    assert source.stream_id == "syn" and not any(isinstance(i, EndOfStream) for i in items)


def test_default_formats_are_close_and_foxglove_readable(tmp_path: Path) -> None:
    path = tmp_path / "rec.mcap"
    record_synthetic(path, duration_s=1.0)
    with path.open("rb") as file:  # the mcap library's own reader: a well-formed file
        reader = make_reader(file)
        summary = reader.get_summary()
        assert summary is not None
        schemas = {s.name: s.encoding for s in summary.schemas.values()}
        topics = {c.topic: c.message_encoding for c in summary.channels.values()}
        counts = summary.statistics.channel_message_counts
    assert schemas == {"foxglove.CompressedImage": "jsonschema",
                       "foxglove.RawAudio": "jsonschema"}
    assert topics == {"/syn/video": "json", "/syn/audio": "json"}
    assert sorted(counts.values()) == [5, 10]
    got = inputs_only(replay_items(path)[0])
    for g, w in zip(got, original_items(("syn",), 1.0), strict=True):
        assert (g.stream_id, g.t_capture) == (w.stream_id, w.t_capture)
        if isinstance(w, AudioChunk):
            assert np.max(np.abs(g.samples - w.samples)) <= 1 / 32767 + 1e-7  # pcm-s16
        else:
            error = np.abs(g.image.astype(int) - w.image.astype(int)).mean()
            assert error < 8, f"jpeg q90 mean error {error}"


def test_info_counts_streams_and_events(tmp_path: Path) -> None:
    path = tmp_path / "rec.mcap"
    record_synthetic(path, streams=("camA", "camB"), duration_s=1.5)
    info = inspect_recording(path)
    counts = {c.topic: c.messages for c in info.channels}
    assert counts == {"/camA/audio": 15, "/camA/video": 7, "/camB/audio": 15, "/camB/video": 7}
    assert info.complete and not info.stopped
    assert info.duration_s == pytest.approx(1.4)
    assert info.metadata["mmstream.recording"]["device_id"] == "test"


def test_two_streams_replay_merged_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "rec.mcap"
    record_synthetic(path, streams=("camA", "camB"), duration_s=1.0)
    items, source = replay_items(path)
    got = inputs_only(items)
    times = [item.t_capture for item in got]
    assert times == sorted(times) and {i.stream_id for i in got} == {"camA", "camB"}
    ends = [i for i in items if isinstance(i, EndOfStream)]
    assert len(ends) == 1 and {ends[0].stream_id, source.stream_id} == {"camA", "camB"}, (
        "one end marker from the source, the other from the runner")
    only_b, _ = replay_items(path, streams=["camB"])
    assert {i.stream_id for i in inputs_only(only_b)} == {"camB"}
    cut, _ = replay_items(path, start_s=0.3, end_s=0.6)
    assert {round(i.t_capture, 3) for i in inputs_only(cut)} == {0.3, 0.4, 0.5}


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
    recorder = RecorderSink(RecordConfig(path=path), "test", inputs_from_tap=True)
    sources = [SyntheticSource(config.sources[0])]  # type: ignore[arg-type]
    pipeline = Pipeline(sources, [RecordTap(recorder.send_media), EatFrames()],
                        [JsonlSink(events), recorder], device_id="test", mode="fast")
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


def test_rotation_by_size_and_time_keeps_every_message(tmp_path: Path) -> None:
    record_synthetic(tmp_path / "size.mcap", duration_s=3.0, chunk_kb=16, rotate_mb=0.005,
                     frame_format="png")
    record_synthetic(tmp_path / "time.mcap", duration_s=3.0, rotate_s=1.0)
    for stem, least in (("size", 3), ("time", 3)):
        files = sorted(tmp_path.glob(f"{stem}*.mcap"))
        assert len(files) >= least, files
        assert [f.name for f in files[:2]] == [f"{stem}-000.mcap", f"{stem}-001.mcap"]
        total = 0
        for file in files:
            info = inspect_recording(file)
            assert info.complete, file
            total += sum(c.messages for c in info.channels)
        assert total == 45  # 15 frames + 30 chunks, each in exactly one file
    spans = [inspect_recording(f).duration_s for f in sorted(tmp_path.glob("time*.mcap"))]
    assert max(spans) < 1.0


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
    with pytest.raises(ConfigError, match=r"sources\.0\.recording\.end_s"):
        validate_pipeline({"sources": [{"kind": "recording", "path": "r.mcap", "end_s": -1}]})


def test_a_rebuilt_pipeline_continues_in_a_new_file(tmp_path: Path) -> None:
    """A SIGHUP reload builds the pipeline again: the recording so far must survive."""
    path = tmp_path / "live.mcap"
    record_synthetic(path, streams=("first",), duration_s=0.5)
    record_synthetic(path, streams=("second",), duration_s=0.5)
    assert {c.stream_id for c in inspect_recording(path).channels} == {"first"}
    reloaded = tmp_path / "live-001.mcap"
    assert {c.stream_id for c in inspect_recording(reloaded).channels} == {"second"}
