"""Steps/s of one `gan` cell's networks at 1, 2, ... intra-op threads: the
measurement behind bench.threads' rule (a small network gets one thread, the
cores go to cells side by side).

    python tests/perf/bench_threads.py [--threads 1 2] [--seconds 3] [--rounds 3]

Not a pytest module. For each architecture (mlp on 2-D points, batch 128,
the quickstart's; pacgan-mlp, batch 100, PacGAN's 2-D protocol; dcgan-small
on 28x28, batch 64; sn-dcgan on 32x32, batch
64) a plain `gan` loop (tests/perf/bare_gan.py) runs at each thread count in
turn, --rounds rounds of about --seconds seconds each, keeping each count's
fastest round. Everything runs in this process, so the ratios compare runs
that saw the same machine; the load average is printed with them (on a
shared machine, a thread that another process holds is a thread lost).
The last column is the count bench.threads gives that cell on this machine
(one worker, as `--executor debug`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bare_gan import BareGAN, fake_data, image_info, points_info, resolved_arch  # noqa: E402

from bench.threads import cell_threads  # noqa: E402

CASES = {  # name: (arch, data info, batch)
    "mlp (2-D, batch 128)": (resolved_arch("mlp"), points_info(), 128),
    "pacgan-mlp (2-D, batch 100)": (resolved_arch("pacgan-mlp"), points_info(), 100),
    "dcgan-small (28x28, batch 64)": (resolved_arch("dcgan-small"), image_info(28), 64),
    "sn-dcgan (32x32, batch 64)": (resolved_arch("sn-dcgan"), image_info(32, 3), 64),
}


def steps_per_second(loop: BareGAN, seconds: float, rounds: int) -> float:
    loop.run(3)  # warm-up: the allocator, oneDNN's kernel choices
    t0 = time.perf_counter()
    loop.run(2)
    steps = max(2, int(seconds / max((time.perf_counter() - t0) / 2, 1e-6)))
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        loop.run(steps)
        best = min(best, time.perf_counter() - t0)
    return steps / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {len(os.sched_getaffinity(0))} cores, load average at start {os.getloadavg()}")
    header = "".join(f"{t:>3d} thr steps/s " for t in args.threads)
    print(f"  {'cell':32s}{header}  best  harness gives")
    for name, (arch, info, batch) in CASES.items():
        loop = BareGAN(arch, info, fake_data(info), batch)
        rates = {}
        for t in args.threads:
            torch.set_num_threads(t)
            rates[t] = steps_per_second(loop, args.seconds, args.rounds)
        best = max(rates, key=rates.get)
        given = cell_threads({"arch": arch}, len(os.sched_getaffinity(0)), "debug")[0]
        cols = "".join(f"{rates[t]:14.3g}  " for t in args.threads)
        ratio = f"({rates[args.threads[-1]] / rates[args.threads[0]]:.2f}x at {args.threads[-1]} vs {args.threads[0]})"
        print(f"  {name:32s}{cols}{best:4d}  {given:4d}   {ratio}")
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
