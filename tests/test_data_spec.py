"""Dataset options and budget profiles in sweep files, and data errors at the CLI."""

import json
import textwrap

import pytest

from bench.errors import UserError
from bench.spec import load_sweep
from conftest import REPO, ganbench
from data_writers import write_mnist_like

BASE = """
name: opts
matrix: {method: [gan], dataset: [fashion-mnist], imbalance: [10], seed: [0]}
defaults: {budget: {steps: 2, batch_size: 8, eval_samples: 20}, metrics: [class_kl]}
"""


def _sweep(tmp_path, extra=""):
    """BASE with `extra`; a top-level key of `extra` replaces BASE's (a key written twice is refused)."""
    extra = textwrap.dedent(extra)
    given = {line.split(":")[0] for line in extra.splitlines() if line[:1].isalpha()}
    path = tmp_path / "s.yaml"
    path.write_text("".join(f"{line}\n" for line in BASE.splitlines() if line.split(":")[0] not in given) + extra)
    return path


def _one(tmp_path, extra="", **kw):
    return load_sweep(_sweep(tmp_path, extra), **kw).cells[0]


def test_options_enter_the_id_but_paths_do_not(tmp_path):
    plain = _one(tmp_path)
    default = _one(tmp_path, "overrides: {dataset: {fashion-mnist: {options: {profile: exp, mode: longtail}}}}")
    step = _one(tmp_path, "overrides: {dataset: {fashion-mnist: {options: {profile: step}}}}")
    partial = _one(tmp_path, "defaults: {budget: {steps: 2, batch_size: 8, eval_samples: 20}, metrics: [class_kl], options: {mode: partial}}")
    rooted = _one(tmp_path, "overrides: {dataset: {fashion-mnist: {options: {root: data/fm}}}}")
    assert plain["id"] == default["id"] == rooted["id"]  # defaults are left out; a path is not data
    assert len({plain["id"], step["id"], partial["id"]}) == 3
    assert step["config"]["dataset_options"] == {"profile": "step"} and "dataset_options" not in plain["config"]
    assert rooted["runtime"]["dataset_paths"] == {"root": str((tmp_path / "data/fm").resolve())}


@pytest.mark.parametrize("extra, message", [
    ("overrides: {dataset: {fashion-mnist: {options: {profil: step}}}}",
     "overrides.dataset.fashion-mnist.options.profil: dataset 'fashion-mnist' has no option 'profil'; did you mean 'profile'?"),
    ("overrides: {dataset: {fashion-mnist: {options: {mode: half}}}}",
     "overrides.dataset.fashion-mnist.options.mode: must be one of longtail, partial, got 'half'"),
    ("overrides: {dataset: {fashion-mnist: {options: {root: 3}}}}",
     "overrides.dataset.fashion-mnist.options.root: must be a folder path, got 3"),
    ("overrides: {dataset: {fashion-mnist: {options: [profile]}}}",
     "overrides.dataset.fashion-mnist.options: must be a mapping, got a list"),
    ("overrides: {method: {gan: {options: {profile: step}}}}",
     "overrides.method.gan.options: unknown key 'options'"),
    ("defaults: {options: {profile: step}}\ninclude: [{method: gan, dataset: circle, imbalance: 1, seed: 0}]",
     "defaults.options.profile: dataset 'circle' has no option 'profile'"),
    ("budgets: {paper: {defaults: {budget: {stepz: 9}}}}", "budgets.paper.defaults.budget.stepz: unknown key 'stepz'; did you mean 'steps'?"),
    ("budgets: {paper: {default: {}}}", "budgets.paper.default: unknown key 'default'; did you mean 'defaults'?"),
])  # fmt: skip
def test_bad_options_and_budgets_are_one_line_errors(tmp_path, extra, message):
    with pytest.raises(UserError) as err:
        load_sweep(_sweep(tmp_path, extra))
    assert message in str(err.value) and str(err.value).startswith(str(tmp_path / "s.yaml"))


