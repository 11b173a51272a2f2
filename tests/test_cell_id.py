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
