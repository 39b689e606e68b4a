"""Speech benchmark: accuracy, speed and latency of live transcription, every figure measured in
one run beside its baseline (a shared 2-core box is noisy: compare ratios within a run).

    python benchmarks/bench_asr.py                     # `before` and `after`, ~6 min on 2 cores
    python benchmarks/bench_asr.py --quick             # 4 sentences, shorter idle window
    python benchmarks/bench_asr.py --variants before,after,margin,sentence_end --rounds 2

Variants are `stages.transcribe` settings (VARIANTS below): `before` is the stage as it was
before issue 20 (finals only after the 500 ms hang-over, first partial after 1 s of speech,
whisper's full 30 s window), `after` the defaults; the others switch one lever at a time.

- offline: plain faster-whisper (tiny.en int8, 2 CPU threads, beam 5, its own defaults, full
  30 s window) over clips of two sentences each: `rtf_offline`, `wer_offline` (the target of
  the streaming finals); and over the live runs' own clips, each decoded whole:
  `wer_offline_live_clips` (the target of the live finals).
- streaming, per variant: the TranscribeStage over the same clips fed as fast as possible
  (VAD, partials, finals): `rtf` and `wer` of its finals.
- live, per variant: a real `mmstream run` with a microphone source on a virtual ALSA capture
  device (tests/virtual_mic.py), fed in real time: eight (--quick: four) espeak
  sentences of 3-5 s, 4 s of silence after each; the MqttSink publishes to a real mosquitto
  and a paho subscriber notes when each transcript *arrives* (docs: DESIGN.md, "How latency is
  measured"). Per sentence: `final` = arrival of its (last) final - when its last sample was
  handed to the microphone; `first_text` = arrival of its first transcript (a partial, or the
  final if no partial came first) - when its first sample was; WER of the live finals; and
  `idle_cpu_percent`, the process's CPU (one core = 100 %) while the microphone hears silence.
Writes benchmarks/results/asr[_quick].json and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from speech_clips import chunks, conversation  # noqa: E402
from virtual_mic import VirtualMic  # noqa: E402
from word_errors import word_error_rate  # noqa: E402

from mmstream.config import FAST, TranscribeConfig  # noqa: E402
from mmstream.demo_broker import MosquittoBroker  # noqa: E402
from mmstream.events import TranscriptEvent, decode  # noqa: E402
from mmstream.media import AUDIO_RATE  # noqa: E402
from mmstream.models.whisper import load_whisper  # noqa: E402
from mmstream.runtime.harness import StageHarness  # noqa: E402
from mmstream.stages.transcribe import TranscribeStage  # noqa: E402

SENTENCES = [
    "The garage door has been open for ten minutes.",
    "Please remind me to call my sister tomorrow morning.",
    "The temperature in the kitchen is twenty one degrees.",
    "Someone is standing at the front door with a package.",
    "Turn off the lights in the living room and lock the back door.",
    "The washing machine finished its cycle a moment ago.",
    "It will rain this afternoon so bring the chairs inside.",
    "The baby monitor heard crying in the nursery.",
    "Start the coffee machine at seven o'clock every weekday.",
    "The battery of the smoke detector in the hallway is low.",
]
BEFORE: dict[str, Any] = {"sentence_end_ms": None, "first_partial_s": 1.0,
                          "context_margin_s": None, "cpu_threads": 2}


def lever_on(setting: str) -> dict[str, Any]:
    """`before` with one of today's settings back at its default."""
    return {k: v for k, v in BEFORE.items() if k != setting}


