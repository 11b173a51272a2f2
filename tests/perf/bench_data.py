"""Load time and peak memory of fashion-mnist and its rho=100 subset.

    python tests/perf/bench_data.py [--root FOLDER]

Needs the real Fashion-MNIST files (the Debian package dataset-fashion-mnist,
$GANBENCH_DATA, or --root). Uses a fresh temporary $GANBENCH_CACHE. Not a
pytest module (the name does not start with test_).

Figures are printed with ratios against references measured in the same
process: time against decoding the four .gz IDX files with NumPy, memory
against the raw uint8 size of the 70,000 images (54.9 MB). Peak memory is
the growth of the process's peak resident set (VmHWM, reset through
/proc/self/clear_refs before each step) over its resident set before it.
Targets (issue 4): load under 2 s and under 2x the raw uint8 size.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure(fn):
    """(result, seconds, peak resident growth in bytes) of fn()."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError as exc:
        raise SystemExit(f"cannot reset the peak resident set ({exc}); run on Linux") from None
    before = _status("VmRSS")
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    return out, seconds, _status("VmHWM") - before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="a folder with the four Fashion-MNIST IDX .gz files")
    args = parser.parse_args()
    os.environ["GANBENCH_CACHE"] = tempfile.mkdtemp(prefix="ganbench-bench-")
    os.environ.setdefault("GANBENCH_DOWNLOAD", "0")

    import bench.datafiles as datafiles
    from bench.errors import UserError
    from bench.registry import DATASETS

    try:
        folder = datafiles.locate(datafiles.FASHION_MNIST, args.root)
    except UserError as exc:
        print(f"bench_data: {exc}", file=sys.stderr)
        return 2
    files = [folder / f for f in datafiles.FASHION_MNIST.files]
    raw_bytes = 70_000 * 28 * 28

    def decode_gz():
        return [datafiles.read_idx(f) for f in files]

    rows = []
    _, ref_s, ref_mem = measure(decode_gz)
    rows.append(("reference: np decode of the 4 .gz files", ref_s, ref_mem))

    ds = DATASETS.get("fashion-mnist")(root=str(folder))
    _, s, m = measure(ds.arrays)
    rows.append(("first load: decode + write the uint8 cache", s, m))

    def warm_full():
        datafiles._memory.clear()  # as in a new process: only the on-disk cache is left
        arrays = ds.arrays()
        return sum(int(np.asarray(a).reshape(-1)[::4096].sum()) for a in arrays.values())  # touch every page

    datafiles._memory.clear()
    _, s, m = measure(warm_full)
    rows.append(("cached load: all 70,000 uint8 images", s, m))

    split, s, m = measure(lambda: ds.train_set(100, 0))
    rows.append((f"rho=100 train split ({len(split.x):,} images, float32)", s, m))
    subset_float = split.x.numel() * 4
    del split
    ref, s, m = measure(ds.reference_set)
    rows.append((f"reference split ({len(ref.x):,} images, float32)", s, m))
    del ref

    print(f"fashion-mnist from {folder}; raw uint8 size {raw_bytes / 1e6:.1f} MB; "
          f"rho=100 float32 subset {subset_float / 1e6:.1f} MB")  # fmt: skip
    print(f"{'step':48s} {'time s':>7s} {'x ref':>6s} {'peak MB':>8s} {'x raw':>6s}")
    for label, s, m in rows:
        print(f"{label:48s} {s:7.3f} {s / ref_s:6.2f} {m / 1e6:8.1f} {m / raw_bytes:6.2f}")
    cached_load = rows[2][1] + rows[3][1]
    peak = max(rows[2][2], rows[3][2])
    print(f"cached load + rho=100 subset: {cached_load:.3f} s (target < 2 s), peak {peak / raw_bytes:.2f}x raw (target < 2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
