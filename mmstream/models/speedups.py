"""Process settings for inference: glibc memory reuse for large CPU batches (see
docs/models.md, "Memory on CPU") and a lower scheduling priority for vision threads (speech
first). No torch here (the network-level speed-ups are in folding.py)."""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # glibc mallopt parameters
KEEP_BYTES = 2**31 - 1  # the largest value mallopt takes (an int)


def keep_freed_memory() -> bool:
    """Make glibc keep and reuse freed memory instead of returning it to the kernel.

    A batch of 16 frames allocates activations of up to ~80 MB per layer. By default glibc
    serves those with fresh mmap()s (and worker-thread arenas cannot hold them at all), so each
    forward pass page-faults through hundreds of MB: measured on a 2-core CPU, ~130 ms of
    kernel time per batch of 16, more than the convolutions. With one arena and high
    mmap/trim thresholds the memory is reused: the faults vanish and batch 16 runs ~2x faster.
    Process-wide; only affects threads created afterwards. Returns False off glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)
                    and libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES)
                    and libc.mallopt(M_ARENA_MAX, 1))
    except (OSError, AttributeError):
        return False


def lower_thread_priority(nice: int) -> None:
    """Run the calling thread (and thread pools it creates, such as torch's OpenMP workers)
    at `nice`, so the scheduler gives other work — speech — the CPU first. Only raises the
    nice value (lowering it needs privileges); a no-op where threads have no nice of their
    own."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        if nice > current:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError:
        pass


def thread_nice() -> int:
    """The calling thread's nice value (0 where threads have none of their own)."""
    if not hasattr(os, "getpriority"):
        return 0
    try:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except OSError:
        return 0


def at_nice(nice: int, work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` on this thread at `nice` at least: a helper thread doing a niced
    thread's work (speech keeps the CPU first)."""
    lower_thread_priority(nice)
    return work(*args)
