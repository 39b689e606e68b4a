"""What a camera-hour of recording costs: MB per hour, the recorder's CPU, and decode speed.

The sample clip (mmstream/assets/sample.mp4, 10 fps) is scaled to 640x480 and looped for
`--seconds` of media with its 16 kHz audio, then recorded in-process (the recorder's own work:
encoding, JSON, chunk compression, writing) as:

- jpeg-all: today's format, every frame as a JPEG (q 90) and pcm-s16 audio;
- h264-analysed: the default, H.264 of the frames the windows analyse (hop 0.5 s: 2 fps), AAC;
- h264-all: H.264 of every frame, AAC.

CPU is process time of the recorder per second of media (100 % = one core). `JSON MB/h`: the
messages before chunk compression (JSON with base64 media), to show what base64 still costs
once zstd has compressed the chunks. Decode speed: the recording read back and decoded (what the
replay source does), media seconds per wall second.

    PYTHONPATH=. python3 benchmarks/bench_record.py --seconds 60
    PYTHONPATH=. python3 benchmarks/bench_record.py --replay 60    # + replay speeds
    PYTHONPATH=. python3 benchmarks/bench_record.py --activity 600  # + activity mode

`--replay S`: an S-second talk-like clip (espeak-ng sentences over the looped camera clip, as
bench_replay.py makes it) recorded in today's JPEG format and compact, then each recording
replayed through the default pipeline (whisper + fused model) as fast as possible, one after
the other in this process: media seconds per wall second, model loading included.

`--activity S`: a quiet room for S seconds (the sample's first frame, still, at 10 fps,
analysed at 2 fps, and silence) with three conversations (the sample's 8 s of speech at 15 %,
45 % and 75 % of it), recorded continuously and with `mode: activity` (pre-roll 5 s,
post-roll 10 s). Activity comes from transcript events placed where the speech is, 2 s after
it (whisper's latency), not from running the models; bytes on disk of each, scaled to an hour.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

from mmstream.config.record import RecordConfig
from mmstream.events import Transcript, TranscriptEvent
from mmstream.media import AUDIO_RATE, AudioChunk, VideoFrame
from mmstream.recording.inputs import AnalysisGrid, InputDecoder, InputEncoder
from mmstream.recording.reader import RecordingReader
from mmstream.recording.writer import RecordingFiles
from mmstream.sinks.recorder import RecorderSink

SAMPLE = Path(__file__).resolve().parents[1] / "mmstream" / "assets" / "sample.mp4"
CASES = {
    "jpeg-all": {"frame_format": "jpeg", "audio_format": "s16", "video": "all"},
    "h264-analysed": {"frame_format": "h264", "audio_format": "aac", "video": "analysed"},
    "h264-all": {"frame_format": "h264", "audio_format": "aac", "video": "all"},
}
FPS = 10.0
CHUNK = 1600  # 0.1 s of audio, as the microphone delivers it


def sample_media() -> tuple[list[np.ndarray], np.ndarray]:
    with av.open(str(SAMPLE)) as container:
        frames = [cv2.resize(f.to_ndarray(format="rgb24"), (640, 480))
                  for f in container.decode(video=0)]
    with av.open(str(SAMPLE)) as container:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    return frames, audio.astype(np.float32)


def inputs(seconds: float) -> list[VideoFrame | AudioChunk]:
    frames, audio = sample_media()
    items: list[tuple[float, VideoFrame | AudioChunk]] = []
    for n in range(int(seconds * FPS)):
        items.append((n / FPS, VideoFrame("cam", n / FPS, frames[n % len(frames)], n)))
    for n in range(int(seconds * AUDIO_RATE / CHUNK)):
        start = (n * CHUNK) % (len(audio) - CHUNK)
        items.append((n * CHUNK / AUDIO_RATE,
                      AudioChunk("cam", n * CHUNK / AUDIO_RATE, audio[start:start + CHUNK])))
    return [item for _, item in sorted(items, key=lambda pair: pair[0])]


def record(items: list[VideoFrame | AudioChunk], path: Path, case: dict[str, str]) -> float:
    config = RecordConfig(path=path, events=False, fsync=False, **case)  # type: ignore[arg-type]
    encoder = InputEncoder(config, AnalysisGrid(0.5, 2.0))
    files = RecordingFiles(config, "bench")
    started = time.process_time()
    for item in items:
        for topic, t_ns, data in encoder.encode(item, files.starts_file):
            files.add(topic, t_ns, t_ns, data)
    for topic, t_ns, data in encoder.flush(files.starts_file):
        files.add(topic, t_ns, t_ns, data)
    files.close()
    return time.process_time() - started


def message_bytes_and_decode(path: Path) -> tuple[int, float]:
    decoder, total = InputDecoder(), 0
    started = time.perf_counter()
    with RecordingReader(path) as reader:
        for message in reader.messages(kinds=("video", "audio")):
            total += len(message.data)
            decoder.decode(message)
    return total, time.perf_counter() - started


def bench_replay_speed(seconds: float, folder: Path) -> None:
    """Replay speed of the same clip recorded as JPEG and compact, in one run."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_replay import config_for, make_clip, timed_run

    clip = make_clip(seconds, folder)
    print(f"replay of a {seconds:.0f} s talk-like clip, default pipeline, model loading "
          "included")
    for name, case in (("jpeg-all", CASES["jpeg-all"]), ("h264-analysed", {})):
        recording = folder / f"replay-{name}.mcap"
        config = config_for(clip, None, analysis=False, record=recording)
        assert config.record is not None
        config = config.model_copy(update={"record": config.record.model_copy(update=case)})
        timed_run(config)
        wall, _, report, running = timed_run(config_for(recording, folder / f"{name}.jsonl"))
        print(f"  {name:<14} {recording.stat().st_size / 1e6:6.2f} MB  "
              f"{seconds / wall:5.2f}x real time ({seconds / running:5.2f}x after start-up); "
              f"events {dict(report.events)}")


