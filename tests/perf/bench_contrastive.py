"""The cost of ContraD's and Damage GAN's training steps against the plain
non-saturating GAN on the same network, and of the augmentations against a
copy of the batch; on a GPU, also that no step waits on the host.

    python tests/perf/bench_contrastive.py [--device cpu|cuda] [--batch 64] [--resolution 32] [--arch sn-dcgan] [--steps 10]

Not a pytest module. Everything runs in this process on random 3-channel
images (CIFAR-10's shape by default), after two warm-up steps each; the rows
run in turn for --rounds rounds of --steps steps and each keeps its fastest
round (the machine's load changes less between neighbouring runs). Printed:
- per row (gan, dcgan, contrad, damage-gan): seconds per generator step and
  the ratio to gan's. ContraD's D sees 3N images through the augmentation
  and its G pass goes through it too; Damage GAN adds a pruned pass over N
  images (and a mask every epoch: here every step, its worst case, with
  --prune-every 1);
- per augmentation: seconds per call on a batch of 3N and the ratio to
  ContraD's D trunk forward on the same batch (what the augmentation is
  added to; forward only, no gradient);
- with --device cuda: each row's steps again under
  `torch.cuda.set_sync_debug_mode("error")`, which raises at the first
  synchronizing call (an `.item()`, a data-dependent shape): "host syncs:
  none" or the call that synchronized.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.archs import ARCHS  # noqa: E402
from bench.augment import AUGMENTS  # noqa: E402
from bench.registry import METHODS  # noqa: E402

ROWS = ("gan", "dcgan", "contrad", "damage-gan")


def build(name: str, args) -> tuple:
    cls = METHODS.get(name)
    arch = {"name": args.arch, **ARCHS.get(args.arch).defaults}
    hp = {**cls.hp, **({"prune_every": args.prune_every} if "prune_every" in cls.hp else {})}
    config = {"method": name, "dataset": "bench", "imbalance": 1, "seed": 0,
              "budget": {"steps": 10**6, "batch_size": args.batch, "eval_samples": 32},
              "optimizer": copy.deepcopy(cls.optimizer), "arch": arch, "hp": hp}  # fmt: skip
    info = {"kind": "images", "label_type": "class", "num_classes": 10, "resolution": args.resolution, "channels": 3, "dim": None}
    device = torch.device(args.device)
    method = cls(config, info, device)
    data = torch.rand(4 * args.batch, 3, args.resolution, args.resolution, device=device) * 2 - 1
    labels = torch.zeros(len(data), dtype=torch.long, device=device)
    order = torch.Generator(device=device).manual_seed(0)

    def next_batch():
        idx = torch.randint(len(data), (args.batch,), device=device, generator=order)
        return data[idx], labels[idx]

    return method, next_batch


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_steps(method, next_batch, args) -> float:
    """Seconds per step over --steps steps."""
    sync(args.device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        method.train_step(next_batch)
    sync(args.device)
    return (time.perf_counter() - t0) / args.steps


def time_call(fn, args) -> float:
    for _ in range(2):
        fn()
    best = float("inf")
    for _ in range(args.rounds):
        sync(args.device)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            fn()
        sync(args.device)
        best = min(best, (time.perf_counter() - t0) / args.steps)
    return best


def host_syncs(method, next_batch) -> str:
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            method.train_step(next_batch)
        return "none"
    except RuntimeError as exc:
        return str(exc).splitlines()[0]
    finally:
        torch.cuda.set_sync_debug_mode("default")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--arch", default="sn-dcgan")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prune-every", type=int, default=1)
    args = parser.parse_args()
    print(f"device {args.device}, batch {args.batch}, {args.resolution}x{args.resolution}, arch {args.arch}, "
          f"threads {torch.get_num_threads()}")  # fmt: skip

    built = {name: build(name, args) for name in ROWS}
    for method, next_batch in built.values():
        for _ in range(2):  # warm-up
            method.train_step(next_batch)
    best = dict.fromkeys(ROWS, float("inf"))
    for _ in range(args.rounds):  # the rows in turn, each round: the load changes less between neighbours
        for name, (method, next_batch) in built.items():
            best[name] = min(best[name], time_steps(method, next_batch, args))
    for name in ROWS:
        print(f"step  {name:12s} {best[name] * 1e3:9.2f} ms   {best[name] / best['gan']:5.2f}x gan")

    x = torch.rand(3 * args.batch, 3, args.resolution, args.resolution, device=args.device) * 2 - 1
    generator = torch.Generator(device=args.device).manual_seed(0)
    trunk = built["contrad"][0].D.features
    with torch.no_grad():
        trunk_s = time_call(lambda: trunk(x), args)
        print(f"trunk {'D.features':12s} {trunk_s * 1e3:9.2f} ms")
        for name in AUGMENTS.names():
            fn = AUGMENTS.get(name)
            seconds = time_call(lambda: fn(x, generator), args)
            print(f"aug   {name:14s} {seconds * 1e3:7.2f} ms   {seconds / trunk_s:5.2f}x the trunk forward")

    if args.device == "cuda":
        for name, (method, next_batch) in built.items():
            print(f"sync  {name:12s} host syncs: {host_syncs(method, next_batch)}")


if __name__ == "__main__":
    main()
