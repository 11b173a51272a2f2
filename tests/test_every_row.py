"""Every registered row at its defaults, trained and scored through the real CLI (issue 20).

The rows come from the registries: every base method, every add-on on each
base it applies to (`base+addon`, as `MethodRegistry` accepts it) and every
alias whose composition is not already a row, so a method added tomorrow is
covered by this file without touching it. Each row runs on the smallest
dataset it accepts (fewest numbers per sample, then name; the spec is the
judge of "accepts"), with every default of the row and of that dataset, its
default metrics included. Only sizes are cut (`SIZES`): steps, batch,
evaluation samples, and the hyperparameters that are sizes (epochs, sample
counts, step counts).

Training and evaluation run in separate processes, as a user's interrupted
sweep would: `ganbench sweep` (local executor, two workers, one sweep of all
the cells) trains every row and stops at its evaluation, because the first
metric of every cell (`halt-test`, a plugin written below) raises while a
file exists; every cell is then `trained`. `ganbench evaluate` scores them
in new processes, which build each method from its generator.pt alone.

The sweep costs about 9 CPU-minutes (59 cells; measured under load), more
than the default test run can spare, so the tests that need it carry the
`e2e` marker (left out of `python -m pytest`, run by `python -m pytest -m
e2e`, which the README's test command and CI run after it); the registry
checks that need no run stay in the default run.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from bench.errors import UserError
from bench.registry import ADDONS, DATASETS, METHODS
from bench.spec import load_sweep
from tests.conftest import ganbench
from tests.data_writers import write_mnist_like

# Sizes only: each key is cut where a row has it; every other setting stays at the row's default.
BUDGET = {"steps": 3, "batch_size": 16, "eval_samples": 200}
SIZES = {
    "ccgan_embed_epochs": 1, "ccgan_y2h_epochs": 1,  # the label embedding's epochs (200 and 500)
    "dual_nda_bank_step": 3, "dual_nda_bank_per_label": 6,  # the baseline's steps; fakes per label in the Type II bank
    "drs_burnin": 50, "drs_calib_steps": 5,  # DRS's burn-in draws and calibration steps
    "pa_every": 2, "pa_kid_samples": 50,  # PA's check every 2 steps (its schedule runs), on 50 samples
}  # fmt: skip

HALT = '''
import os
from pathlib import Path

from bench.metrics.base import Metric
from bench.registry import METRICS


@METRICS.register("halt-test")
class Halt(Metric):
    """0; raises while the file $HALT_TRIGGER exists (the sweep then leaves its cell `trained`)."""
    label, direction = "halt", "higher"

    def compute(self, ctx):
        if Path(os.environ.get("HALT_TRIGGER", "/nonexistent")).exists():
            raise RuntimeError("halt-test: training only")
        return 0.0
'''


def registered_rows() -> list[str]:
    """Every base method, every `base+addon` the registry accepts, and aliases that add a composition."""
    bases = [n for n in METHODS.names() if n not in METHODS.aliases]
    rows = []
    for base in bases:
        rows.append(base)
        rows += [f"{base}+{addon}" for addon in ADDONS.names() if f"{base}+{addon}" in METHODS]
    rows += [alias for alias, target in METHODS.aliases.items() if target not in rows]
    return rows


def sample_size(name: str) -> int:
    d = DATASETS.get(name)
    return d.dim if d.kind == "points" else d.resolution**2 * d.channels


def smallest_datasets(rows: list[str], folder: Path) -> dict[str, str]:
    """row -> the first dataset, by (numbers per sample, name), on which the spec accepts it at its defaults."""
    order = sorted(DATASETS.names(), key=lambda n: (sample_size(n), n))
    chosen = {}
    for row in rows:
        for dataset in order:
            probe = folder / "probe.yaml"
            probe.write_text(f"name: probe\nmatrix: {{method: ['{row}'], dataset: [{dataset}], imbalance: [1], seed: [0]}}\n")
            try:
                load_sweep(probe)
            except UserError:
                continue
            chosen[row] = dataset
            break
    return chosen


@pytest.fixture(scope="module")
def every_row(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rows")
    (folder / "plugins").mkdir()
    (folder / "plugins" / "halt.py").write_text(HALT)
    rows = registered_rows()
    chosen = smallest_datasets(rows, folder)
    # Datasets read from files get small ones in the published format: rot-fmnist reads Fashion-MNIST's
    # IDX files. 4,500 test images (the reference) put at least 10 in each SFID window of 0.5 degrees;
    # 100 training images keep the label embedding (ResNet-34 by default, one epoch here) to seconds.
    data = write_mnist_like(folder / "fashion", per_class_train=10, per_class_test=450)
    used = sorted(set(chosen.values()))
    dataset_blocks = {}
    for name in used:
        block = {"metrics": ["halt-test", *DATASETS.get(name).metrics]}
        dataset = DATASETS.get(name)
        if dataset.label_type == "continuous":
            # 10 fakes at each evaluation label: SFID's windows need 10, circle_w2's Gaussian fits 2
            block["budget"] = {"eval_samples": 10 * len(dataset().eval_labels())}
        if "root" in DATASETS.get(name).options:
            block["options"] = {"root": str(data)}
        dataset_blocks[name] = block
    method_blocks = {}
    for row in rows:
        sizes = {k: v for k, v in SIZES.items() if k in METHODS.get(row).hp}
        if sizes:
            method_blocks[row] = {"hp": sizes}
    sweep = {
        "name": "every-row",
        "plugins": [str(folder / "plugins")],
        # the matrix holds the first row; `include` adds each other row on its own dataset
        "matrix": {"method": [rows[0]], "dataset": [chosen[rows[0]]], "imbalance": [1], "seed": [0]},
        "include": [{"method": row, "dataset": chosen[row], "imbalance": 1, "seed": 0} for row in rows[1:] if row in chosen],
        "defaults": {"budget": BUDGET, "log_every": 1, "checkpoint_every": 100},
        "overrides": {"dataset": dataset_blocks, "method": method_blocks},
        "executor": {"name": "local", "workers": 2},
    }
    (folder / "rows.yaml").write_text(json.dumps(sweep, indent=1))  # JSON is YAML
    trigger = folder / "halt"
    trigger.touch()
    env = {"HALT_TRIGGER": str(trigger)}
    trained = ganbench("sweep", "rows.yaml", "--no-report", cwd=folder, env=env, timeout=2400)
    trigger.unlink()
    # row -> cell id; the upstream cells the spec adds (Dual-NDA's baseline) are left out
    ids = {c["config"]["method"]: c["id"] for c in load_sweep(folder / "rows.yaml").cells if "added_for" not in c}
    after_training = _records(folder, ids)
    scored = ganbench("evaluate", "rows.yaml", "--no-report", cwd=folder, env=env, timeout=2400)
    return {"rows": rows, "chosen": chosen, "folder": folder, "trained": trained, "scored": scored,
            "after_training": after_training, "records": _records(folder, ids)}  # fmt: skip


def _records(folder: Path, ids: dict[str, str]) -> dict[str, dict]:
    """row -> its result record, for the rows that have one."""
    out = {}
    for row, cell_id in ids.items():
        path = folder / "results/runs/every-row" / cell_id / "result.json"
        if path.exists():
            out[row] = json.loads(path.read_text())
    return out


def test_the_rows_come_from_the_registries():
    rows = registered_rows()
    assert {"gan", "cgan", "ccgan-svdl", "damage-gan", "lsgan+icr", "gan+drs", "ccgan-svdl+dual-nda"} <= set(rows)
    assert "contrad+adaptivemix" not in rows  # contrad refuses it (its steps bypass d_forward)
    assert "contrad+pacgan" not in rows and "damage-gan+pacgan" not in rows  # likewise (found by the e2e run)
    assert "gm-gan" not in rows  # = gan+gm, already a row
    assert len(rows) == len(set(rows))


@pytest.mark.e2e
def test_every_row_has_a_dataset(every_row):
    missing = [row for row in every_row["rows"] if row not in every_row["chosen"]]
    assert not missing, f"rows no registered dataset accepts at their defaults: {missing}"


@pytest.mark.e2e
def test_every_row_trains_in_one_process_and_is_scored_in_another(every_row):
    after = every_row["after_training"]
    not_trained = {row: (r["status"], (r.get("error") or "").strip().splitlines()[-1:]) for row, r in after.items()
                   if r["status"] != "trained" or "halt-test: training only" not in (r.get("error") or "")}  # fmt: skip
    assert not not_trained and set(after) == set(every_row["rows"]), (
        f"after `ganbench sweep`: {not_trained}; missing: {set(every_row['rows']) - set(after)}\n"
        f"{every_row['trained'].stderr[-3000:]}")  # fmt: skip
    records = every_row["records"]
    not_done = {row: (r["status"], (r.get("error") or "").strip().splitlines()[-1:]) for row, r in records.items()
                if r["status"] != "done"}  # fmt: skip
    assert not not_done, f"after `ganbench evaluate`: {not_done}\n{every_row['scored'].stderr[-3000:]}"
    for row, record in records.items():
        assert record["timings"]["train_reused"] is True, f"{row}: evaluate trained it again"
        assert record["environment"]["host"] and record["train"]["environment"]


@pytest.mark.e2e
def test_every_default_metric_is_finite(every_row):
    bad = {}
    for row, record in every_row["records"].items():
        dataset = DATASETS.get(every_row["chosen"][row])
        for name in dataset.metrics:
            value = record["metrics"].get(name)
            if value is None or not math.isfinite(value):
                reason = record.get("evaluator", {}).get("unavailable", {}).get(name, "no reason recorded")
                bad[f"{row} on {dataset.name}: {name}"] = (value, str(reason)[:300])
    assert not bad, bad


@pytest.mark.e2e
def test_defaults_that_depend_on_the_dataset_reach_the_cell(every_row):
    records = every_row["records"]
    assert every_row["chosen"]["cgan"] == "circle"
    assert records["cgan"]["config"]["hp"]["cgan_classes"] == 120  # the CcGAN paper's one class per training angle
    damage = records["damage-gan"]
    assert damage["config"]["hp"]["prune_every"] == 0
    n_train = damage["data"]["n_train"]
    assert damage["method_info"]["prune_every_steps"] == math.ceil(n_train / BUDGET["batch_size"])
