"""Time to read a sweep at the cell limit, and to refuse hostile ones.

    python tests/perf/bench_spec.py [--cells 100000] [--rules 1000]

Not a pytest module. Figures, with ratios against references measured in
the same process:
- `load_sweep` of a sweep of --cells ring cells (gan, 1 dataset, 100 imbalance
  factors x cells/100 seeds), against `json.dumps` of its cells (the least
  any reader of that many cells does);
- the same sweep with --rules `exclude` rules, and the exclusion alone
  (`_drop_excluded`, bit masks) against the plain loop over rules per cell;
- the refusal of an alias bomb, a 1000 x 1000 matrix and 5,000-deep nesting.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def main() -> None:
    from bench.errors import UserError
    from bench.registry import load_plugins
    from bench.spec import AXES, _drop_excluded, load_sweep

    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--rules", type=int, default=1000)
    args = parser.parse_args()
    load_plugins()  # the torch import is not what is measured
    seeds = args.cells // 100
    folder = Path(tempfile.mkdtemp())
    matrix = f"matrix: {{method: [gan], dataset: [ring], imbalance: {list(range(1, 101))}, seed: {list(range(seeds))}}}\n"
    (folder / "big.yaml").write_text("name: big\n" + matrix)
    sweep, load_s = timed(lambda: load_sweep(folder / "big.yaml"))
    _, dumps_s = timed(lambda: json.dumps(sweep.cells))
    print(f"load_sweep, {len(sweep.cells):,} cells: {load_s:.2f} s ({load_s / dumps_s:.1f}x json.dumps of the cells, {dumps_s:.2f} s)")

    rules = "".join(f"  - {{seed: {i % seeds}, imbalance: {1 + i // seeds}}}\n" for i in range(args.rules))
    (folder / "excl.yaml").write_text("name: big\n" + matrix + "exclude:\n" + rules)
    sweep, excl_s = timed(lambda: load_sweep(folder / "excl.yaml"))
    print(f"load_sweep with {args.rules:,} exclude rules, {len(sweep.cells):,} cells left: {excl_s:.2f} s")
    combos = [dict(zip(AXES, ("gan", "ring", rho, seed))) for rho in range(1, 101) for seed in range(seeds)]
    rule_sets = [{"seed": {i % seeds}, "imbalance": {1 + i // seeds}} for i in range(args.rules)]
    kept, masks_s = timed(lambda: _drop_excluded(combos, rule_sets))
    sample = combos[:: max(1, len(combos) // 2000)]  # the plain loop on a sample, scaled up: it takes minutes in full
    plain, loop_s = timed(lambda: [c for c in sample if not any(all(c[a] in v for a, v in r.items()) for r in rule_sets)])
    loop_s *= len(combos) / len(sample)
    print(f"exclusion alone: bit masks {masks_s:.2f} s, loop over rules ~{loop_s:.0f} s (scaled from {len(sample):,} cells): "
          f"{loop_s / masks_s:.0f}x")  # fmt: skip

    bomb = Path(__file__).resolve().parents[1] / "inputs/bad_sweeps/alias-bomb-matrix.yaml"
    (folder / "wide.yaml").write_text(f"name: s\nmatrix: {{method: [gan], dataset: [ring], imbalance: {list(range(1, 1001))}, "
                                      f"seed: {list(range(1000))}}}\n")  # fmt: skip
    (folder / "deep.yaml").write_text("name: s\n" + matrix + "description: " + "[" * 5000 + "]" * 5000 + "\n")
    for label, path in (("alias bomb", bomb), ("1000 x 1000 matrix", folder / "wide.yaml"), ("5,000-deep nesting", folder / "deep.yaml")):
        started = time.perf_counter()
        try:
            load_sweep(path)
            print(f"NOT refused: {label}")
        except UserError:
            print(f"refused {label}: {(time.perf_counter() - started) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
