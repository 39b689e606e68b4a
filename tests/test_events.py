"""The event contract: one definition for validation, encoding and the published schema."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from mmstream.events import (
    SCHEMA_VERSION,
    Emotion,
    EmotionEvent,
    ModalityContribution,
    Transcript,
    TranscriptEvent,
    decode,
    encode,
    json_schema,
)

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "mmstream" / "schema" / "events.schema.json"


def test_checked_in_schema_matches_the_code() -> None:
    checked_in = json.loads(SCHEMA_FILE.read_text())
    assert checked_in == json_schema(), (
        "events.py changed: regenerate with `mmstream schema > mmstream/schema/events.schema.json`"
    )


def test_round_trip_keeps_every_field() -> None:
    event = EmotionEvent(
        device_id="kitchen", stream_id="cam0", seq=7, t_capture=12.5, t_publish=12.6,
        payload=Emotion(
            label="happy", scores={"happy": 0.8, "neutral": 0.2}, valence=0.6,
            contributions=[ModalityContribution(modality="face", present=True, weight=0.7),
                           ModalityContribution(modality="voice", present=False)],
        ),
    )
    data = encode(event)
    assert json.loads(data)["type"] == "emotion"
    assert json.loads(data)["schema"] == SCHEMA_VERSION
    assert decode(data) == event


def test_decode_rejects_a_wrong_type_with_its_path() -> None:
    good = json.loads(encode(TranscriptEvent(
        stream_id="mic0", t_capture=1.0,
        payload=Transcript(final=True, text="hi", start=0.0, end=1.0))))
    good["payload"]["final"] = "yes"
    with pytest.raises(msgspec.ValidationError, match=r"payload\.final"):
        decode(json.dumps(good))


def test_decode_rejects_an_unknown_event_type() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"type": "gossip", "stream_id": "x", "t_capture": 0}')


def test_schema_command_prints_the_schema(cli) -> None:
    result = cli("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout) == json_schema()
