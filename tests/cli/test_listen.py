"""`mmstream listen`: schema validation, seq gaps/duplicates/restarts, filters, real broker."""

from __future__ import annotations

import subprocess
import sys

import paho.mqtt.client as paho

from mmstream.cli.listen_cmd import ListenReport, subscriptions
from mmstream.demo_broker import MosquittoBroker
from mmstream.events import Scene, SceneEvent, Transcript, TranscriptEvent, encode
from tests.conftest import REPO
from tests.sinks.mqtt.helpers import read_until


def transcript(seq: int, device: str = "dev", stream: str = "mic0") -> bytes:
    return encode(TranscriptEvent(device_id=device, stream_id=stream, seq=seq, t_capture=seq,
                                  payload=Transcript(final=True, text=f"n{seq}", start=0, end=1)))


def test_report_follows_seq_per_stream() -> None:
    report = ListenReport()
    topic = "mmstream/dev/mic0/transcript"
    notes = [report.check(topic, transcript(seq)).note for seq in (1, 2, 5, 5, 6, 1)]
    assert notes == ["", "", "gap: dev/mic0 seq 2 -> 5 (2 missing)",
                     "duplicate: dev/mic0 seq 5 (after 5)", "",
                     "restart: dev/mic0 seq 6 -> 1 (publisher restarted without a spool?)"]
    assert report.check("mmstream/dev/mic1/transcript", transcript(9, stream="mic1")).note == ""
    assert (report.gaps, report.missing, report.duplicates, report.restarts) == (1, 2, 1, 1)


def test_report_rejects_invalid_messages_and_topic_mismatches() -> None:
    report = ListenReport()
    bad = report.check("mmstream/dev/mic0/transcript", b'{"type": "transcript", "seq": "x"}')
    assert bad.event is None and "not a valid event" in bad.problem
    wrong = report.check("mmstream/dev/mic0/scene", transcript(1))
    assert wrong.problem == "topic says dev/mic0/scene, event says dev/mic0/transcript"
    assert report.invalid == 2 and sum(report.events.values()) == 0


def test_subscriptions_follow_the_filters() -> None:
    assert subscriptions("mm", "+", []) == ["mm/+/+/+", "mm/+/status", "mm/+/health"]
    assert subscriptions("mm", "k", ["scene", "emotion"])[:2] == ["mm/k/+/scene", "mm/k/+/emotion"]


def test_listen_cli_against_mosquitto(mosquitto: MosquittoBroker) -> None:
    listener = subprocess.Popen(
        [sys.executable, "-m", "mmstream", "listen", mosquitto.url, "--device", "dev",
         "--type", "transcript", "--jsonl", "--count", "4", "--seconds", "60", "--strict"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    publisher = paho.Client(paho.CallbackAPIVersion.VERSION2)
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    try:
        assert listener.stderr is not None
        said = read_until(listener.stderr, "subscribed on")  # the broker has its SUBSCRIBEs
        scene = encode(SceneEvent(device_id="dev", stream_id="cam0", seq=1, t_capture=0,
                                  payload=Scene(tags=[])))
        messages = [("mmstream/other/mic0/transcript", transcript(1, device="other")),
                    ("mmstream/dev/cam0/scene", scene),
                    ("mmstream/dev/status", b"online"),
                    ("mmstream/dev/mic0/transcript", transcript(1)),
                    ("mmstream/dev/mic0/transcript", b"{not json"),
                    ("mmstream/dev/mic0/transcript", transcript(2)),
                    ("mmstream/dev/mic0/transcript", transcript(4)),
                    ("mmstream/dev/mic0/transcript", transcript(4))]
        for topic, payload in messages:
            publisher.publish(topic, payload, qos=1).wait_for_publish(5)
        out, rest = listener.communicate(timeout=60)
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        if listener.poll() is None:
            listener.kill()
    err = "".join(said) + rest
    assert f"subscribed on mqtt://127.0.0.1:{mosquitto.port}: mmstream/dev/+/transcript" in err
    assert out.splitlines() == [line.decode() for line in
                                (transcript(1), transcript(2), transcript(4), transcript(4))]
    assert "dev is online" in err
    assert "invalid: mmstream/dev/mic0/transcript: not a valid event" in err
    assert "gap: dev/mic0 seq 2 -> 4 (1 missing)" in err
    assert "duplicate: dev/mic0 seq 4 (after 4)" in err
    assert "4 events from 1 streams; 1 gaps (1 missing), 1 duplicates" in err
    assert listener.returncode == 1  # --strict: a gap and an invalid message
