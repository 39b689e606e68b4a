"""Runtime benchmark: the framework's own cost, without models.

    python benchmarks/bench_runtime.py --quick      # <= 1 min: throughput + per-stage latency
    python benchmarks/bench_runtime.py              # + RSS soak + capture->MQTT latency

- events_per_s: events through 5 pass-through stages to a sink, as fast as the runner goes
  (bare, and with the metrics observer attached: `metrics_overhead_ratio`).
- p99_stage_ms: latency a stage adds (entry into stage k -> entry into stage k+1), p99 of the
  worst stage, at an offered load of `latency_rate` events/s (below saturation, so it measures
  the runner rather than a queue that is full by construction).
- soak: video frames (10 fps, 320x240), audio (10 chunks/s) and events (500/s) through the
  overload stage + 5 stages + metrics for `--soak-s`; RSS growth after a warm-up.
- capture->MQTT: frames stamped at capture (wall clock) at the default analysis rate (2 fps),
  one event per frame through the real MqttSink and mosquitto to a paho subscriber thread.
- capture->MQTT with models (`capture_to_mqtt_models`, or alone with `--models-only`): a real
  camera source (the bundled clip at 640x480, 25 fps, looping; analysed at 2 fps) through the
  default window and fused-model stages, the MqttSink and mosquitto (runtime_models.py).
- streams per box (`--streams`): 1, 2, 3, ... such cameras plus one microphone speaking all the
  time (a speech file played in real time, a sentence every ~4 s), each run `--e2e-s` long,
  until a run does not hold: frame -> MQTT p99 <= 250 ms over every camera window, no window
  missing or shed, and the speech finals within target (end of sentence -> arrival p50 <= 0.8 s,
  p95 <= 1.2 s). Reports the last camera count that held. `--mix moving` (the default, the
  worst case): every camera films the moving sample; `--mix still`: the realistic mix, most
  cameras on still scenes (the sample's first frame held, with sensor-like noise, and 3 s of
  the sample moving once every 30 s, at staggered times) and every 8th on the moving sample.
  Each run also reports `windows_carried` (the fraction of windows whose image results the
  change gate carried over) and `analysed_per_camera_s` (image analyses per second per
  camera), which do not depend on the load of the box. `--cameras 12,16` runs just those;
  `--gate-off-too` runs each count again with change gating off, side by side.
Prints one JSON object and writes it to benchmarks/results/runtime[_quick|_models|_streams].json
(or --out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from mmstream.config import MqttSinkConfig, OverloadConfig
from mmstream.events import Scene, SceneEvent, Tag, decode
from mmstream.media import AudioChunk, VideoFrame
from mmstream.runtime.metrics import PipelineMetrics
from mmstream.runtime.pipeline import Pipeline
from mmstream.runtime.stage import Sink, Source, Stage
from mmstream.stages.overload import OverloadStage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_models import capture_to_mqtt_models, streams_per_box

RESULTS = Path(__file__).parent / "results"
STAGES = 5
SCENE = Scene(tags=[Tag("kitchen", 0.9)], model="bench")


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class EventSource(Source):
    """`count` scene events; with `rate`, paced in 10 ms ticks (wall clock)."""

    name = "bench"
    stream_id = "s0"

    def __init__(self, count: int, rate: float | None = None) -> None:
        self.count, self.rate = count, rate

    async def __aiter__(self) -> AsyncIterator[Any]:  # type: ignore[override]
        per_tick = max(1, int((self.rate or 0) / 100))
        started = time.perf_counter()
        for index in range(self.count):
            yield SceneEvent(stream_id="s0", t_capture=float(index), payload=SCENE)
            if self.rate and index % per_tick == per_tick - 1:
                delay = started + (index + 1) / self.rate - time.perf_counter()
                await asyncio.sleep(max(0.0, delay))


class MarkingStage(Stage):
    """Passes items on; records when item i entered this stage."""

    def __init__(self, index: int, marks: np.ndarray) -> None:
        self.name = f"stage{index}"
        self.index, self.marks = index, marks

    async def process(self, item: Any) -> None:
        self.marks[self.index, int(item.t_capture)] = time.perf_counter()
        await self.emit(item)


class CountingSink(Sink):
    def __init__(self, marks: np.ndarray | None = None) -> None:
        self.count, self.marks = 0, marks

    async def send(self, event: Any) -> None:
        if self.marks is not None:
            self.marks[STAGES, int(event.t_capture)] = time.perf_counter()
        self.count += 1


async def throughput(count: int, with_metrics: bool) -> float:
    sink = CountingSink()
    stages = [Stage() for _ in range(STAGES)]
    for index, stage in enumerate(stages):
        stage.name = f"stage{index}"
    pipeline = Pipeline([EventSource(count)], stages, [sink], device_id="bench",
                        observers=[PipelineMetrics()] if with_metrics else [])
    started = time.perf_counter()
    await pipeline.run()
    elapsed = time.perf_counter() - started
    assert sink.count == count
    return count / elapsed


async def stage_latency(count: int, rate: float) -> dict[str, Any]:
    marks = np.zeros((STAGES + 1, count))
    stages = [MarkingStage(index, marks) for index in range(STAGES)]
    pipeline = Pipeline([EventSource(count, rate)], stages, [CountingSink(marks)],
                        device_id="bench")
    await pipeline.run()
    warm = count // 10  # skip the start-up
    per_stage = {f"stage{k}": (marks[k + 1, warm:] - marks[k, warm:]) * 1000
                 for k in range(STAGES)}
    return {name: {"p50_ms": round(float(np.percentile(ms, 50)), 4),
                   "p99_ms": round(float(np.percentile(ms, 99)), 4)}
            for name, ms in per_stage.items()}


class LiveSource(Source):
    """Video frames at `fps` (320x240), 100 ms audio chunks, and events at `event_rate`/s."""

    name = "live"
    stream_id = "cam0"
    restartable = True

    def __init__(self, seconds: float, fps: float, event_rate: int = 0) -> None:
        self.seconds, self.fps, self.event_rate = seconds, fps, event_rate
        self.stop_at = 0.0

    async def __aiter__(self) -> AsyncIterator[Any]:  # type: ignore[override]
        started = time.monotonic()
        frame_every, tick, index = max(1, round(100 / self.fps)), 0, 0
        while (now := time.monotonic()) - started < self.seconds:
            if tick % frame_every == 0:
                image = np.full((240, 320, 3), index % 251, dtype=np.uint8)
                yield VideoFrame("cam0", time.time(), image, index)
                index += 1
            if tick % 10 == 0:
                yield AudioChunk("cam0", time.time(), np.zeros(1600, dtype=np.float32))
            for _ in range(self.event_rate // 100):
                yield SceneEvent(stream_id="cam0", t_capture=time.time(), payload=SCENE)
            tick += 1
            await asyncio.sleep(max(0.0, started + tick / 100 - now))


async def soak(seconds: float) -> dict[str, Any]:
    governor = OverloadStage(OverloadConfig())
    stages: list[Stage] = [governor, *(Stage() for _ in range(STAGES))]
    for index, stage in enumerate(stages[1:]):
        stage.name = f"stage{index}"
    sink = CountingSink()
    observer = PipelineMetrics()
    pipeline = Pipeline([LiveSource(seconds, fps=10, event_rate=500)], stages, [sink],
                        device_id="bench", observers=[observer])
    samples: list[tuple[float, float]] = []

    async def sample_rss() -> None:
        started = time.monotonic()
        while True:
            observer.sample()
            samples.append((time.monotonic() - started, rss_mb()))
            await asyncio.sleep(max(1.0, seconds / 60))

    sampler = asyncio.create_task(sample_rss())
    await pipeline.run()
    sampler.cancel()
    warm = [rss for at, rss in samples if at >= min(30.0, seconds / 5)] or [samples[-1][1]]
    return {"seconds": seconds, "events": sink.count, "rss_start_mb": round(warm[0], 1),
            "rss_end_mb": round(warm[-1], 1), "rss_max_mb": round(max(warm), 1),
            "rss_growth_pct": round(100 * (warm[-1] - warm[0]) / warm[0], 2),
            "drops": pipeline.drops()}


class FrameToEvent(Stage):
    """Stands in for an analysis: one scene event per frame, stamped with its capture time."""

    name = "frame-to-event"

    async def process(self, item: Any) -> None:
        if isinstance(item, VideoFrame):
            level = float(item.image[::16, ::16].mean()) / 255
            await self.emit(SceneEvent(stream_id=item.stream_id, t_capture=item.t_capture,
                                       payload=Scene(tags=[Tag("brightness", level)],
                                                     model="bench")))
        elif not isinstance(item, AudioChunk):
            await self.emit(item)


async def capture_to_mqtt(seconds: float, fps: float) -> dict[str, Any]:
    import paho.mqtt.client as paho

    from mmstream.demo_broker import MosquittoBroker
    from mmstream.sinks.mqtt import MqttSink

    broker = MosquittoBroker()
    broker.start()
    latencies: list[float] = []
    subscribed = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *_: (c.subscribe("bench/#", qos=1), subscribed.set())
    client.on_message = lambda _c, _u, msg: latencies.append(
        time.time() - decode(msg.payload).t_capture) if not msg.topic.endswith("/status") else None
    try:
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        subscribed.wait(10)
        await asyncio.sleep(0.5)
        sink = MqttSink(MqttSinkConfig(url=broker.url, prefix="bench"), "bench")
        pipeline = Pipeline([LiveSource(seconds, fps)], [FrameToEvent()], [sink],
                            device_id="bench")
        await pipeline.run()
        await asyncio.sleep(1.0)
    finally:
        client.loop_stop()
        client.disconnect()
        broker.stop()
    ms = [value * 1000 for value in latencies]
    return {"fps": fps, "seconds": seconds, "received": len(ms),
            "p50_ms": round(statistics.median(ms), 2), "p99_ms": round(percentile(ms, 99), 2),
            "max_ms": round(max(ms), 2)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.streams:
        return {"benchmark": "runtime", "mode": "streams",
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                           f"{platform.python_version()}",
                "streams_per_box": await streams_per_box(
                    args.max_cameras, args.e2e_s, mix=args.mix,
                    counts=[int(n) for n in args.cameras.split(",")] if args.cameras else None,
                    gates=(True, False) if args.gate_off_too else (True,))}
    if args.models_only:
        return {"benchmark": "runtime", "mode": "models-only",
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                           f"{platform.python_version()}",
                "capture_to_mqtt_models": await capture_to_mqtt_models(args.e2e_s)}
    count = 30_000 if args.quick else 200_000
    bare = await throughput(count, with_metrics=False)
    observed = await throughput(count, with_metrics=True)
    latency = await stage_latency(10_000 if args.quick else 50_000, args.latency_rate)
    result: dict[str, Any] = {
        "benchmark": "runtime", "mode": "quick" if args.quick else "full",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "stages": STAGES, "events": count,
        "events_per_s": round(bare), "events_per_s_with_metrics": round(observed),
        "metrics_overhead_ratio": round(bare / observed, 3),
        "latency_rate": args.latency_rate,
        "p99_stage_ms": max(stage["p99_ms"] for stage in latency.values()),
        "per_stage": latency,
    }
    if not args.quick:
        result["soak"] = await soak(args.soak_s)
        if shutil.which("mosquitto"):
            result["capture_to_mqtt"] = await capture_to_mqtt(args.e2e_s, fps=2.0)
            result["capture_to_mqtt_models"] = await capture_to_mqtt_models(args.e2e_s)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="<= 1 minute: no soak, no MQTT")
    parser.add_argument("--soak-s", type=float, default=600.0, help="soak duration (full mode)")
    parser.add_argument("--e2e-s", type=float, default=60.0, help="capture->MQTT duration")
    parser.add_argument("--models-only", action="store_true",
                        help="only capture->MQTT with the real models (--e2e-s long)")
    parser.add_argument("--latency-rate", type=float, default=2000.0,
                        help="offered events/s for the per-stage latency")
    parser.add_argument("--streams", action="store_true",
                        help="only the streams-per-box ramp (each step --e2e-s long)")
    parser.add_argument("--max-cameras", type=int, default=10, help="where the ramp stops")
    parser.add_argument("--cameras", default=None,
                        help="instead of the ramp, just these camera counts (e.g. 8,12,16)")
    parser.add_argument("--gate-off-too", action="store_true",
                        help="each camera count also with change gating off, right after")
    parser.add_argument("--mix", choices=("moving", "still"), default="moving",
                        help="moving: every camera moves all the time (the worst case); still: "
                        "most on still scenes with 3 s of movement every 30 s, 1 in 8 moving")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default results/)")
    options = parser.parse_args()
    outcome = asyncio.run(main(options))
    name = ("runtime_quick" if options.quick else "runtime_streams" if options.streams else
            "runtime_models" if options.models_only else "runtime")
    target = options.out or RESULTS / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(outcome, indent=2) + "\n")
    print(json.dumps(outcome))
