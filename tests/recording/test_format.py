"""The recording format: what goes in comes back out (lossless exactly, the defaults closely),
in files the mcap library and Foxglove read without mmstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from mcap.reader import make_reader

from mmstream.config import validate_pipeline
from mmstream.media import AudioChunk, EndOfStream
from mmstream.sources.synthetic import SyntheticSource
from tests.recording.recording_helpers import (
    inputs_only,
    record_synthetic,
    replay_items,
    same_inputs,
    synthetic_sources,
)


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
