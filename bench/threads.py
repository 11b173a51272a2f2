"""Thread pools of a worker: each worker keeps to its share of the cores (and
of its GPU's memory, when several workers share one GPU).

A process has several pools: torch's intra-op and inter-op threads, OpenMP
and the BLAS library numpy and SciPy use (OpenBLAS or MKL). Each sizes
itself to the whole machine by default, so 8 workers on 16 cores would run
128 threads. `thread_env` gives the environment variables a worker process
must start with (read by the libraries when they load, and inherited by
anything it spawns); `limit_threads` caps the pools of a process that is
already running, with threadpoolctl for OpenMP and BLAS.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def share(workers: int) -> int:
    """The threads each of `workers` processes may use on this machine's cores."""
    try:
        cores = len(os.sched_getaffinity(0))  # what this process may run on (a cgroup or taskset)
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // workers)


def thread_env(threads: int) -> dict[str, str]:
    return dict.fromkeys(THREAD_VARIABLES, str(threads))


@contextmanager
def worker_env(threads: int) -> Iterator[None]:
    """Processes started inside this block (local workers) inherit `thread_env(threads)`."""
    before = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    os.environ.update(thread_env(threads))
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def limit_threads(threads: int | None) -> None:
    """Cap this process's torch, OpenMP and BLAS pools (and its children's) at `threads`."""
    if not threads:
        return
    import torch
    from threadpoolctl import threadpool_limits

    os.environ.update(thread_env(threads))
    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != threads:
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # only possible before the first inter-op work; then the pool stays as it is
            pass
    threadpool_limits(limits=threads)  # the pools loaded so far; later ones read the environment


def limit_gpu_memory(share: float | None) -> None:
    """Cap this process's allocations on its GPU at `share` of the GPU's memory
    (several cells packed on one GPU, bench.executors.pack): a cell that asks
    for more gets an out-of-memory error of its own instead of starving the others."""
    if not share or share >= 1:
        return
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(share, torch.cuda.current_device())
