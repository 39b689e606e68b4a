"""Clips of a still camera made from the bundled sample: its first frame held, with stretches of
the sample's own (moving) video in between. Used by the change-gating tests and, for a realistic
mix of cameras, by benchmarks/runtime_models.py."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "mmstream" / "assets" / "sample.mp4"


def still_clip(out: Path, parts: Sequence[tuple[str, float]], *, size: tuple[int, int] = (320, 320),
               fps: int = 10, noise: int = 0) -> Path:
    """`parts`: ("still", seconds) holds the sample's first frame, ("moving", seconds) plays
    the sample from its start (its first frame is the still one, then it pans and zooms).
    `noise`: temporal sensor-like noise on every frame (ffmpeg's noise filter, strength)."""
    width, height = size
    inputs: list[str] = []
    chains: list[str] = []
    for i, (kind, seconds) in enumerate(parts):
        inputs += ["-i", str(SAMPLE)]
        if kind == "still":
            frames = round(seconds * fps)
            head = (f"[{i}:v]trim=end_frame=1,loop=loop={frames - 1}:size=1:start=0,"
                    f"setpts=N/{fps}/TB,")
        elif kind == "moving":
            head = f"[{i}:v]trim=duration={seconds},setpts=PTS-STARTPTS,"
        else:
            raise ValueError(f"unknown part {kind!r}")
        chains.append(f"{head}fps={fps},scale={width}:{height},setsar=1,format=yuv420p[p{i}]")
    joined = "".join(f"[p{i}]" for i in range(len(parts)))
    graph = ";".join(chains) + f";{joined}concat=n={len(parts)}:v=1:a=0"
    if noise:
        graph += f",noise=alls={noise}:allf=t"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *inputs, "-filter_complex", graph + "[v]",
                    "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast", "-threads", "1",
                    "-an", str(out)], check=True, timeout=120)
    return out
