"""Total training steps/s of 1, 2, 4, 8, 16 cells packed on one device, against 1 cell.

    python tests/perf/bench_packing.py [--device cpu|cuda] [--cells 1,2,4,8,16] [--seconds 10]
                                       [--method gan] [--width 64] [--batch-size 64]

Not a pytest module. Each cell is its own process, started the way the
executors pack cells (bench.executors.pack: `slots` gives each process its
GPU and its share of that GPU's memory, `slot_env` its share of the cores
through the thread variables; the process applies them as the runner does,
bench.threads). A process builds the row's method on the issue's setting
(Fashion-MNIST's shape, 28x28x1, 10 classes, the `dcgan-small` pair at
--width, fp32, --batch-size), trains a few warm-up steps, waits until every
process of its pack is warm, then runs the row's real `train_step` on
device-resident random batches for --seconds and reports its steps. The
figure is the pack's total steps/s, printed with its ratio against one cell
measured in the same run. Random data: throughput does not depend on what
the images show, and nothing is downloaded.

On a CPU every packed process shares the same cores, so the total stays
about flat (the cores are the limit); on a GPU a small cell leaves the GPU
idle between kernel launches, and packing fills it (issue 14 measured 1 /
4 / 16 cells at 147 / 379 / 431 steps/s on an H100).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def child(args) -> None:
    """One packed cell: build, warm up, say 'ready', wait for 'go', train for --seconds, print its steps."""
    import torch

    from bench.registry import DATASETS, METHODS
    from bench.threads import limit_gpu_memory, limit_threads

    limit_threads(int(os.environ["OMP_NUM_THREADS"]))
    limit_gpu_memory(args.gpu_share)
    device = torch.device(args.device)
    method_cls = METHODS.get(args.method)
    info = DATASETS.get("fashion-mnist").info()  # its shape only: the batches are random
    config = {"method": args.method, "hp": dict(method_cls.hp), "optimizer": dict(method_cls.optimizer),
              "arch": {"name": "dcgan-small", "z_dim": 64, "width": args.width},
              "budget": {"steps": 10**9, "batch_size": args.batch_size}, "seed": 0}  # fmt: skip
    torch.manual_seed(0)
    method = method_cls.create(config, info, device)
    x = torch.rand(4096, 1, 28, 28, device=device) * 2 - 1
    y = torch.randint(10, (4096,), device=device)

    def next_batch():
        idx = torch.randint(len(x), (args.batch_size,), device=device)
        return x[idx], y[idx]

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        method.train_step(next_batch)
    sync()
    print("ready", flush=True)
    sys.stdin.readline()  # "go": every process of the pack is warm
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < args.seconds:
        for _ in range(10):
            method.train_step(next_batch)
        steps += 10
        sync()
    print(json.dumps({"steps": steps, "seconds": time.perf_counter() - started}), flush=True)


def pack(k: int, args) -> float:
    """Total steps/s of k cells run at once on the device."""
    from bench.executors.pack import slot_env, slots
    from bench.threads import share

    layout = slots(k, ["0"] if args.device == "cuda" else [])
    procs = []
    for slot in layout:
        env = {**os.environ, **slot_env(slot, share(k)), "PYTHONPATH": str(REPO)}
        command = [sys.executable, __file__, "--child", "--device", args.device, "--method", args.method,
                   "--width", str(args.width), "--batch-size", str(args.batch_size), "--seconds", str(args.seconds),
                   "--warmup", str(args.warmup), "--gpu-share", str(slot.gpu_share or 0)]  # fmt: skip
        procs.append(subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True))
    for proc in procs:
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"a packed process failed to start (exit status {proc.wait()})")
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [json.loads(proc.stdout.readline()) for proc in procs]
    for proc in procs:
        proc.wait()
    return sum(r["steps"] / r["seconds"] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--cells", default="1,2,4,8,16", help="pack sizes, comma-separated; 1 is always measured first")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per pack")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--method", default="gan")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--gpu-share", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    sizes = sorted({1, *(int(k) for k in args.cells.split(","))})
    device_name = os.uname().nodename
    if args.device == "cuda":
        import torch

        device_name = torch.cuda.get_device_name(0)
    print(f"{args.method}, dcgan-small width {args.width}, batch {args.batch_size}, 28x28x1, fp32, on {args.device} "
          f"({device_name}), {os.cpu_count()} CPUs, {args.seconds:g} s per pack")  # fmt: skip
    print(f"load average before: {' '.join(open('/proc/loadavg').read().split()[:3])}")
    print(f"{'cells':>5s} {'steps/s total':>14s} {'per cell':>9s} {'x 1 cell':>9s}")
    one = None
    for k in sizes:
        total = pack(k, args)
        one = one or total
        print(f"{k:5d} {total:14.1f} {total / k:9.1f} {total / one:9.2f}", flush=True)
    print(f"load average after: {' '.join(open('/proc/loadavg').read().split()[:3])}")


if __name__ == "__main__":
    main()
