"""The measures of bench_runtime.py that run the real models: capture -> MQTT of one camera, and
how many cameras (plus a microphone) one box holds. Kept apart so bench_runtime.py stays small.

Both run a real pipeline (`build_pipeline` of a pipeline config) with camera sources reading a
640x480 clip at 25 fps and analysing it at 2 fps, the default window and fused-model stages,
the MqttSink and a real mosquitto, and note when each event *arrives* at a paho subscriber
(DESIGN.md, "How latency is measured"). A window is complete when the first frame captured at
or after its end arrives; `frame_to_mqtt` is from that frame's capture to the window's event at
the subscriber (the pipeline's latency), `window_end_to_mqtt` from the window's end, which adds
the wait for that frame (0 to one frame interval, by the phase of the camera).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from mmstream.events import decode
from mmstream.media import AudioChunk, VideoFrame
from mmstream.runtime.stage import Source

SENTENCES = ["The parcel is on the porch next to the blue door.",
             "Please remind me to water the plants tomorrow morning.",
             "The kettle has boiled and the tea is ready now.",
             "Somebody left the garage light on again tonight."]
WARM_UP_S = 3.0  # arrivals this soon after the start are not counted


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def camera_clip(folder: Path) -> Path:
    """A camera delivers 25-30 fps and the source samples the newest frame at 2 fps; the bundled
    clip is 10 fps, whose newest frame would be up to 100 ms old at each tick."""
    from mmstream.replay.setup import sample_clip

    camera = folder / "camera25.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(sample_clip()), "-vf",
                    "scale=640:480", "-r", "25", "-c:v", "libx264", "-preset", "ultrafast",
                    "-an", str(camera)], check=True)
    return camera


MIX_PERIOD_S = 30.0  # a still camera's clip: this long, with MOVE_S of movement in it
MOVE_S = 3.0
MOVING_EVERY = 8  # in the realistic mix, every 8th camera moves all the time


def still_camera_clips(folder: Path, variants: int = 4) -> list[Path]:
    """Still scenes at 640x480, 25 fps, with sensor-like noise: the sample's first frame held,
    and MOVE_S of the sample moving once per MIX_PERIOD_S, at a different place in each
    variant (cameras loop their clip, so variant k moves at k/variants of the period)."""
    repo = Path(__file__).resolve().parent.parent
    sys.path[:0] = [str(repo)]
    from tests.stages.still_clips import still_clip

    clips = []
    for k in range(variants):
        before = round(k * MIX_PERIOD_S / variants + 2.0, 1)
        parts = [("still", before), ("moving", MOVE_S),
                 ("still", MIX_PERIOD_S - MOVE_S - before)]
        clips.append(still_clip(folder / f"still{k}.mp4", parts, size=(640, 480), fps=25,
                                noise=6))
    return clips


def camera_mix(cameras: int, mix: str, moving: Path, still: list[Path]) -> list[Path]:
    """Each camera's clip: `moving` (the worst case): all the moving sample; `still` (the
    realistic mix): every MOVING_EVERY-th camera moving, the others still scenes in turn."""
    if mix == "moving":
        return [moving] * cameras
    return [moving if i % MOVING_EVERY == MOVING_EVERY - 1 else still[i % len(still)]
            for i in range(cameras)]


def speech_clip(folder: Path, seconds: float, gap_s: float = 1.0
                ) -> tuple[Path, list[tuple[float, float]]]:
    """Sentences one after another, `gap_s` apart, for `seconds`: (wav, [(start, end)])."""
    repo = Path(__file__).resolve().parent.parent
    sys.path[:0] = [str(repo / "tests"), str(repo)]  # speech_clips imports tests.conftest
    from speech_clips import conversation

    said = [SENTENCES[i % len(SENTENCES)] for i in range(int(seconds / 4) + 1)]
    audio, truth = conversation(folder / "speech", said, gap_s=gap_s, lead_s=1.0)
    wav = folder / "speech.wav"
    raw = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "s16le", "-ar", "16000",
                    "-ac", "1", "-i", "-", str(wav)], input=raw, check=True)
    return wav, [(s.start, s.end) for s in truth if s.end < seconds - 2.0]


class Arrivals:
    """A paho subscriber noting (stream, type, event, arrival wall time) of every event."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as paho

        self.rows: list[tuple[str, str, Any, float]] = []
        subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe("bench/#", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._received
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "no SUBACK"

    def _received(self, _c: Any, _u: Any, message: Any) -> None:
        at = time.time()
        parts = message.topic.split("/")
        if len(parts) == 4:
            self.rows.append((parts[2], parts[3], decode(message.payload), at))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Marks(Source):
    """Passes a source's items on; notes each frame's capture time and, per audio chunk, the
    wall time it was handed on (when its samples were 'heard')."""

    def __init__(self, inner: Any, frames: dict[str, list[float]],
                 chunks: list[tuple[float, float, float]]) -> None:
        self.inner, self.frames, self.chunks = inner, frames, chunks
        self.name, self.stream_id = inner.name, inner.stream_id
        self.restartable, self.clock_rate = inner.restartable, inner.clock_rate

    async def __aenter__(self) -> Marks:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.inner.__aexit__(*exc_info)

    async def __aiter__(self) -> AsyncIterator[Any]:  # type: ignore[override]
        async for item in self.inner:
            if isinstance(item, VideoFrame):
                self.frames[item.stream_id].append(item.t_capture)
            elif isinstance(item, AudioChunk):
                self.chunks.append((item.t_capture, item.t_end, time.time()))
            yield item


def frame_latencies(arrivals: list[tuple[str, float, float]], frames: dict[str, list[float]]
                    ) -> tuple[list[float], list[float]]:
    """(frame -> MQTT, window end -> MQTT) in ms, per (stream, window end, arrival)."""
    from_frame, from_end = [], []
    for stream, end, at in arrivals:
        closing = [t for t in frames[stream] if t >= end]
        if closing:
            from_frame.append(1000 * (at - min(closing)))
        from_end.append(1000 * (at - end))
    return from_frame, from_end


async def run_pipeline(config: dict[str, Any], seconds: float, broker: Any
                       ) -> tuple[Arrivals, dict[str, list[float]],
                                  list[tuple[float, float, float]], dict[str, int], float]:
    from mmstream.build import build_pipeline
    from mmstream.config import load_pipeline

    arrivals = Arrivals(broker.port)
    frames: dict[str, list[float]] = defaultdict(list)
    chunks: list[tuple[float, float, float]] = []
    pipeline = build_pipeline(load_pipeline(None, base=config))
    pipeline.sources = [Marks(source, frames, chunks) for source in pipeline.sources]
    stop = asyncio.Event()
    started = time.time()
    running = asyncio.create_task(pipeline.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    report = await running
    await asyncio.sleep(1.0)  # the last messages
    arrivals.close()
    return arrivals, frames, chunks, dict(report.drops), started


async def capture_to_mqtt_models(seconds: float) -> dict[str, Any]:
    """One camera (640x480, 25 fps, analysed at 2 fps), no microphone."""
    from mmstream.demo_broker import MosquittoBroker

    broker = MosquittoBroker()
    broker.start()
    try:
        camera = camera_clip(Path(tempfile.mkdtemp(prefix="bench-camera-")))
        arrivals, frames, _, _, _ = await run_pipeline({
            "device_id": "bench",
            "sources": [{"kind": "camera", "id": "cam0", "url": str(camera), "loop": True,
                         "fps": 2.0}],
            "stages": {"transcribe": {"enabled": False}},
            "sinks": {"mqtt": {"url": broker.url, "prefix": "bench"}}}, seconds, broker)
    finally:
        broker.stop()
    result: dict[str, Any] = {"fps": 2.0, "seconds": seconds, "model_load_included": False}
    for kind in ("scene", "fused"):
        got = [(s, e.t_capture, at) for s, k, e, at in arrivals.rows if k == kind][3:]
        from_frame, from_end = frame_latencies(got, frames)
        result[kind] = {"received": len(got),
                        "frame_to_mqtt_p50_ms": round(statistics.median(from_frame), 1),
                        "frame_to_mqtt_p99_ms": round(percentile(from_frame, 99), 1),
                        "window_end_to_mqtt_p50_ms": round(statistics.median(from_end), 1),
                        "window_end_to_mqtt_p99_ms": round(percentile(from_end, 99), 1)}
    return result


def finals_latency(rows: list[tuple[str, str, Any, float]], truth: list[tuple[float, float]],
                   chunks: list[tuple[float, float, float]]) -> dict[str, Any]:
    """End of each sentence (when the chunk holding its last sample was handed on) -> arrival
    of its last final."""
    def handed(t: float) -> float | None:
        return next((wall for a, b, wall in chunks if a <= t < b), None)

    finals = [(e.payload, at) for s, k, e, at in rows if s == "speech" and k == "transcript"
              and e.payload.final]
    latencies, missing = [], 0
    for start, end in truth:
        mine = [at for p, at in finals if p.end > start and p.start < end]
        heard = handed(end)
        if not mine or heard is None:
            missing += 1
            continue
        latencies.append(max(mine) - heard)
    if not latencies:
        return {"sentences": len(truth), "missing": missing, "p50_s": None, "p95_s": None}
    p50, p95 = np.percentile(latencies, [50, 95]).tolist()
    return {"sentences": len(truth), "missing": missing, "p50_s": round(p50, 3),
            "p95_s": round(p95, 3), "max_s": round(max(latencies), 3)}


async def streams_run(clips: list[Path], seconds: float, broker: Any, speech: Path,
                      truth: list[tuple[float, float]], p99_ms: float, gate: bool = True,
                      extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """`extra`: more of the pipeline config (bench_history.py: a `history:` section)."""
    cameras = len(clips)
    sources: list[dict[str, Any]] = [
        {"kind": "camera", "id": f"cam{i}", "url": str(clip), "loop": True, "fps": 2.0}
        for i, clip in enumerate(clips)]
    sources.append({"kind": "file", "id": "speech", "path": str(speech), "realtime": True})
    arrivals, frames, chunks, drops, started = await run_pipeline({
        "device_id": "bench", "sources": sources,
        "stages": {"infer": {"change_gate": {"enabled": gate}}},
        "sinks": {"mqtt": {"url": broker.url, "prefix": "bench", "spool": {"path": "memory"}}},
        **(extra or {})}, seconds, broker)
    counted = [(s, e.t_capture, at) for s, k, e, at in arrivals.rows
               if k == "scene" and s.startswith("cam") and at >= started + WARM_UP_S]
    from_frame, from_end = frame_latencies(counted, frames)
    missing = 0  # windows of the grid between a camera's first and last that never came
    for index in range(cameras):
        ends = sorted({round(t) for s, t, _ in counted if s == f"cam{index}"})
        missing += (ends[-1] - ends[0] + 1 - len(ends)) if ends else 1
    shed = {k: v for k, v in drops.items() if v and "shed" in k}  # frames or windows
    late_text = {k: v for k, v in drops.items() if v and "not_waited" in k}
    speech_finals = finals_latency(arrivals.rows, truth, chunks)
    third = started + 2 * seconds / 3
    late = [ms for ms, (_, _, at) in zip(from_frame, counted, strict=False) if at >= third]
    scenes = [e for s, k, e, _ in arrivals.rows if k == "scene" and s.startswith("cam")]
    carried = sum(1 for e in scenes if e.payload.carried)
    result = {
        "cameras": cameras, "seconds": seconds, "windows": len(counted),
        # load-independent: how much of the vision work the change gate saved
        "windows_carried": round(carried / len(scenes), 3) if scenes else None,
        "analysed_per_camera_s": round((len(scenes) - carried) / (cameras * seconds), 3),
        "windows_missing": missing, "shed": shed, "windows_without_their_text": late_text,
        "drops": {k: v for k, v in drops.items() if v},
        "frame_to_mqtt_ms": {"p50": round(statistics.median(from_frame), 1),
                             "p99": round(percentile(from_frame, 99), 1),
                             "last_third_p99": round(percentile(late, 99), 1) if late else None},
        "window_end_to_mqtt_ms": {"p50": round(statistics.median(from_end), 1),
                                  "p99": round(percentile(from_end, 99), 1)},
        "finals": speech_finals,
    }
    result["holds"] = bool(
        result["frame_to_mqtt_ms"]["p99"] <= p99_ms and missing == 0 and not shed
        and speech_finals["missing"] == 0 and speech_finals["p50_s"] is not None
        and speech_finals["p50_s"] <= 0.8 and speech_finals["p95_s"] <= 1.2)
    return result


async def streams_per_box(max_cameras: int, seconds: float, p99_ms: float = 250.0,
                          mix: str = "moving", counts: list[int] | None = None,
                          gates: tuple[bool, ...] = (True,)) -> dict[str, Any]:
    """Ramp the cameras (plus one microphone speaking all along) until a run does not hold;
    `counts`: run just these camera counts, each whatever the others did. `mix`: see
    camera_mix. `gates` (True: change gating on): each count is run with each in turn, side
    by side, so a busy box weighs on both alike."""
    from mmstream.demo_broker import MosquittoBroker

    folder = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    camera = camera_clip(folder)
    still = still_camera_clips(folder) if mix == "still" else []
    speech, truth = speech_clip(folder, seconds)
    broker = MosquittoBroker()
    broker.start()
    runs = []
    try:
        for cameras in counts or range(1, max_cameras + 1):
            for gate in gates:
                runs.append(await streams_run(camera_mix(cameras, mix, camera, still), seconds,
                                              broker, speech, truth, p99_ms, gate))
                runs[-1]["gate"] = gate
                print({k: runs[-1][k] for k in ("cameras", "gate", "frame_to_mqtt_ms",
                                                "windows_missing", "shed", "finals",
                                                "windows_carried", "analysed_per_camera_s",
                                                "holds")}, flush=True)
            if not runs[-1]["holds"] and not counts:
                break
    finally:
        broker.stop()
    held = [r["cameras"] for r in runs if r["holds"] and r["gate"]]  # a ramp stops at a failure
    return {"criteria": {"frame_to_mqtt_p99_ms": p99_ms, "windows_missing": 0, "shed": 0,
                         "finals_p50_s": 0.8, "finals_p95_s": 1.2},
            "mix": mix, "cameras_held": max(held, default=0), "runs": runs}