VARIANTS: dict[str, dict[str, Any]] = {
    "before": BEFORE,
    "after": {},
    # one lever at a time, from `before`
    "margin": lever_on("context_margin_s"),
    "sentence_end": lever_on("sentence_end_ms"),
    "first_partial": lever_on("first_partial_s"),
    # beam width of the finals, on `after`
    "beam1": {"beam_size": 1},
    "beam3": {"beam_size": 3},
    # whisper on one core of two (frees the other for cameras: bench_runtime --streams)
    "threads1": {"cpu_threads": 1},
    "threads2": {"cpu_threads": 2},
    # issue 32: a finished sentence ends at a short pause, a less sure one at a longer one;
    # partials sooner early in the speech
    # the defaults from issue 33 to issue 32: finals only after a 700 ms pause, partials at
    # 0.5 s, then every second
    "issue33": {"sentence_end_ms": 700, "loose_sentence_end_ms": None, "first_partial_s": 0.5,
                "partial_ramp": False},
    "s300": {"sentence_end_ms": 300},
    "s300l500": {"sentence_end_ms": 300, "loose_sentence_end_ms": 500},
    "s300l700": {"sentence_end_ms": 300, "loose_sentence_end_ms": 700},
    "pad150": {"speech_pad_ms": 150},  # the final's decode starts ~64 ms sooner
    "ramp03": {"first_partial_s": 0.3, "partial_ramp": True},
    "ramp04": {"first_partial_s": 0.4, "partial_ramp": True},
}
MIC_RATE = 16000
SILENCE_AFTER_S = 4.0


def make_clips(tmp: Path, count: int) -> list[tuple[np.ndarray, list[Any]]]:
    """Clips of two sentences each with a pause between, like someone talking to the house."""
    picked = SENTENCES[:count]
    return [conversation(tmp / f"clip{i}", picked[i:i + 2], gap_s=1.2, lead_s=0.5)
            for i in range(0, len(picked), 2)]


def wer_of(pairs: list[tuple[str, str]]) -> float:
    """Corpus WER: errors over all reference words."""
    errors = sum(word_error_rate(ref, hyp) * len(ref.split()) for ref, hyp in pairs)
    return errors / max(1, sum(len(ref.split()) for ref, _ in pairs))


def live_clips(tmp: Path, count: int) -> list[tuple[np.ndarray, list[Any]]]:
    """What the live runs speak: one sentence, then SILENCE_AFTER_S of silence, each."""
    return [conversation(tmp / f"live{index}", [text], gap_s=SILENCE_AFTER_S, lead_s=0.0,
                         rate=MIC_RATE) for index, text in enumerate(SENTENCES[:count])]


def offline(clips: list[tuple[np.ndarray, list[Any]]]) -> dict[str, float]:
    model = load_whisper("bundled", "cpu", "int8", 2)
    model.transcribe(clips[0][0][:AUDIO_RATE], beam_size=1, language="en")  # warm up
    seconds, pairs = 0.0, []
    for audio, truth in clips:
        started = time.perf_counter()
        segments, _ = model.transcribe(audio, beam_size=5, language="en")
        text = " ".join(s.text.strip() for s in segments)
        seconds += time.perf_counter() - started
        pairs.append((" ".join(s.text for s in truth), text))
    duration = sum(len(a) for a, _ in clips) / AUDIO_RATE
    return {"rtf_offline": seconds / duration, "wer_offline": wer_of(pairs), "audio_s": duration}


async def streaming(clips: list[tuple[np.ndarray, list[Any]]], settings: dict[str, Any]
                    ) -> dict[str, Any]:
    """The stage over the clips as fast as possible: the transcripts a live run gives, and
    when each was decided in media time (load-free: a live run adds the decode's wait)."""
    stage = TranscribeStage(TranscribeConfig(**settings), policy=FAST)
    seconds, pairs, decided, first = 0.0, [], [], []
    async with StageHarness(stage) as harness:
        for index, (audio, truth) in enumerate(clips):
            started = time.perf_counter()
            out = []
            for item in chunks(audio, stream_id=f"clip{index}"):
                out += await harness.feed(item)
            seconds += time.perf_counter() - started
            said = [e for e in out if isinstance(e, TranscriptEvent)]
            pairs.append((" ".join(s.text for s in truth),
                          " ".join(e.payload.text for e in said if e.payload.final)))
            for spoken in truth:  # the transcripts of each sentence: decided after its start
                mine = [e for e in said if spoken.start - 0.3 <= e.t_capture]
                if mine:
                    first.append(mine[0].t_capture - spoken.start)
                finals = [e for e in mine if e.payload.final]
                if finals:
                    decided.append(finals[0].t_capture - spoken.end)
    duration = sum(len(a) for a, _ in clips) / AUDIO_RATE
    return {"rtf": round(seconds / duration, 4), "wer": round(wer_of(pairs), 4),
            "final_decided_media_s": spread(decided), "first_text_media_s": spread(first)}


