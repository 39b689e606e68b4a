"""Speech benchmark: accuracy, speed and latency of live transcription, all measured in one run.

    python benchmarks/bench_asr.py            # a few minutes on 2 cores
    python benchmarks/bench_asr.py --quick    # fewer sentences, shorter idle window

- rtf_offline: seconds of faster-whisper (tiny.en int8, 2 CPU threads, beam 5) per second of
  audio, over every test clip decoded whole (target <= 0.10).
- rtf_streaming / rtf_streaming_finals_only: wall time of the TranscribeStage over the same
  clips fed as fast as possible (VAD + partials every 1 s + finals) per second of audio.
- wer_streaming vs wer_offline: word error rate of the streaming finals and of plain offline
  faster-whisper (its own defaults, beam 5) on the same clips, against the spoken text
  (target: streaming no worse than offline).
- eou_to_final_s p50/p95: a real `mmstream run` with a microphone source reading a virtual
  ALSA capture device fed in real time; from the end of each spoken sentence (wall clock, known
  from when the feeder wrote it) to `t_publish` of its final (target p50 <= 1.0 s). It includes
  the VAD's end-of-speech hangover (`min_silence_ms`, reported alongside).
- idle_cpu_percent: CPU time of that same process (one core = 100 %) while the microphone
  delivers only silence (target < 5 %).
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
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from speech.clips import chunks, conversation  # noqa: E402

from mmstream.audio.virtual_mic import VirtualMic  # noqa: E402
from mmstream.config import TranscribeConfig  # noqa: E402
from mmstream.events import TranscriptEvent  # noqa: E402
from mmstream.media import AUDIO_RATE  # noqa: E402
from mmstream.models.whisper import load_whisper, word_error_rate  # noqa: E402
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
MIC_RATE = 16000


def make_clips(tmp: Path, count: int) -> list[tuple[np.ndarray, list[Any]]]:
    """Clips of two sentences each with a pause between, like someone talking to the house."""
    picked = SENTENCES[:count]
    return [conversation(tmp / f"clip{i}", picked[i:i + 2], gap_s=1.2, lead_s=0.5)
            for i in range(0, len(picked), 2)]


def offline(clips: list[tuple[np.ndarray, list[Any]]]) -> dict[str, float]:
    model = load_whisper("bundled", "cpu", "int8", 2)
    model.transcribe(clips[0][0][:AUDIO_RATE], beam_size=1, language="en")  # warm up
    seconds, errors, words = 0.0, 0.0, 0
    for audio, truth in clips:
        started = time.perf_counter()
        segments, _ = model.transcribe(audio, beam_size=5, language="en")
        text = " ".join(s.text.strip() for s in segments)
        seconds += time.perf_counter() - started
        reference = " ".join(s.text for s in truth)
        errors += word_error_rate(reference, text) * len(reference.split())
        words += len(reference.split())
    duration = sum(len(a) for a, _ in clips) / AUDIO_RATE
    return {"rtf_offline": seconds / duration, "wer_offline": errors / words,
            "audio_s": duration}


async def streaming(clips: list[tuple[np.ndarray, list[Any]]], partials: bool) -> dict[str, float]:
    stage = TranscribeStage(TranscribeConfig(partials=partials), mode="fast")
    seconds, errors, words = 0.0, 0.0, 0
    async with StageHarness(stage) as harness:
        for index, (audio, truth) in enumerate(clips):
            started = time.perf_counter()
            out = []
            for item in chunks(audio, stream_id=f"clip{index}"):
                out += await harness.feed(item)
            seconds += time.perf_counter() - started
            finals = [e.payload.text for e in out
                      if isinstance(e, TranscriptEvent) and e.payload.final]
            reference = " ".join(s.text for s in truth)
            errors += word_error_rate(reference, " ".join(finals)) * len(reference.split())
            words += len(reference.split())
    duration = sum(len(a) for a, _ in clips) / AUDIO_RATE
    return {"rtf": seconds / duration, "wer": errors / words}


class LiveRun:
    """`mmstream run` on a virtual microphone; events from its stdout, CPU from /proc."""

    def __init__(self, tmp: Path) -> None:
        self.mic = VirtualMic(tmp / "home", rate=MIC_RATE, period=1024).install()
        config = {
            "device_id": "bench",
            "sources": [{"kind": "microphone", "id": "mic0", "device": self.mic.device,
                         "blocksize": self.mic.period}],
            "stages": {"window": {"enabled": False}},
            "sinks": {"jsonl": {"path": "-"}},
        }
        (tmp / "mic.yaml").write_text(yaml.safe_dump(config))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mmstream", "run", str(tmp / "mic.yaml")], cwd=REPO,
            env={**os.environ, "HOME": str(self.mic.home), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE, stderr=(tmp / "stderr.log").open("w"), text=True)
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.events.append(json.loads(line))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def finals(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == "transcript" and e["payload"]["final"]]

    def wait(self, until: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.mic.close()


def live(tmp: Path, count: int, idle_s: float) -> dict[str, Any]:
    run = LiveRun(tmp)
    try:
        run.wait(lambda: any(e["type"] == "status" for e in run.events), 60)
        time.sleep(3.0)  # model loaded, first burst of buffered silence read
        cpu0, wall0 = run.cpu_seconds(), time.monotonic()
        time.sleep(idle_s)
        idle = (run.cpu_seconds() - cpu0) / (time.monotonic() - wall0) * 100
        latencies, errors, words = [], 0.0, 0
        for index, text in enumerate(SENTENCES[:count]):
            audio, truth = conversation(tmp / f"live{index}", [text], gap_s=2.0, lead_s=0.3,
                                        rate=MIC_RATE)
            before = len(run.finals())
            run.mic.play(audio)
            run.wait(lambda b=before: len(run.finals()) > b, 20)
            if len(run.finals()) <= before:
                continue
            final = run.finals()[-1]
            end_of_speech = run.mic.clip_started[-1] + truth[0].end
            latencies.append(final["t_publish"] - end_of_speech)
            errors += word_error_rate(text, final["payload"]["text"]) * len(text.split())
            words += len(text.split())
            run.mic.wait_played(10)
    finally:
        run.stop()
    return {"idle_cpu_percent": idle, "eou_to_final_s": latencies,
            "wer_live": errors / max(1, words), "finals_live": len(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    count, idle_s = (4, 8.0) if args.quick else (10, 20.0)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        clips = make_clips(tmp, count)
        base = offline(clips)
        stream = asyncio.run(streaming(clips, partials=True))
        finals_only = asyncio.run(streaming(clips, partials=False))
        real_time = live(tmp, count, idle_s)
    latencies = real_time.pop("eou_to_final_s")
    p50, p95 = (np.percentile(latencies, [50, 95]).tolist() if latencies else [None, None])
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU used",
        "model": "bundled tiny.en, int8, cpu_threads=2, beam 5 (finals)",
        "audio_s": round(base["audio_s"], 1),
        "rtf_offline": round(base["rtf_offline"], 4),
        "rtf_streaming": round(stream["rtf"], 4),
        "rtf_streaming_finals_only": round(finals_only["rtf"], 4),
        "wer_offline": round(base["wer_offline"], 4),
        "wer_streaming": round(stream["wer"], 4),
        "eou_to_final_p50_s": None if p50 is None else round(p50, 3),
        "eou_to_final_p95_s": None if p95 is None else round(p95, 3),
        "vad_min_silence_s": TranscribeConfig().min_silence_ms / 1000,
        **{k: round(v, 4) if isinstance(v, float) else v for k, v in real_time.items()},
        "targets": {"rtf_offline": 0.10, "eou_to_final_p50_s": 1.0, "idle_cpu_percent": 5.0,
                    "wer_streaming": "<= wer_offline"},
    }
    result["meets"] = {
        "rtf_offline": result["rtf_offline"] <= 0.10,
        "eou_to_final_p50_s": p50 is not None and p50 <= 1.0,
        "idle_cpu_percent": result["idle_cpu_percent"] < 5.0,
        "wer_streaming": result["wer_streaming"] <= result["wer_offline"],
    }
    out = REPO / "benchmarks" / "results" / f"asr{'_quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
