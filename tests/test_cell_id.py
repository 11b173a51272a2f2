import subprocess
import sys
import textwrap

from bench.spec import cell_id, load_sweep

SWEEP = """
name: ids
matrix: {method: [gan, wgan-gp], dataset: [ring], imbalance: [1, 10.0], seed: [0]}
defaults: {budget: {steps: 10}}
"""


def test_same_config_same_id_any_key_order():
    a = {"method": "gan", "budget": {"steps": 1, "batch_size": 2}, "seed": 0}
    b = {"seed": 0, "budget": {"batch_size": 2, "steps": 1}, "method": "gan"}
    assert cell_id(a) == cell_id(b)
    assert len(cell_id(a)) == 12


def test_any_change_gives_new_id():
    base = {"method": "gan", "budget": {"steps": 1}, "hp": {"w": 1.0}, "seed": 0}
    changed = [
        {**base, "seed": 1},
        {**base, "budget": {"steps": 2}},
        {**base, "hp": {"w": 1.5}},
        {**base, "method": "lsgan"},
    ]
    ids = {cell_id(base)} | {cell_id(c) for c in changed}
    assert len(ids) == 5


def test_id_is_stable_across_processes(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SWEEP)
    here = [c["id"] for c in load_sweep(path).cells]
    code = f"from bench.spec import load_sweep; print(' '.join(c['id'] for c in load_sweep({str(path)!r}).cells))"
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert here == there and len(set(here)) == 4


def test_resolved_config_carries_method_defaults_and_overrides(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SWEEP + textwrap.dedent("""
        overrides:
          method: {wgan-gp: {hp: {gp_weight: 5.0}}}
    """))
    cells = {c["config"]["method"]: c for c in load_sweep(path).cells if c["config"]["imbalance"] == 10}
    wgp = cells["wgan-gp"]["config"]
    assert wgp["hp"] == {"gp_weight": 5.0}
    assert wgp["optimizer"]["d_steps"] == 5 and wgp["optimizer"]["lr_d"] == 1e-4
    assert wgp["imbalance"] == 10 and isinstance(wgp["imbalance"], int)  # 10.0 and 10 are one cell
    assert cells["gan"]["config"]["budget"]["steps"] == 10
    # the overridden cell differs from the same cell with paper defaults
    path.write_text(SWEEP)
    plain = {c["config"]["method"]: c for c in load_sweep(path).cells if c["config"]["imbalance"] == 10}
    assert plain["wgan-gp"]["id"] != cells["wgan-gp"]["id"]
    assert plain["gan"]["id"] == cells["gan"]["id"]


def test_a_hyperparameter_added_later_keeps_the_ids_of_rows_at_its_default(tmp_path):
    """sngan_loss came after sngan rows had results: at its default (hinge) it stays out of the config,
    so the committed pa-adaptivemix results keep their ids; nonsat is a new cell."""
    import csv

    import yaml

    from bench.registry import METHODS, REPO_ROOT
    from test_methods import make_method

    committed = {row["id"] for row in csv.DictReader(open(REPO_ROOT / "results/pa-adaptivemix/cells.csv"))
                 if row["method"].startswith("sngan")}  # fmt: skip
    # They were made before budget.sampler existed, with replacement (tests/test_batches.py): pinned, their ids hold.
    raw = yaml.safe_load((REPO_ROOT / "sweeps/pa-adaptivemix.yaml").read_text())
    raw["defaults"]["budget"]["sampler"] = "replacement"
    pinned = tmp_path / "pinned.yaml"
    pinned.write_text(yaml.safe_dump(raw))
    cells = load_sweep(pinned).cells
    assert len(committed) >= 6 and committed <= {c["id"] for c in cells}
    assert not any("sngan_loss" in c["config"]["hp"] for c in cells)
    path = tmp_path / "s.yaml"
    path.write_text(SWEEP.replace("[gan, wgan-gp]", "[sngan]"))
    hinge = load_sweep(path).cells[0]
    path.write_text(path.read_text() + "overrides: {method: {sngan: {hp: {sngan_loss: nonsat}}}}\n")
    nonsat = load_sweep(path).cells[0]
    assert nonsat["config"]["hp"] == {"sngan_loss": "nonsat"} and nonsat["id"] != hinge["id"]
    method, _ = make_method("sngan", "digits")
    without = type(method)({**method.config, "hp": {}}, method.data_info, method.device)  # as the spec resolves it
    assert without.hp["sngan_loss"] == "hinge"  # the method still sees its default
    assert METHODS.get("sngan+pa").hp_kept_out_of_id == ("sngan_loss",)


def test_a_datasets_protocol_revision_enters_the_config_only_when_bumped(tmp_path):
    """Steering Angle and UTKFace follow the Dual-NDA authors' protocol since issue 21 (revision 1):
    their cells get ids of their own; datasets at revision 0 keep the ids they had."""
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent("""
        name: rev
        matrix: {method: [ccgan-svdl], dataset: [utkface, steering-angle, rot-fmnist], imbalance: [1], seed: [0]}
        defaults: {budget: {steps: 10}, arch: {name: cond-dcgan-small}}
    """))
    configs = {c["config"]["dataset"]: c["config"] for c in load_sweep(path).cells}
    assert configs["utkface"]["dataset_revision"] == 1 and configs["steering-angle"]["dataset_revision"] == 1
    assert "dataset_revision" not in configs["rot-fmnist"]
    unrevised = {k: v for k, v in configs["utkface"].items() if k != "dataset_revision"}
    assert cell_id(unrevised) != cell_id(configs["utkface"])
