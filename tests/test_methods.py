"""Every method row and add-on trains a few steps on `ring` and `digits`:
finite losses, samples of the right shape; composed rows resolve through the
registry, the spec and the runner."""

import copy
import json
import math
import re

import pytest
import torch

from bench.errors import UserError
from bench.nets import DEFAULT_ARCH
from bench.registry import DATASETS, METHODS
from conftest import ganbench

ROWS = [
    "gan", "lsgan", "wgan", "wgan-gp", "sngan", "cn-lsgan", "gm-gan", "gm-wgan", "lsgan+icr",
    "gan+drs", "lsgan+drs", "gan+pa", "sngan+pa", "gan+adaptivemix", "sngan+pa+adaptivemix", "wgan-gp+pa",
]  # fmt: skip
# Small settings so that a few steps exercise every code path quickly.
FAST_HP = {"drs_burnin": 64, "pa_every": 1, "pa_patience": 1, "pa_holdout": 32}


def make_method(name, dataset="ring", hp=None, batch_size=16, steps=3, seed=0, width=16):
    """(method, next_batch) for row `name`, built as the runner builds it."""
    cls = METHODS.get(name)
    data_cls = DATASETS.get(dataset)
    arch = {**DEFAULT_ARCH[data_cls.kind], "width": width}
    hp = {**cls.hp, **{k: v for k, v in {**FAST_HP, **(hp or {})}.items() if k in cls.hp}}
    config = {"method": name, "dataset": dataset, "imbalance": 1, "seed": seed,
              "budget": {"steps": steps, "batch_size": batch_size, "eval_samples": 32},
              "optimizer": copy.deepcopy(cls.optimizer), "arch": arch, "hp": hp}  # fmt: skip
    torch.manual_seed(seed)
    ds = data_cls()
    method = cls(config, ds.info(), torch.device("cpu"))
    data = ds.train_set(1, seed)
    batches = torch.Generator().manual_seed(seed)

    def next_batch():
        idx = torch.randint(len(data.x), (batch_size,), generator=batches)
        return data.x[idx], data.y[idx]

    return method, next_batch


@pytest.mark.parametrize("dataset", ["ring", "digits"])
@pytest.mark.parametrize("name", ROWS)
def test_a_few_steps_give_finite_losses_and_samples(name, dataset):
    method, next_batch = make_method(name, dataset)
    for _ in range(3):
        logs = method.train_step(next_batch)
        assert logs and all(math.isfinite(v) for v in logs.values()), logs
    fake = method.sample(40, seed=0, batch_size=16)
    expected = (40, 2) if dataset == "ring" else (40, 1, 8, 8)
    assert tuple(fake.shape) == expected
    assert torch.isfinite(fake).all()
    json.dumps(method.record())  # what the result record keeps must be JSON


def test_composed_rows_keep_the_name_as_written_and_merge_hp():
    gm_gan = METHODS.get("gm-gan")
    assert gm_gan.name == "gm-gan" and gm_gan.base == "gan" and gm_gan.addons == ("gm",)
    assert METHODS.get("gan+gm").name == "gan+gm"
    row = METHODS.get("sngan+pa+adaptivemix")
    assert row.spectral_norm and set(row.hp) == {"pa_max_level", "pa_every", "pa_patience", "pa_holdout",
                                                 "adaptivemix_weight", "adaptivemix_norm"}  # fmt: skip
    assert set(METHODS.get("cn-lsgan+icr").hp) >= {"gp_weight", "real_weight", "icr_real"}
    assert METHODS.get("wgan+gm").optimizer["name"] == "rmsprop"  # the base's optimizer


