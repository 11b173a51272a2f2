"""Malformed sweep files: each stops with one line naming file, key and problem."""

import pytest

from bench.errors import UserError
from bench.spec import load_sweep
from conftest import ganbench

GOOD_MATRIX = "matrix: {method: [gan], dataset: [ring], imbalance: [1], seed: [0]}\n"

CASES = [
    ("empty", "", "the file is empty"),
    ("not yaml", "name: [unclosed\n", "not valid YAML"),
    ("no name", GOOD_MATRIX, "name: is required"),
    ("bad name", "name: 'a b'\n" + GOOD_MATRIX, "name: must be a name of letters"),
    ("unknown top key", "name: s\nmatirx: {}\n" + GOOD_MATRIX, "unknown key 'matirx'; did you mean 'matrix'?"),
    ("unknown method", "name: s\nmatrix: {method: [gan, lsgna], dataset: [ring], imbalance: [1], seed: [0]}\n",
     "matrix.method[1]: unknown method 'lsgna'; did you mean 'lsgan'"),
    ("unknown dataset", "name: s\nmatrix: {method: [gan], dataset: [rign], imbalance: [1], seed: [0]}\n",
     "matrix.dataset[0]: unknown dataset 'rign'; did you mean 'ring'"),
    ("missing axis", "name: s\nmatrix: {method: [gan], dataset: [ring], imbalance: [1]}\n", "matrix.seed: is required"),
    ("rho below one", "name: s\nmatrix: {method: [gan], dataset: [ring], imbalance: [0.5], seed: [0]}\n",
     "matrix.imbalance[0]: must be >= 1, got 0.5"),
    ("negative seed", "name: s\nmatrix: {method: [gan], dataset: [ring], imbalance: [1], seed: [-1]}\n",
     "matrix.seed[0]: must be >= 0, got -1"),
    ("seed not int", "name: s\nmatrix: {method: [gan], dataset: [ring], imbalance: [1], seed: [a]}\n",
     "matrix.seed[0]: must be an integer >= 0, got 'a'"),
    ("steps wrong type", "name: s\n" + GOOD_MATRIX + "defaults: {budget: {steps: many}}\n",
     "defaults.budget.steps: must be an integer >= 1, got 'many'"),
    ("unknown budget key", "name: s\n" + GOOD_MATRIX + "defaults: {budget: {step: 10}}\n",
     "defaults.budget.step: unknown key 'step'; did you mean 'steps'?"),
    ("bad optimizer", "name: s\n" + GOOD_MATRIX + "defaults: {optimizer: {name: adamw}}\n",
     "defaults.optimizer.name: must be one of adam, rmsprop, sgd, got 'adamw'"),
    ("bad betas", "name: s\n" + GOOD_MATRIX + "defaults: {optimizer: {betas: [0.5]}}\n",
     "defaults.optimizer.betas: must be a list of two numbers in [0, 1)"),
    ("negative lr", "name: s\n" + GOOD_MATRIX + "overrides: {method: {gan: {optimizer: {lr_g: -1}}}}\n",
     "overrides.method.gan.optimizer.lr_g: must be > 0, got -1"),
    ("unknown hp", "name: s\nmatrix: {method: [wgan-gp], dataset: [ring], imbalance: [1], seed: [0]}\n"
     "overrides: {method: {wgan-gp: {hp: {gp_wieght: 1}}}}\n",
     "overrides.method.wgan-gp.hp.gp_wieght: method 'wgan-gp' has no hyperparameter 'gp_wieght' (it has: gp_weight)"),
    ("override of unknown method", "name: s\n" + GOOD_MATRIX + "overrides: {method: {lsgna: {}}}\n",
     "overrides.method.lsgna: unknown method 'lsgna'; did you mean 'lsgan'"),
    ("metric for wrong kind", "name: s\n" + GOOD_MATRIX + "defaults: {metrics: [classifier_fid]}\n",
     "metrics: metric 'classifier_fid' does not apply to dataset 'ring'"),
    ("unknown metric", "name: s\n" + GOOD_MATRIX + "defaults: {metrics: [fdi]}\n", "defaults.metrics[0]: unknown metric 'fdi'"),
    ("bad executor", "name: s\n" + GOOD_MATRIX + "executor: {name: kubernetes}\n",
     "executor.name: must be one of"),
    ("workers zero", "name: s\n" + GOOD_MATRIX + "executor: {workers: 0}\n", "executor.workers: must be >= 1, got 0"),
    ("include partial", "name: s\n" + GOOD_MATRIX + "include: [{method: gan}]\n",
     "include[0].dataset: is required"),
    ("exclude everything", "name: s\n" + GOOD_MATRIX + "exclude: [{method: gan}]\n", "exclude: excludes every cell"),
    ("matrix not mapping", "name: s\nmatrix: [gan]\n", "matrix: must be a mapping, got a list"),
    ("missing plugin folder", "name: s\nplugins: [nowhere]\n" + GOOD_MATRIX, "plugins[0]: folder"),
]


@pytest.mark.parametrize("text,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_sweep(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        load_sweep(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_cli_spec_error_is_one_line_exit_2_nothing_written(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: s\nmatrix: {method: [gan, lsgna], dataset: [ring], imbalance: [1], seed: [0]}\n")
    for command in ("plan", "sweep", "status", "report"):
        proc = ganbench(command, path, "--results", tmp_path / "results", check=2)
        assert proc.stderr.count("\n") == 1, proc.stderr
        assert "matrix.method[1]: unknown method 'lsgna'; did you mean 'lsgan'" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()


def test_cli_missing_file_and_bad_flag(tmp_path):
    proc = ganbench("plan", tmp_path / "nope.yaml", check=2)
    assert "no such sweep file" in proc.stderr and "Traceback" not in proc.stderr
    good = tmp_path / "good.yaml"
    good.write_text("name: s\n" + GOOD_MATRIX)
    proc = ganbench("sweep", good, "--workers", "0", check=2)
    assert "must be a positive integer" in proc.stderr
