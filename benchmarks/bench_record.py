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
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

from mmstream.config.record import RecordConfig
from mmstream.media import AUDIO_RATE, AudioChunk, VideoFrame
from mmstream.recording.inputs import AnalysisGrid, InputDecoder, InputEncoder
from mmstream.recording.reader import RecordingReader
from mmstream.recording.writer import RecordingFiles

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
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
