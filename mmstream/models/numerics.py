"""One numerical setting per process, so a result does not depend on the process it ran in.

numpy's OpenBLAS (whisper's log-mel filterbank, prosody, fusion gates) and OpenCV's own
OpenBLAS size their thread pools from the environment: 2 threads in a shell on a 2-core box,
1 in a Ray worker (Ray sets OMP_NUM_THREADS to the worker's CPUs). With some OpenBLAS kernels
(Haswell's, picked on CPUs without AVX-512) the thread count changes how a matrix product is
split and so the last bits of its sums: a partial's confidence came out 0.564 in one process
and 0.568 in the other. The products here are small (80 x 201 by a few hundred columns), so a
second BLAS thread buys nothing but contention with torch and CTranslate2, which have thread
counts of their own (`stages.infer.cpu_threads`, `stages.transcribe.cpu_threads`).
"""

from __future__ import annotations

BLAS_THREADS = 1


def pin_math_threads() -> None:
    """Give every BLAS library loaded in this process `BLAS_THREADS` threads.

    threadpoolctl limits the libraries loaded so far, so numpy and OpenCV are imported first.
    """
    import cv2  # noqa: F401 - loads OpenCV's OpenBLAS, so it is pinned too
    import numpy  # noqa: F401
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=BLAS_THREADS, user_api="blas")


def blas_threads() -> dict[str, int]:
    """Thread count of each loaded BLAS library, by file (for `doctor` and the tests)."""
    from threadpoolctl import threadpool_info

    return {info["filepath"]: info["num_threads"] for info in threadpool_info()
            if info["user_api"] == "blas"}
