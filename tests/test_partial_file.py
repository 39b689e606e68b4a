"""The one way an output is written: beside its target, renamed onto it only when whole."""

from __future__ import annotations

from pathlib import Path

from mmstream.paths import PartialFile


def test_a_partial_file_becomes_the_target_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "events.jsonl"
    written = PartialFile(target)
    written.path.write_text("half")
    assert written.path.name == "events.jsonl.partial" and not target.exists()
    assert written.complete() == target and target.read_text() == "half"
    assert not written.path.exists()


def test_a_discarded_partial_file_leaves_nothing(tmp_path: Path) -> None:
    written = PartialFile(tmp_path / "events.jsonl")
    written.path.write_text("half")
    written.discard()
    written.discard()  # twice, or never written: no error
    assert list(tmp_path.iterdir()) == []
