"""Every committed protocol (sweeps/*.yaml, and each of its `budgets:` profiles) runs end to
end through the real CLI at a smoke budget (issue 20).

The smoke version of a protocol is derived here, not kept by hand, so a new
sweep file or profile is covered the day it is committed: the profile is
merged as `--budget` merges it, then only sizes are cut (`smoke`): the
number of steps and every step count tied to it (scaled together, so that
e.g. Dual-NDA's `dual_nda_bank_step` still equals its baseline's steps and a
warm-up still ends before the last step), the batch, the evaluation samples,
the hyperparameters that are sample counts or epochs, the training seeds (the
first only), the evaluation networks' training (`EVALNET_STEPS` batches) and
the data (small files in the published formats, written below, with labels
spread like the real ones). Every other setting stays:
the matrix's methods, datasets and imbalance factors, architectures,
optimizers, losses, `prune_every: 0`, Dual-NDA's schedule and weights, the
metrics. Each metric column must come out finite, or its cells must record
why not (`evaluator.unavailable`, which the report prints).

These runs take minutes each, so they carry the `e2e` marker, which the
default `python -m pytest` leaves out (pyproject.toml); run them with
`python -m pytest -m e2e` (the README's test command and CI run it after
the default run). Each protocol
is a test group of its own (`XDIST_GROUP_BY_PARAM`), so the two test
workers run two protocols side by side.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from bench.registry import ADDONS, DATASETS, METHODS
from bench.spec import DEFAULT_BUDGET, _merge
from bench.yamlsafe import load_file
from tests.conftest import REPO, ganbench
from tests.data_writers import steering_angles, utkface_ages, write_ccgan_h5, write_cifar, write_mnist_like

pytestmark = pytest.mark.e2e
XDIST_GROUP_BY_PARAM = True  # each protocol's run is a group of its own: test workers run them side by side

SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))
MAX_STEPS = 4  # the longest training of a smoke run; every step count scales with it
BATCH = 16
# The evaluation networks' training is a size too: the authors' ResNet-34s (`evalnets: authors`, the
# paper profiles) train 200 epochs, hours on a CPU. Capped here ($GANBENCH_EVALNET_STEPS, bench.metrics.evalnet).
EVALNET_STEPS = 3
EVAL_SAMPLES = 48  # fakes scored per cell where the labels ask no more (Inception scores ~6 a second here)
# Hyperparameters that are sizes: epochs and sample counts, cut to these values (at most).
HP_SIZES = {"ccgan_embed_epochs": 1, "ccgan_y2h_epochs": 1, "dual_nda_bank_per_label": 6, "pa_kid_samples": 64,
            "drs_burnin": 50}  # fmt: skip
# Hyperparameters that count generator steps: scaled like the budget's steps (0 keeps its meaning).
HP_STEPS = ("dual_nda_bank_step", "pa_every", "prune_every", "warmup", "drs_calib_steps")


def protocols() -> list:
    """(sweep file, profile or None) for every committed sweep and each of its budget profiles."""
    return [pytest.param((path.name, profile), id=f"{path.stem}-{profile or 'base'}")
            for path in SWEEPS for profile in [None, *load_file(path).get("budgets", {})]]  # fmt: skip


def smoke(raw: dict, profile: str | None) -> dict:
    """The sweep as `--budget profile` runs it, with only its sizes cut."""
    raw = json.loads(json.dumps(raw))
    profiles = raw.pop("budgets", {})
    raw.pop("reference", None)  # paper values: no smoke run is compared with them
    if profile is not None:
        raw["defaults"] = _merge(raw.get("defaults", {}), profiles[profile].get("defaults", {}))
        raw["overrides"] = _merge(raw.get("overrides", {}), profiles[profile].get("overrides", {}))
    raw["name"] = f"{raw['name']}-{profile or 'base'}-smoke"
    raw["matrix"]["seed"] = raw["matrix"]["seed"][:1]
    raw["executor"] = {"name": "local", "workers": 2}
    blocks = [raw.setdefault("defaults", {})]
    for kind in ("dataset", "method"):
        blocks += list(raw.get("overrides", {}).get(kind, {}).values())
    # The sizes a sweep leaves at the defaults are cut too (2,000 evaluation samples through Inception
    # cost 6 CPU-minutes a cell).
    for key in ("steps", "batch_size", "eval_samples"):
        raw["defaults"].setdefault("budget", {}).setdefault(key, DEFAULT_BUDGET[key])
    longest = max(b.get("budget", {}).get("steps", 0) for b in blocks)
    # Dual-NDA's Type II bank: `dual_nda_bank_per_label` fakes at each group's label, 6 the fewest a
    # per-label q2 = 0.9 filter keeps any of; with one filter over all fakes (Steering Angle: a group
    # per distinct training label, 1,500 here) 2 do, and 6 cost 20 CPU-minutes with the paper's G.
    filters_per_group = sys.modules[ADDONS.get("dual-nda").__module__].filters_per_group  # as the plugin loader named it
    per_label_filter = any(filters_per_group(DATASETS.get(d).info()["niqe"]) for d in raw["matrix"]["dataset"])
    sizes = {**HP_SIZES, "dual_nda_bank_per_label": HP_SIZES["dual_nda_bank_per_label"] if per_label_filter else 2}
    labels = max(len(DATASETS.get(d)().eval_labels()) if DATASETS.get(d).label_type == "continuous" else 0
                 for d in raw["matrix"]["dataset"])  # fmt: skip

    # 2 fakes at each evaluation label (a window's Fréchet distance and circle_w2's Gaussian need 2).
    # Steering Angle's 2,000 labels get 400 fakes spread over them (bench.data requested_labels):
    # its SFID windows (radius 2 degrees) hold ~10 each, and 2,000 cost 15 CPU-minutes a cell with
    # the paper's networks.
    fakes = 2 * labels if 2 * labels <= 1000 else 400

    def steps(n: int) -> int:
        return 0 if n == 0 else max(1, math.ceil(n * MAX_STEPS / longest))

    for block in blocks:
        budget = block.get("budget", {})
        if "steps" in budget:
            budget["steps"] = steps(budget["steps"])
        if "batch_size" in budget:
            budget["batch_size"] = min(budget["batch_size"], BATCH)
        if "eval_samples" in budget:
            budget["eval_samples"] = min(budget["eval_samples"], max(EVAL_SAMPLES, fakes))
        for key in ("log_every", "checkpoint_every"):
            if key in block:
                block[key] = steps(block[key])
        hp = block.get("hp", {})
        for key in HP_STEPS:
            if key in hp:
                hp[key] = steps(hp[key])
        for key, cap in sizes.items():
            if key in hp:
                hp[key] = min(hp[key], cap)
    # Sizes that rows take from their defaults (a method's epochs, sample counts, step counts).
    for row in raw["matrix"]["method"]:
        defaults = METHODS.get(row).hp
        block = raw.setdefault("overrides", {}).setdefault("method", {}).setdefault(row, {})
        hp = block.setdefault("hp", {})
        for key, cap in sizes.items():
            if key in defaults and key not in hp:
                hp[key] = min(defaults[key], cap)
        for key in HP_STEPS:
            if key in defaults and key not in hp:
                hp[key] = steps(defaults[key])
    return raw


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """$GANBENCH_DATA for the protocols: small files in each data set's published format."""
    root = tmp_path_factory.mktemp("data")
    # 100 images of the largest class: the rho-100 long tail keeps at least one image of every class.
    write_mnist_like(root / "fashion-mnist", per_class_train=100, per_class_test=20)
    # Rotated Fashion-MNIST scores SFID in 180 windows 0.5 degrees wide over its test split: 3,000 test
    # images hold ~17 a window (20 a class held ~2, and 123 windows fewer than the 2 a Fréchet needs).
    write_mnist_like(root / "rot-fmnist" / "fashion-mnist", per_class_train=100, per_class_test=300)
    write_mnist_like(root / "mnist", per_class_train=100, per_class_test=20)
    write_cifar(root / "cifar10", per_batch=200)
    ages = utkface_ages(1200)
    write_ccgan_h5(root / "utkface" / "UTKFace_64x64.h5", ages, races=np.arange(len(ages)) % 5)  # Diversity's 5 races
    write_ccgan_h5(root / "steering-angle" / "SteeringAngle_64x64.h5", steering_angles(1500))
    # the scene classifier's file beside it (Diversity: the entropy of the predicted scene, 5 scenes)
    write_ccgan_h5(root / "steering-angle" / "SteeringAngle_5_scenes_64x64.h5", np.arange(200) % 5)
    return root


