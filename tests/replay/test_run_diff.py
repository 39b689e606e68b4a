"""`mmstream diff`: two runs' events compared the way a model upgrade needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmstream.events import (
    Emotion,
    EmotionEvent,
    Event,
    Scene,
    SceneEvent,
    Tag,
    Transcript,
    TranscriptEvent,
    encode,
)
from mmstream.replay.diff import diff_runs, render


def transcript(t: float, text: str, seq: int = 0) -> TranscriptEvent:
    return TranscriptEvent(stream_id="mic0", t_capture=t, seq=seq, t_publish=t,
                           payload=Transcript(final=True, text=text, start=t, end=t + 1))


def scene(t: float, *labels: str, score: float = 0.6) -> SceneEvent:
    return SceneEvent(stream_id="cam0", t_capture=t, t_publish=t,
                      payload=Scene(tags=[Tag(label, score) for label in labels]))


def emotion(t: float, label: str) -> EmotionEvent:
    return EmotionEvent(stream_id="cam0", t_capture=t, t_publish=t,
                        payload=Emotion(label=label, scores={label: 0.9}, valence=0.1))


BASELINE: list[Event] = [transcript(1.0, "the coffee is ready", 1), scene(1.0, "kitchen"),
                         scene(2.0, "kitchen", "person"), emotion(2.0, "happy"),
                         scene(3.0, "kitchen"), transcript(4.0, "see you later", 2)]


def write_jsonl(path: Path, events: list[Event]) -> Path:
    path.write_bytes(b"".join(encode(event) + b"\n" for event in events))
    return path


def test_identical_runs_report_identical() -> None:
    found = diff_runs(BASELINE, list(BASELINE))
    assert found.identical and found.byte_identical and found.same == len(BASELINE)
    assert render(found, "a", "b")[-1] == "identical, byte for byte"


def test_changes_are_classified_with_examples() -> None:
    upgraded = [transcript(1.0, "the coffee is ready", 1), scene(1.0, "kitchen", score=0.7),
                scene(2.0, "kitchen", "dog"), emotion(2.0, "neutral"),
                transcript(4.2, "see you later!", 2), scene(9.0, "garden")]
    found = diff_runs(BASELINE, upgraded)
    assert not found.identical and not found.byte_identical
    assert found.by_kind() == {"tags": 1, "emotion": 1, "scores": 1, "transcript": 1}
    assert found.paired == 5 and found.same == 1
    assert [round(s, 3) for s in found.shifts] == [0.2]
    assert [e.t_capture for e in found.only_a] == [3.0]
    assert [e.t_capture for e in found.only_b] == [9.0]
    text = "\n".join(render(found, "old.jsonl", "new.jsonl"))
    assert "tags changed: 1" in text and "'kitchen, person' -> 'dog, kitchen'" in text
    assert "emotion changed: 1" in text and "'happy' -> 'neutral'" in text
    assert "'see you later' -> 'see you later!'" in text
    assert "timing: 1 paired events moved (mean +0.200 s, largest +0.200 s)" in text
    assert "only in old.jsonl: 1 events (scene 1)" in text
    assert "only in new.jsonl: 1 events (scene 1)" in text


def test_seq_and_publish_time_alone_are_not_a_difference() -> None:
    renumbered = [type(e)(**{**{f: getattr(e, f) for f in e.__struct_fields__},
                             "seq": 7, "t_publish": 1e9}) for e in BASELINE]
    found = diff_runs(BASELINE, renumbered)
    assert found.identical and not found.byte_identical


def test_cli_exit_codes_and_json(cli: Any, tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", BASELINE)
    b = write_jsonl(tmp_path / "b.jsonl", BASELINE[:-1])
    same = cli("diff", str(a), str(a), timeout=60)
    assert same.returncode == 0 and "identical, byte for byte" in same.stdout
    differ = cli("diff", str(a), str(b), "--json", timeout=60)
    assert differ.returncode == 1
    report = json.loads(differ.stdout)
    assert report["only_a"] == {"transcript": 1} and report["identical"] is False
    bad = write_jsonl(tmp_path / "bad.jsonl", BASELINE)
    bad.write_bytes(bad.read_bytes() + b'{"type": "nonsense"}\n')
    broken = cli("diff", str(a), str(bad), timeout=60)
    assert broken.returncode == 2  # trouble, not a difference (as diff(1))
    assert broken.stderr.startswith(f"error: {bad} line 7: not an mmstream event")


def test_scores_only_shows_the_largest_change_of_each_score(cli: Any, tmp_path: Path) -> None:
    before = [scene(1.0, "kitchen", "person", score=0.6), scene(2.0, "person", score=0.6),
              emotion(2.0, "happy")]
    after = [scene(1.0, "kitchen", "person", score=0.58), scene(2.0, "person", score=0.52),
             EmotionEvent(stream_id="cam0", t_capture=2.0, t_publish=2.0, payload=Emotion(
                 label="happy", scores={"happy": 0.87}, valence=0.1))]
    found = diff_runs(before, after)
    assert found.by_kind() == {"scores": 3}
    moves = {(m.event_type, m.field): (m.before, m.after) for m in found.score_moves()}
    assert moves == {("scene", "tags[person]"): (0.6, 0.52),  # the larger of its two moves
                     ("scene", "tags[kitchen]"): (0.6, 0.58),
                     ("emotion", "scores.happy"): (0.9, 0.87)}
    assert found.score_moves()[0].field == "tags[person]"
    text = "\n".join(render(found, "a", "b"))
    assert "cam0 scene tags[person] @ 2.00s: 0.6000 -> 0.5200 (-0.0800)" in text
    assert "cam0 emotion scores.happy @ 2.00s: 0.9000 -> 0.8700 (-0.0300)" in text

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b"".join(encode(e) + b"\n" for e in before))
    b.write_bytes(b"".join(encode(e) + b"\n" for e in after))
    shown = cli("diff", str(a), str(b), "--json", timeout=60)
    assert shown.returncode == 1
    report = json.loads(shown.stdout)
    assert all(c["before"] and c["after"] for c in report["changes"])  # never "" -> ""
    (person,) = [s for s in report["score_changes"] if s["field"] == "tags[person]"]
    assert (person["before"], person["after"], person["delta"]) == (0.6, 0.52, -0.08)
    assert person["stream_id"] == "cam0" and person["t"] == 2.0
