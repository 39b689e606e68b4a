"""A daemon that records (`record:`, rotating MCAP segments) points each found moment into its
own recording: the segment file that covers it and the offset into that file (a real
`mmstream run` of the sample clip, real models, the real CLI)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from mmstream.events import decode
from mmstream.recording.reader import RecordingReader
from tests.conftest import SAMPLE_CLIP, SAMPLE_SENTENCES

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _segment(path: Path) -> tuple[float, float, dict[str, float]]:
    """(first input's, last recorded time, {final transcript: its start}) of a segment."""
    with RecordingReader(path) as reader:
        messages = list(reader.messages())
    finals = {}
    for message in messages:
        if message.topic.kind == "event" and message.topic.event_type == "transcript":
            payload = decode(message.data).payload
            if payload.final:  # type: ignore[union-attr]
                finals[payload.text] = payload.start  # type: ignore[union-attr]
    # a replay's --start counts from the first input (events lag their inputs)
    first = min(m.log_time / 1e9 for m in messages if m.topic.kind != "event")
    return first, max(m.log_time / 1e9 for m in messages), finals


@pytest.mark.slow
def test_found_moments_name_the_segment_and_the_offset_into_it(
        cli: Cli, tmp_path: Path) -> None:
    recordings, store = tmp_path / "rec", tmp_path / "h.db"
    pipeline = {"device_id": "kitchen", "sources": [{"kind": "file", "path": str(SAMPLE_CLIP)}],
                "record": {"dir": str(recordings), "rotate_s": 4, "frame_format": "jpeg"},
                "history": {"path": str(store)}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(pipeline))
    done = cli("run", str(tmp_path / "p.yaml"))
    assert done.returncode == 0, done.stderr
    segments = sorted(recordings.glob("*.mcap"))
    assert len(segments) >= 2, segments  # the clip is 9 s long: rotated at least once
    finals = {}  # an event is recorded when it is published: maybe in a later segment
    for path in segments:
        finals.update(_segment(path)[2])
    named = set()
    for sentence in SAMPLE_SENTENCES:
        word = sentence.split()[1]  # "from", "am", "coffee"
        found = cli("search", word, "--json", "--history", str(store))
        assert found.returncode == 0, found.stderr
        [moment] = [m for m in json.loads(found.stdout) if m["text"] == sentence]
        segment = Path(moment["recording"])
        assert segment.parent == recordings.resolve() and segment.suffix == ".mcap"
        first, last, _ = _segment(segment)
        # the offset is inside that file, and is where the sentence's words begin in it
        assert 0 <= moment["offset_s"] < moment["end_offset_s"] <= last - first + 2.5
        assert finals[sentence] - first == pytest.approx(moment["offset_s"], abs=0.01)
        named.add(segment)
    assert len(named) == 2  # the first two sentences lie in the first segment, the third not