@pytest.fixture(scope="module", params=protocols())
def protocol(request, data_root, tmp_path_factory) -> dict:
    """One smoke run of a protocol through `ganbench sweep`: its sweep, the CLI's output, its records."""
    file, profile = request.param
    folder = tmp_path_factory.mktemp("protocol")
    if "rot-fmnist" in load_file(REPO / "sweeps" / file)["matrix"]["dataset"]:
        data_root = data_root / "rot-fmnist"
    with pytest.MonkeyPatch.context() as mp:  # the labels of a data set read from files (steering angles) are the files'
        mp.setenv("GANBENCH_DATA", str(data_root))
        raw = smoke(load_file(REPO / "sweeps" / file), profile)
    (folder / "smoke.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    env = {"GANBENCH_DATA": str(data_root), "GANBENCH_EVALNET_STEPS": str(EVALNET_STEPS)}
    # A guard against a hang, not a speed target: the steering paper profile (the paper's networks at
    # 64x64) took 24 min beside the other runs, and 30 min with a third process on the 2 cores.
    proc = ganbench("sweep", "smoke.yaml", cwd=folder, env=env, timeout=3600)
    records = [json.loads(p.read_text()) for p in (folder / "results/runs" / raw["name"]).glob("*/result.json")]
    return {"file": file, "profile": profile, "raw": raw, "proc": proc, "records": records}


def test_protocol_runs_at_a_smoke_budget(protocol):
    records, proc = protocol["records"], protocol["proc"]
    not_done = {(r["config"]["method"], r["config"]["dataset"], r["config"]["imbalance"]):
                (r["status"], (r.get("error") or "").strip().splitlines()[-1:]) for r in records if r["status"] != "done"}  # fmt: skip
    assert records and not not_done and proc.returncode == 0, f"{not_done}\n{proc.stderr[-3000:]}"


def test_protocol_metric_columns_are_finite_or_say_why(protocol):
    unexplained = {}
    for r in protocol["records"]:
        for name in r["config"]["metrics"]:
            value = r["metrics"].get(name)
            why = r.get("evaluator", {}).get("unavailable", {}).get(name)
            if value is None or (not math.isfinite(value) and not why):
                unexplained[(r["config"]["method"], r["config"]["dataset"], name)] = value
            elif not math.isfinite(value):
                print(f"{protocol['file']} {protocol['profile']}: {r['config']['method']} {name} is NaN: {why}")
    assert not unexplained, f"metric columns that are not finite and say no reason: {unexplained}"


def test_protocol_continuous_columns_are_finite(protocol):
    """The NaNs a protocol must not have: SFID, Diversity, NIQE and Label Score are the continuous
    protocols' columns (the steering protocol's SFID was NaN at its own settings until its windows
    followed the authors'; Diversity needs the scene file or the races, which the data here has)."""
    columns = ("sfid", "diversity", "niqe", "label_score")
    scored = {(r["config"]["method"], name): r["metrics"][name] for r in protocol["records"] for name in columns
              if name in r["metrics"]}  # fmt: skip
    if not scored:
        pytest.skip(f"{protocol['file']} scores none of {', '.join(columns)}")
    reasons = {(r["config"]["method"], name): why for r in protocol["records"]
               for name, why in r["evaluator"].get("unavailable", {}).items()}  # fmt: skip
    bad = {key: (value, reasons.get(key)) for key, value in scored.items() if not math.isfinite(value)}
    assert not bad, f"not finite: {bad}"