def bench_activity(seconds: float, folder: Path) -> None:
    frames, audio = sample_media()
    still = frames[0]
    speech = audio[: 8 * AUDIO_RATE]
    talks = [seconds * share for share in (0.15, 0.45, 0.75)]
    print(f"a quiet room, {seconds:.0f} s, three 8 s conversations at "
          f"{', '.join(f'{t:.0f}' for t in talks)} s")
    for mode in ("continuous", "activity"):
        path = folder / f"room-{mode}.mcap"
        recorder = RecorderSink(RecordConfig(path=path, mode=mode, fsync=False),  # type: ignore[arg-type]
                                "bench", AnalysisGrid(0.5, 2.0))
        asyncio.run(_record_room(recorder, seconds, still, speech, talks))
        size = path.stat().st_size
        print(f"  {mode:<11} {size / 1e6:7.2f} MB = {size * 3600 / seconds / 1e6:7.2f} MB per "
              f"camera-hour ({100 * size / (folder / 'room-continuous.mcap').stat().st_size:.0f}"
              " % of continuous)")


async def _record_room(recorder: RecorderSink, seconds: float, still: np.ndarray,
                       speech: np.ndarray, talks: list[float]) -> None:
    said = set()
    async with recorder:
        for n in range(int(seconds * AUDIO_RATE / CHUNK)):  # one frame per 0.1 s chunk
            t = n * CHUNK / AUDIO_RATE
            await recorder.record_input(VideoFrame("room", t, still, n))
            chunk = np.zeros(CHUNK, dtype=np.float32)
            for start in talks:
                offset = round((t - start) * AUDIO_RATE)
                if 0 <= offset < len(speech):
                    part = speech[offset:offset + CHUNK]
                    chunk[:len(part)] = part
            await recorder.record_input(AudioChunk("room", t, chunk))
            for start in talks:
                if start not in said and t >= start + 10:  # whisper answers ~2 s after
                    said.add(start)
                    await recorder.send(TranscriptEvent(
                        stream_id="room", t_capture=start + 10,
                        payload=Transcript(True, "a conversation", start, start + 8)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--replay", type=float, default=0.0, metavar="S",
                        help="also replay an S-second clip recorded both ways")
    parser.add_argument("--activity", type=float, default=0.0, metavar="S",
                        help="also record S seconds of a quiet room with activity mode")
    parser.add_argument("--only-extra", action="store_true",
                        help="skip the MB per hour table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if args.replay:
            bench_replay_speed(args.replay, Path(folder))
        if args.activity:
            bench_activity(args.activity, Path(folder))
    if args.only_extra:
        return
    items = inputs(args.seconds)
    print(f"{args.seconds:.0f} s of 640x480 at {FPS:.0f} fps + 16 kHz mono audio")
    print(f"{'case':<14} {'MB/hour':>8} {'JSON MB/h':>10} {'CPU %':>6} {'decode x':>9}")
    with tempfile.TemporaryDirectory() as folder:
        for name, case in CASES.items():
            path = Path(folder) / f"{name}.mcap"
            cpu_s = record(items, path, case)
            messages, decode_s = message_bytes_and_decode(path)
            per_hour = 3600 / args.seconds
            print(f"{name:<14} {path.stat().st_size * per_hour / 1e6:8.1f} "
                  f"{messages * per_hour / 1e6:10.1f} {100 * cpu_s / args.seconds:6.2f} "
                  f"{args.seconds / decode_s:9.0f}")


if __name__ == "__main__":
    main()