def test_budget_profile_merges_and_makes_new_cells(tmp_path):
    extra = """
    budgets:
      paper:
        defaults: {budget: {steps: 40}}
        overrides: {dataset: {fashion-mnist: {budget: {batch_size: 64}}}}
    """
    base = load_sweep(_sweep(tmp_path, extra))
    paper = load_sweep(_sweep(tmp_path, extra), budget="paper")
    b, p = base.cells[0]["config"]["budget"], paper.cells[0]["config"]["budget"]
    assert (b["steps"], b["batch_size"]) == (2, 8) and (p["steps"], p["batch_size"], p["eval_samples"]) == (40, 64, 20)
    assert base.cells[0]["id"] != paper.cells[0]["id"] and paper.name == "opts-paper" and paper.budget == "paper"
    with pytest.raises(UserError, match="no budget profile 'gpu' for --budget; the sweep has: paper"):
        load_sweep(_sweep(tmp_path, extra), budget="gpu")


def test_continuous_dataset_without_metrics_is_refused(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins/bare.py").write_text(textwrap.dedent("""
        import numpy as np
        from bench.data import ContinuousDataset
        from bench.registry import DATASETS

        @DATASETS.register("bare-continuous")
        class Bare(ContinuousDataset):
            kind = "points"
            dim = 2
            label_range = (0.0, 1.0)
    """))
    path = tmp_path / "s.yaml"
    path.write_text("name: c\nplugins: [plugins]\nmatrix: {method: [gan], dataset: [bare-continuous], imbalance: [1], seed: [0]}\n")
    with pytest.raises(UserError, match="overrides.dataset.bare-continuous.metrics: dataset 'bare-continuous' has no default metrics yet"):
        load_sweep(path)


def test_fmnist_lt_sweep_file_and_paper_budget():
    base = load_sweep(REPO / "sweeps/fmnist-lt.yaml")
    paper = load_sweep(REPO / "sweeps/fmnist-lt.yaml", budget="paper")
    assert len(base.cells) == len(paper.cells) == 27
    assert {c["config"]["method"] for c in base.cells} == {"gan", "lsgan", "wgan-gp"}
    assert {c["config"]["imbalance"] for c in base.cells} == {1, 10, 100}
    assert not {c["id"] for c in base.cells} & {c["id"] for c in paper.cells}
    assert all(p["config"]["budget"]["steps"] > 10 * b["config"]["budget"]["steps"] for b, p in zip(base.cells, paper.cells))


def test_cli_missing_data_is_one_line_exit_2(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(BASE.replace("fashion-mnist", "mnist"))
    env = {"GANBENCH_DATA": str(tmp_path / "empty"), "GANBENCH_DOWNLOAD": "0"}
    proc = ganbench("sweep", "s.yaml", "--executor", "debug", cwd=tmp_path, env=env, check=2)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("ganbench:")]
    assert len(lines) == 1 and lines[0].startswith("ganbench: error: mnist: data files not found"), proc.stderr
    assert str(tmp_path / "empty" / "mnist") in lines[0] and "train-images-idx3-ubyte.gz" in lines[0]
    assert not (tmp_path / "results/runs/opts").exists() or not any((tmp_path / "results/runs/opts").glob("*/result.json"))
    proc = ganbench("plan", "s.yaml", "--budget", "paper", cwd=tmp_path, check=2)
    assert "no budget profile 'paper'" in proc.stderr


@pytest.mark.slow
def test_one_fashion_mnist_cell_end_to_end(tmp_path):
    """A real cell on small IDX files given by the sweep's `root`: the record keeps the counts and the seed."""
    write_mnist_like(tmp_path / "fm", per_class_train=12, per_class_test=3)
    path = _sweep(tmp_path, "overrides: {dataset: {fashion-mnist: {options: {root: fm, profile: step}, arch: {width: 4}}}}")
    ganbench("sweep", path.name, "--executor", "debug", "--no-report", cwd=tmp_path,
             env={"GANBENCH_DATA": str(tmp_path / "nothing"), "GANBENCH_DOWNLOAD": "0"}, check=0)  # fmt: skip
    (record_path,) = (tmp_path / "results/runs/opts").glob("*/result.json")
    record = json.loads(record_path.read_text())
    assert record["status"] == "done", record.get("error")
    assert record["data"]["class_counts"] == [12] * 5 + [1] * 5 and record["data"]["subset_seed"] == 0
    assert record["data"]["options"] == {"profile": "step", "mode": "longtail"}
    assert "root" not in json.dumps(record["config"])
