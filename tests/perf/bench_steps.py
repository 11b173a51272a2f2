"""Training steps/s of the `gan` step on the default image pair: the harness
(eager and with `compile: true`) against a bare eager PyTorch loop and, on
CUDA, against the same step captured in one CUDA graph.

    python tests/perf/bench_steps.py [--device cpu|cuda] [--batch 64] [--width 64] [--steps N] [--rounds 3] [--threads T]

Not a pytest module. Fashion-MNIST-shaped data (1 x 28 x 28, 10 classes,
random pixels: a step's cost does not depend on them), `dcgan-small` at
`--width` (64: the pair of issue 14's measurements), z_dim 64, Adam (2e-4,
betas 0.5, 0.999), one D step per G step. Everything runs in this process on
the same device; each variant is warmed up first (compiling, for the
compiled ones), then the variants run in turn for --rounds rounds of
--steps steps and each keeps its fastest round. Times end with
torch.cuda.synchronize() on a GPU.
- harness eager: `bench.train.train` on a `gan` Method, as a cell runs it
  (batches drawn from a seeded CPU generator, losses read every 50 steps,
  one checkpoint at the end);
- harness compiled: the same with the objectives through torch.compile
  (bench.compiled: inductor, with CUDA graphs on a GPU);
- bare loop: the same networks and fused Adam in a plain loop (indices and
  latents drawn on the device, no logging, no checkpoint): the reference;
- CUDA graph (CUDA only): the bare loop's whole step (both updates, their
  backward passes and capturable fused Adam) captured once in one
  torch.cuda.CUDAGraph after a warm-up on a side stream, with static input
  tensors, then replayed: the launch-overhead-free limit.
Ratios are against the bare loop measured in the same run, and the
compiled harness against the CUDA graph (goal on a GPU: >= 0.8). The
script also checks, on the device, that compiled and eager harness steps
give the same losses from the same seed (max difference printed).
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bare_gan import BareGAN  # noqa: E402

from bench.archs import build_pair  # noqa: E402
from bench.compiled import compile_steps  # noqa: E402
from bench.data import Split  # noqa: E402
from bench.registry import METHODS  # noqa: E402
from bench.train import seed_everything, train  # noqa: E402

INFO = {"kind": "images", "label_type": "class", "num_classes": 10, "resolution": 28, "channels": 1, "dim": None}
N_DATA = 10_000
LOG_EVERY = 50
EQUALITY_STEPS = 5


def config(batch: int, width: int, steps: int) -> dict:
    cls = METHODS.get("gan")
    return {"method": "gan", "dataset": "fashion-mnist", "imbalance": 1, "seed": 0,
            "budget": {"steps": steps, "batch_size": batch, "eval_samples": 100},
            "optimizer": copy.deepcopy(cls.optimizer), "arch": {"name": "dcgan-small", "z_dim": 64, "width": width},
            "hp": dict(cls.hp)}  # fmt: skip


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Harness:
    """A `gan` Method trained by bench.train.train, `steps` steps per call."""

    def __init__(self, device, data, batch, width, compiled):
        seed_everything(0)
        self.cfg = config(batch, width, 0)
        self.method = METHODS.get("gan")(self.cfg, INFO, device)
        self.facts = compile_steps(self.method) if compiled else None
        self.data, self.folders = data, tempfile.TemporaryDirectory()
        self.calls = 0

    def run(self, steps: int) -> None:
        self.calls += 1
        cfg = {**self.cfg, "budget": {**self.cfg["budget"], "steps": steps}}
        folder = Path(self.folders.name) / str(self.calls)  # a fresh run each call (no resume)
        folder.mkdir()
        train(self.method, self.data, cfg, {"log_every": LOG_EVERY, "checkpoint_every": 10**7}, folder)


class BareLoop(BareGAN):
    """The same step written plainly (tests/perf/bare_gan.py)."""

    def __init__(self, device, x, batch, width):
        super().__init__(config(batch, width, 0)["arch"], INFO, x, batch, device)


class CudaGraphStep(BareLoop):
    """The bare step captured in one CUDA graph: static data tensor, indices and
    latents drawn inside the graph (graph-safe RNG), capturable fused Adam."""

    def __init__(self, device, x, batch, width):
        super().__init__(device, x, batch, width)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999), fused=True, capturable=True)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999), fused=True, capturable=True)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the capture stream: optimizer state, cuDNN plans, allocator
            for _ in range(3):
                self.step()
        torch.cuda.current_stream().wait_stream(side)
        self.opt_d.zero_grad(set_to_none=True)
        self.opt_g.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.step()

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.graph.replay()


def losses_agree(device, data, batch, width) -> float:
    """Max |compiled - eager| over the logged losses of EQUALITY_STEPS harness steps from one seed."""
    rows = []
    for compiled in (False, True):
        harness = Harness(device, data, batch, width, compiled)
        folder = Path(harness.folders.name) / "equal"
        folder.mkdir()
        cfg = {**harness.cfg, "budget": {**harness.cfg["budget"], "steps": EQUALITY_STEPS}}
        train(harness.method, data, cfg, {"log_every": 1, "checkpoint_every": 10**7}, folder)
        rows.append((folder / "losses.csv").read_text().splitlines()[1:])
    diffs = [abs(float(a) - float(b)) for ra, rb in zip(*rows) for a, b in zip(ra.split(",")[1:], rb.split(",")[1:])]
    return max(diffs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, help="steps per round (default: 500 on cuda, 20 on cpu)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (500 if device.type == "cuda" else 20)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(N_DATA, 1, 28, 28, generator=g) * 2 - 1
    data = Split(x, torch.randint(10, (N_DATA,), generator=g), [N_DATA // 10] * 10)

    gap = losses_agree(device, data, args.batch, args.width)
    variants = {"harness eager": Harness(device, data, args.batch, args.width, compiled=False),
                "harness compiled": Harness(device, data, args.batch, args.width, compiled=True),
                "bare loop": BareLoop(device, x.to(device), args.batch, args.width)}  # fmt: skip
    if device.type == "cuda":
        variants["CUDA graph"] = CudaGraphStep(device, x.to(device), args.batch, args.width)
    for variant in variants.values():  # warm-up: compilation, cuDNN plans, the allocator
        variant.run(10)
    sync(device)
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(args.rounds):
        for name, variant in variants.items():
            sync(device)
            t0 = time.perf_counter()
            variant.run(steps)
            sync(device)
            best[name] = min(best[name], time.perf_counter() - t0)

    rate = {name: steps / seconds for name, seconds in best.items()}
    name_of = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"gan step, dcgan-small width {args.width}, batch {args.batch}, {name_of}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {steps} steps x {args.rounds} rounds (best)")  # fmt: skip
    print(f"compiled path: {variants['harness compiled'].facts}")
    print(f"compiled vs eager harness, max loss difference over {EQUALITY_STEPS} steps: {gap:.2e}")
    for name, r in rate.items():
        line = f"  {name:17s} {r:9.2f} steps/s   {r / rate['bare loop']:5.2f}x bare loop"
        if "CUDA graph" in rate:
            line += f"   {r / rate['CUDA graph']:5.2f}x CUDA graph"
        print(line)
    if "CUDA graph" in rate:
        print(f"goal (issue 14): harness compiled >= 0.8x CUDA graph: {rate['harness compiled'] / rate['CUDA graph']:.2f}x")


if __name__ == "__main__":
    main()