@pytest.mark.parametrize(
    "name, message",
    [
        ("lsgan+icrr", "unknown add-on 'icrr' in method 'lsgan+icrr'; did you mean 'icr'?"),
        ("lsgn+icr", "unknown method 'lsgn' in method 'lsgn+icr'; did you mean 'lsgan'"),
        ("wgan+drs", "add-on 'drs' does not apply to 'wgan': wgan's D is a Wasserstein critic"),
        ("wgan-gp+drs", "add-on 'drs' does not apply to 'wgan-gp'"),
        ("lsgan+icr+pa", "add-ons 'icr' and 'pa' cannot be combined"),
        ("gan+gm+gm", "names add-on 'gm' twice"),
        ("gm-gann", "did you mean 'gm-gan'"),
    ],
)
def test_bad_rows_are_refused_with_one_line(name, message):
    assert name not in METHODS
    with pytest.raises(UserError) as err:
        METHODS.get(name)
    assert message in str(err.value) and "\n" not in str(err.value)


SWEEP = """
name: zoo
matrix: {method: [gm-gan, lsgan+icr], dataset: [ring], imbalance: [1], seed: [0]}
defaults: {budget: {steps: 4, batch_size: 16, eval_samples: 100}, log_every: 2, checkpoint_every: 2}
overrides:
  method:
    lsgan+icr: {hp: HP}
executor: {name: debug}
"""


def test_sweep_overrides_validate_against_the_merged_hp(tmp_path):
    from bench.spec import load_sweep

    path = tmp_path / "s.yaml"
    path.write_text(SWEEP.replace("HP", "{icr_real: 5}"))
    cells = {c["config"]["method"]: c["config"] for c in load_sweep(path).cells}
    assert cells["lsgan+icr"]["hp"]["icr_real"] == 5 and cells["lsgan+icr"]["hp"]["icr_gen"] == 0.5
    assert cells["gm-gan"]["hp"]["gm_layout"] == "circle"
    for hp, where in [("{gp_weight: 1}", "hp.gp_weight: method 'lsgan+icr' has no hyperparameter"),
                      ("{icr_real: -1}", "hp.icr_real: must be a number from 0 to 10,000,000, got -1"),
                      ("{icr_real: 1.0e+12}", "hp.icr_real: must be a number from 0 to 10,000,000, got 1000000000000.0"),
                      ("{icr_sigma: fast}", "hp.icr_sigma: must be a number")]:  # fmt: skip
        path.write_text(SWEEP.replace("HP", hp))
        with pytest.raises(UserError, match=re.escape(f"overrides.method.lsgan+icr.{where}")):
            load_sweep(path)


def test_cli_refuses_a_bad_row_with_exit_2(tmp_path):
    (tmp_path / "s.yaml").write_text(SWEEP.replace("HP", "{}").replace("gm-gan, ", "gm-gan, wgan+drs, "))
    proc = ganbench("plan", "s.yaml", cwd=tmp_path, check=2)
    assert proc.stderr.startswith("ganbench: error: ") and proc.stderr.count("\n") == 1
    assert "matrix.method[1]" in proc.stderr and "does not apply to 'wgan'" in proc.stderr
    assert not (tmp_path / "results").exists()
    listing = ganbench("list", "methods", check=0).stdout
    assert "gm-gan           alias of gan+gm" in listing and "+drs" in listing and "not for wgan, wgan-gp" in listing


def test_runner_records_method_info_for_composed_rows(tmp_path):
    from bench.runner import run_cell
    from bench.spec import load_sweep

    path = tmp_path / "s.yaml"
    path.write_text(SWEEP.replace("HP", "{}").replace("[gm-gan, lsgan+icr]", "[gan+drs, gan+pa]")
                    .replace("lsgan+icr: {hp: {}}", "gan+pa: {hp: {pa_every: 1, pa_patience: 1}}"))  # fmt: skip
    for cell in load_sweep(path).cells:
        cell["runtime"]["results_root"] = str(tmp_path / "results")
        assert run_cell(cell) == "done"
        record = json.loads(next((tmp_path / "results").rglob(f"{cell['id']}/result.json")).read_text())
        info = record["method_info"]
        if record["config"]["method"] == "gan+drs":
            assert 0 < info["drs_acceptance_rate"] <= 1 and info["drs_burnin"] == 10000
        else:
            assert len(info["pa_level_steps"]) == info["pa_level"] and len(info["pa_proxy"]) == 4