class Subscriber:
    """A paho client noting (arrival wall time, event) of every transcript."""

    def __init__(self, port: int) -> None:
        self.events: list[tuple[float, Any]] = []
        subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe("bench/+/+/transcript", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = lambda _c, _u, msg: self.events.append(
            (time.time(), decode(msg.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "no SUBACK from mosquitto"

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class LiveRun:
    """`mmstream run` on a virtual microphone publishing to mosquitto; CPU from /proc."""

    def __init__(self, tmp: Path, broker: MosquittoBroker, settings: dict[str, Any]) -> None:
        self.mic = VirtualMic(tmp / "home", rate=MIC_RATE, period=1024).install()
        config = {
            "device_id": "bench",
            "sources": [{"kind": "microphone", "id": "mic0", "device": self.mic.device,
                         "blocksize": self.mic.period}],
            "stages": {"window": {"enabled": False}, "transcribe": settings},
            "sinks": {"mqtt": {"url": broker.url, "prefix": "bench",
                               "spool": {"path": "memory"}}},
        }
        (tmp / "mic.yaml").write_text(yaml.safe_dump(config))
        self.stderr = tmp / "stderr.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mmstream", "run", str(tmp / "mic.yaml")], cwd=REPO,
            env={**os.environ, "HOME": str(self.mic.home), "PYTHONUNBUFFERED": "1",
                 "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL, stderr=self.stderr.open("w"), text=True)

    def wait_online(self) -> None:
        """Until the microphone opened (the model is loaded before the source), + 2 s."""
        deadline = time.monotonic() + 90
        while "online" not in self.stderr.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.0)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.mic.close()


def handed_at(clip_start: float, sample: float, period: int) -> float:
    """Wall time the feeder wrote the period holding `sample` (s into the clip)."""
    return clip_start + (int(sample * MIC_RATE) // period) * period / MIC_RATE


def live(tmp: Path, broker: MosquittoBroker, settings: dict[str, Any], count: int,
         idle_s: float) -> dict[str, Any]:
    subscriber = Subscriber(broker.port)
    run = LiveRun(tmp, broker, settings)
    try:
        run.wait_online()
        cpu0, wall0 = run.cpu_seconds(), time.monotonic()
        time.sleep(idle_s)
        idle = (run.cpu_seconds() - cpu0) / (time.monotonic() - wall0) * 100
        spoken = []
        for audio, truth in live_clips(tmp, count):
            spoken.append(truth[0])
            run.mic.play(audio)
        run.mic.wait_played(count * 10 + 30)
        time.sleep(2.0)  # the last final
    finally:
        run.stop()
        subscriber.close()
    starts = run.mic.clip_started
    rows = []
    for index, truth in enumerate(spoken):
        begin = starts[index]
        end = starts[index + 1] if index + 1 < len(starts) else float("inf")
        mine = [(at, e) for at, e in subscriber.events if begin <= at < end]
        finals = [(at, e) for at, e in mine if e.payload.final]
        if not finals:
            rows.append({"text": truth.text, "heard": ""})
            continue
        rows.append({
            "text": truth.text,
            "heard": " ".join(e.payload.text for _, e in finals),
            "finals": len(finals),
            "final_s": round(finals[-1][0] - handed_at(begin, truth.end, run.mic.period), 3),
            "first_text_s": round(mine[0][0] - handed_at(begin, truth.start,
                                                          run.mic.period), 3),
            "first_is_partial": not mine[0][1].payload.final})
    return {"idle_cpu_percent": round(idle, 2), "sentences": len(rows),
            "finals_received": sum("final_s" in r for r in rows), "rows": rows,
            "wer_live": round(wer_of([(r["text"], r["heard"]) for r in rows]), 4)}


def spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None}
    p50, p95 = np.percentile(values, [50, 95]).tolist()
    return {"p50": round(p50, 3), "p95": round(p95, 3), "max": round(max(values), 3)}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rows = [r for run in runs for r in run["rows"] if "final_s" in r]
    return {
        "final_s": spread([r["final_s"] for r in rows]),
        "first_text_s": spread([r["first_text_s"] for r in rows]),
        "first_is_partial": sum(r["first_is_partial"] for r in rows),
        "wer_live": round(float(np.mean([run["wer_live"] for run in runs])), 4),
        "finals_received": sum(run["finals_received"] for run in runs),
        "sentences": sum(run["sentences"] for run in runs),
        "idle_cpu_percent": round(float(np.mean([run["idle_cpu_percent"] for run in runs])), 2),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--variants", default="before,after",
                        help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--rounds", type=int, default=1,
                        help="live runs per variant, interleaved (before, after, before, ...)")
    parser.add_argument("--rounds-streaming", type=int, default=1,
                        help="passes of the streaming (fast) measure per variant")
    parser.add_argument("--no-live", action="store_true", help="offline and streaming only")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    names = args.variants.split(",")
    count, idle_s = (4, 8.0) if args.quick else (8, 15.0)
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU used, "
                   f"shared while measuring",
        "model": "bundled tiny.en, int8; the stage's threads per variant (default 1), offline 2",
        "variants": {name: {"settings": VARIANTS[name]} for name in names},
    }
    broker = MosquittoBroker()
    broker.start()
    try:
        with tempfile.TemporaryDirectory() as tmp_dir:
            tmp = Path(tmp_dir)
            clips = make_clips(tmp, 10 if not args.quick else 4)
            base = offline(clips)
            spoken = offline(live_clips(tmp, count))  # the live runs' clips, decoded whole
            result.update(audio_s=round(base["audio_s"], 1),
                          rtf_offline=round(base["rtf_offline"], 4),
                          wer_offline=round(base["wer_offline"], 4),
                          wer_offline_live_clips=round(spoken["wer_offline"], 4))
            passes: dict[str, list[dict[str, float]]] = {name: [] for name in names}
            for _ in range(args.rounds_streaming):  # interleaved, as the live runs
                for name in names:
                    passes[name].append(asyncio.run(streaming(clips, VARIANTS[name])))
            for name in names:
                result["variants"][name]["streaming"] = {
                    "rtf": round(float(np.median([p["rtf"] for p in passes[name]])), 4),
                    "wer": passes[name][0]["wer"], "passes": len(passes[name]),
                    "final_decided_media_s": passes[name][0]["final_decided_media_s"],
                    "first_text_media_s": passes[name][0]["first_text_media_s"]}
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
            for round_index in range(0 if args.no_live else args.rounds):
                for name in names:
                    where = tmp / f"live-{name}-{round_index}"
                    runs[name].append(live(where, broker, VARIANTS[name], count, idle_s))
                    print(name, json.dumps(summarise(runs[name][-1:])["final_s"]), flush=True)
    finally:
        broker.stop()
    for name in names:
        if runs[name]:
            result["variants"][name]["live"] = summarise(runs[name])
    for base in ("before", "issue33"):  # the ratio to each baseline measured in this run
        if not args.no_live and base in names and "after" in names:
            before, after = (result["variants"][n]["live"] for n in (base, "after"))
            result[f"after_over_{base}"] = {
                key: round(after[key]["p50"] / before[key]["p50"], 3)
                for key in ("final_s", "first_text_s")
                if after[key]["p50"] and before[key]["p50"]}
    after = result["variants"].get("after", {}).get("live")
    if after is not None:
        # issue 32's targets (issue 20's were 0.8 / 1.2 / 1.0 s)
        result["targets"] = {"final_p50_s": 0.5, "final_p95_s": 0.8, "first_text_p50_s": 0.6,
                             "wer_live": "<= wer_offline_live_clips", "rtf_offline": 0.10,
                             "idle_cpu_percent": 5.0}
        result["meets"] = {
            "final_p50_s": (after["final_s"]["p50"] or 99) <= 0.5,
            "final_p95_s": (after["final_s"]["p95"] or 99) <= 0.8,
            "first_text_p50_s": (after["first_text_s"]["p50"] or 99) <= 0.6,
            "wer_live": after["wer_live"] <= result["wer_offline_live_clips"],
            "rtf_offline": result["rtf_offline"] <= 0.10,
            "idle_cpu_percent": after["idle_cpu_percent"] < 5.0}
    out = args.out or REPO / "benchmarks" / "results" / f"asr{'_quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "variants"}, indent=2))
    for name in names:
        v = result["variants"][name]
        print(name, json.dumps({"streaming": v["streaming"], **{
            k: v["live"][k] for k in ("final_s", "first_text_s", "wer_live", "idle_cpu_percent")
            if "live" in v}}))


if __name__ == "__main__":
    main()
