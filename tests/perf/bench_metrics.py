"""Throughput of our Inception feature pipeline against the raw network and
against clean-fid's own pipeline, on the CPU and (when present) the GPU; and
the real-statistics time of a second cell against the first.

    python tests/perf/bench_metrics.py [--images N] [--resolution 32] [--devices cpu,cuda] [--threads T]

Uses a fresh temporary $GANBENCH_CACHE. Not a pytest module (the name does
not start with test_). Everything runs in this process on the same images
with the same network weights, after one warm-up batch each; the six are
run in turn for --rounds rounds and each keeps its fastest round (the
machine's load changes less between neighbouring runs). Per device:
- network: the raw network (`extractor(device).fn`) on inputs already
  resized to 299x299 and resident on the device, at the pipeline's batch
  size: the speed limit of any feature pipeline;
- TorchScript: the wheel's TorchScript file run the same way (the network
  we replaced, for reference);
- preprocessing: ours without the network (the transfer, quantisation and
  matrix resize), the one part ours adds to the network; and clean-fid's
  pipeline with a network that returns zeros (its decoding and resize);
- ours: `bench.metrics.inception.inception_features` on the [-1, 1] tensor
  in host memory (transfer, uint8 quantisation, the matrix "clean" resize,
  the network, features back to the host);
- clean-fid: `cleanfid.fid.get_folder_features` on the same images saved as
  PNG files (its DataLoader, PIL decoding, the per-image PIL resize, the
  same network), with `num_workers` 0 on a CPU (its workers would take the
  network's cores) and min(12, cores) on a GPU (clean-fid's default is 12).
Goals (issue 14): ours / network >= 0.8 on a GPU; ours / clean-fid >= 1.0.

The second part times the real-data statistics of a cell: the first cell
computes the reference features (a cache miss), a second cell in a new
process state reads them from disk. Goal: second <= 2% of the first.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

DEFAULT_IMAGES = {"cpu": 32, "cuda": 4096}


def images(n: int, res: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(n, 3, res // 4, res // 4, generator=g), size=(res, res), mode="bilinear")
    return (x * 2 - 1 + 0.2 * torch.randn(n, 3, res, res, generator=g)).clamp(-1, 1)


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.2f}"


def compare_pipelines(device: torch.device, n: int, res: int, workers: int, rounds: int) -> None:
    from cleanfid.fid import get_folder_features
    from PIL import Image

    from bench.metrics.inception import (batch_size_for, clean_resize, extractor, inception_features, quantise,
                                         to_uint8, weights_path)  # fmt: skip

    fx = extractor(device)
    batch = batch_size_for(device)
    fake = images(n, res, 1)
    print(f"[{device.type}] {describe(device)}; {n} images {res}x{res} RGB, batch {batch}, extractor {fx.digest}")

    folder = Path(tempfile.mkdtemp(prefix="ganbench-perf-png-"))
    for i, img in enumerate(to_uint8(fake)):
        Image.fromarray(img).save(folder / f"{i:05d}.png")
    warm = Path(tempfile.mkdtemp(prefix="ganbench-perf-warm-"))
    Image.fromarray(to_uint8(fake[:1])[0]).save(warm / "0.png")

    def theirs(path, model=fx.fn):
        return get_folder_features(str(path), model=model, num_workers=workers, batch_size=batch, device=device,
                                   mode="clean", verbose=False)  # fmt: skip

    def no_network(x):
        return torch.zeros(len(x), 2048)

    resized = torch.rand(batch, 3, 299, 299, device=device) * 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated: the reason we replaced it
        scripted = torch.jit.load(str(weights_path()), map_location=device).eval()

    @torch.inference_mode()
    def run_scripted():
        for _ in range(max(1, n // batch)):
            scripted((resized - 128) / 128)

    def run_network():
        for _ in range(max(1, n // batch)):
            fx.fn(resized)

    net_images = max(1, n // batch) * batch
    inception_features(fake[:batch], device)  # warm-ups: cuDNN autotuning, TorchScript profiling runs
    run_network()
    run_scripted()
    run_scripted()
    theirs(warm)
    ours_feats: list[np.ndarray] = []
    their_feats: list[np.ndarray] = []
    def run_preprocessing():  # what ours adds to the network: transfer, quantise, resize
        for i in range(0, n, batch):
            clean_resize(quantise(fake[i : i + batch].to(device)))

    runs = {"network": run_network, "scripted": run_scripted, "preprocessing": run_preprocessing,
            "their preprocessing": lambda: theirs(folder, no_network),
            "ours": lambda: ours_feats.append(inception_features(fake, device)),
            "theirs": lambda: their_feats.append(theirs(folder))}  # fmt: skip
    best = {k: float("inf") for k in runs}
    for _ in range(rounds):
        for k, fn in runs.items():
            best[k] = min(best[k], timed(fn, device))
    t_net, t_script, t_ours, t_theirs = best["network"], best["scripted"], best["ours"], best["theirs"]
    t_prep, t_their_prep = best["preprocessing"], best["their preprocessing"]
    diff = float(np.abs(ours_feats[0] - their_feats[0]).max())
    net_rate, script_rate, ours_rate, theirs_rate = net_images / t_net, net_images / t_script, n / t_ours, n / t_theirs
    print(f"[{device.type}] network {net_rate:.1f} images/s (TorchScript {script_rate:.1f}, ours/TorchScript "
          f"{net_rate / script_rate:.2f}); ours {ours_rate:.1f} images/s = {ours_rate / net_rate:.2f} x the network "
          f"(goal >= 0.8 on a GPU); clean-fid ({workers} workers) {theirs_rate:.1f} images/s, ours/clean-fid "
          f"{ours_rate / theirs_rate:.2f} (goal >= 1.0); max |feature difference| {diff:.2e}")  # fmt: skip
    print(f"[{device.type}] outside the network: ours (transfer, quantise, matrix resize) {1000 * t_prep / n:.2f} "
          f"ms/image = {100 * t_prep / t_ours:.1f}% of our pipeline; clean-fid's (PNG decoding, PIL resize) "
          f"{1000 * t_their_prep / n:.2f} ms/image, {t_their_prep / t_prep:.1f} x ours; the network "
          f"{1000 * t_net / net_images:.2f} ms/image")  # fmt: skip


def real_statistics(device: torch.device, n: int, res: int) -> None:
    from bench.data import Dataset, Split
    from bench.metrics import refstats
    from bench.metrics.inception import extractor, inception_features

    fx = extractor(device)
    real = images(n, res, 2)

    class Ref(Dataset):
        name = "perf-reference"
        kind = "images"
        resolution = res
        channels = 3

        def reference_set(self):
            return Split(real, torch.zeros(n, dtype=torch.long))

    def cell_real_stats() -> float:
        """What a cell's `inception_space` does for the real side (same key, same function)."""
        d = Ref()
        key = refstats.cache_key(d, fx.identity(), n)
        t0 = time.perf_counter()
        refstats.reference_stats(key, lambda: (inception_features(d.reference_set().x, device), np.zeros(n)))
        return time.perf_counter() - t0

    first = cell_real_stats()
    refstats._memo.clear()  # a second cell is another process: nothing in memory
    second = cell_real_stats()
    print(f"[{device.type}] real statistics: first cell {first:.2f} s (computed), second cell {second * 1000:.1f} ms "
          f"(disk cache), {100 * second / first:.2f}% of the first (goal <= 2%)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, help=f"images per pipeline (default {DEFAULT_IMAGES})")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch and BLAS threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    os.environ["GANBENCH_CACHE"] = tempfile.mkdtemp(prefix="ganbench-perf-")
    devices = [torch.device(d) for d in args.devices.split(",")]
    if not torch.cuda.is_available():
        print("no GPU here: GPU figures are still to be measured (run this on a GPU machine)")
    for device in devices:
        n = args.images or DEFAULT_IMAGES.get(device.type, 32)
        workers = 0 if device.type == "cpu" else min(12, os.cpu_count() or 1)
        compare_pipelines(device, n, args.resolution, workers, args.rounds)
    real_statistics(devices[-1], args.images or DEFAULT_IMAGES.get(devices[-1].type, 32), args.resolution)


if __name__ == "__main__":
    main()
