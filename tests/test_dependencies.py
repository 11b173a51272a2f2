"""Cells that depend on other cells (issue 13): `Method.needs`, end to end through the real CLI.

A test-only plugin (tests/plugins/needs_plugin.py) declares a row
(`needs-test`) that builds on the training run of another (`base-test`):
the spec adds the upstream cell, the dependent
waits for it, reads its training folder, and an upstream that fails leaves
its dependent `blocked` with the reason, never `failed`.
"""

import json
import textwrap
from pathlib import Path

import pytest

from bench.errors import UserError
from bench.spec import load_sweep, training_id
from conftest import ganbench

NEEDS_PLUGINS = Path(__file__).resolve().parent / "plugins"  # needs_plugin.py: base-test, needs-test, ...


def _tree(tmp_path: Path, methods: str, base_fails: int = 0, seeds: str = "[0]", executor: str = "local") -> Path:
    path = tmp_path / "deps.yaml"
    path.write_text(textwrap.dedent(f"""
        name: deps
        plugins: [{NEEDS_PLUGINS}]
        matrix: {{method: {methods}, dataset: [ring], imbalance: [1], seed: {seeds}}}
        defaults: {{budget: {{steps: 20, batch_size: 32, eval_samples: 100}}, log_every: 10, checkpoint_every: 100}}
        overrides: {{method: {{needs-test: {{hp: {{base_fails: {base_fails}}}}}}}}}
        executor: {{name: {executor}, workers: 2}}
    """))
    return path


def _by_method(cells: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for cell in cells:
        out.setdefault(cell["config"]["method"], []).append(cell)
    return out


def test_the_spec_adds_the_upstream_cell_and_puts_its_training_id_in_the_dependent(tmp_path):
    sweep = load_sweep(_tree(tmp_path, "[needs-test]", seeds="[0, 1]"))
    rows = _by_method(sweep.cells)
    assert sorted(rows) == ["base-test", "needs-test"] and len(rows["base-test"]) == 2
    for dependent in rows["needs-test"]:
        (upstream,) = [c for c in rows["base-test"] if c["config"]["seed"] == dependent["config"]["seed"]]
        assert dependent["config"]["upstream"] == {"base": upstream["training_id"]}
        assert upstream["config"]["budget"]["steps"] == 30  # the override of needs(), over the sweep's 20
        assert upstream["config"]["dataset"] == "ring" and upstream["config"]["imbalance"] == 1
        assert upstream["added_for"] == ["needs-test"] and "added_for" not in dependent
        assert "upstream" not in upstream["config"]
    # The upstream's identity is part of the dependent's: another base budget is another cell.
    again = load_sweep(_tree(tmp_path, "[needs-test]", seeds="[0, 1]"))
    assert [c["id"] for c in again.cells] == [c["id"] for c in sweep.cells]
    path = _tree(tmp_path, "[needs-test]", seeds="[0, 1]")
    path.write_text(path.read_text().replace("base_fails: 0", "base_fails: 0, base_steps: 40"))
    other = _by_method(load_sweep(path).cells)
    assert {c["id"] for c in other["needs-test"]}.isdisjoint(c["id"] for c in rows["needs-test"])
    assert {c["config"]["budget"]["steps"] for c in other["base-test"]} == {40}


def test_an_upstream_the_matrix_has_is_not_added_twice(tmp_path):
    path = _tree(tmp_path, "[base-test, needs-test]")
    path.write_text(path.read_text().replace("overrides: {method: {", "overrides: {method: {base-test: {budget: {steps: 30}}, "))
    sweep = load_sweep(path)
    rows = _by_method(sweep.cells)
    assert len(rows["base-test"]) == 1 and "added_for" not in rows["base-test"][0]
    assert rows["needs-test"][0]["config"]["upstream"] == {"base": training_id(rows["base-test"][0]["config"])}



def test_an_added_upstream_is_a_row_of_its_own_in_the_report(tmp_path):
    """The matrix's base-test (20 steps) and the base-test run that needs-test adds (30 steps) are
    two rows: averaging them would mix budgets under one name."""
    _tree(tmp_path, "[base-test, needs-test]", seeds="[0, 1]")
    sweep = load_sweep(tmp_path / "deps.yaml")
    assert sum(1 for c in sweep.cells if c.get("added_for")) == 2
    ganbench("sweep", "deps.yaml", cwd=tmp_path, check=0)
    board = (tmp_path / "results/deps/leaderboard.md").read_text()
    lines = [ln for ln in board.splitlines() if ln.startswith("| base-test")]
    assert any(ln.startswith("| base-test |") and "(2)" in ln for ln in lines), board
    assert any(ln.startswith("| base-test (upstream) |") and "(2)" in ln for ln in lines), board
    assert "base-test (upstream): the training runs that needs-test starts from" in board
    compare = ganbench("compare", "deps.yaml", "--baseline", "base-test", cwd=tmp_path, check=0).stdout
    assert "base-test (upstream)" in compare

@pytest.mark.parametrize("method, message", [
    ("loop-a-test", "must not lead back to itself"),
    ("bad-needs-test", "needs() returned for 'base': unknown method 'no-such-row'"),
])  # fmt: skip
def test_bad_needs_are_one_line(tmp_path, method, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        load_sweep(_tree(tmp_path, f"[{method}]"))
    assert "\n" not in str(info.value) and "deps.yaml" in str(info.value)


def test_local_sweep_runs_the_upstream_first_and_a_second_run_does_nothing(tmp_path):
    _tree(tmp_path, "[needs-test]")
    plan = ganbench("plan", "deps.yaml", cwd=tmp_path, check=0).stdout
    assert "blocked (upstream 'base' (training " in plan and "has not finished training)" in plan
    assert "[upstream of needs-test]" in plan and "1 of them added as upstream training runs" in plan
    assert "deps: done 0, diverged 0, failed 0, running 0, pending 1, blocked 1 (of 2)" in \
        ganbench("status", "deps.yaml", cwd=tmp_path, check=0).stdout  # fmt: skip

    # Two workers: without the order the dependent would start beside its upstream and stay blocked.
    proc = ganbench("sweep", "deps.yaml", "--no-report", cwd=tmp_path, check=0)
    assert "2 to run on local" in proc.stderr
    sweep = load_sweep(tmp_path / "deps.yaml")
    runs = tmp_path / "results/runs/deps"
    rows = _by_method(sweep.cells)
    (base,), (dependent,) = rows["base-test"], rows["needs-test"]
    record = json.loads((runs / dependent["id"] / "result.json").read_text())
    assert record["status"] == "done", record.get("error")
    assert record["config"]["upstream"] == {"base": base["training_id"]}
    upstream_dir = runs / "train" / base["training_id"]
    assert record["method_info"]["base"] == {"folder": str(upstream_dir.resolve()), "g_updates": 30, "status": "trained"}
    assert json.loads((runs / base["id"] / "result.json").read_text())["status"] == "done"

    again = ganbench("sweep", "deps.yaml", "--no-report", cwd=tmp_path, check=0)
    assert "2 with a result" in again.stderr and "0 to run on local" in again.stderr


def test_a_failed_upstream_leaves_its_dependent_blocked_with_the_reason(tmp_path):
    _tree(tmp_path, "[needs-test]")
    proc = ganbench("sweep", "deps.yaml", "--executor", "debug", cwd=tmp_path, check=1, env={"BASE_TEST_FAILS": "1"})
    assert "1 cells are blocked: upstream 'base' (training " in proc.stderr
    assert "failed: RuntimeError: base-test fails on purpose" in proc.stderr
    sweep = load_sweep(tmp_path / "deps.yaml")
    rows = _by_method(sweep.cells)
    (dependent,) = rows["needs-test"]
    runs = tmp_path / "results/runs/deps"
    assert not (runs / dependent["id"] / "result.json").exists()  # never a failed run of its own
    assert not (runs / "train" / dependent["training_id"]).exists()
    status = ganbench("status", "deps.yaml", "--cells", cwd=tmp_path, check=0).stdout
    assert "deps: done 0, diverged 0, failed 1, running 0, pending 0, blocked 1 (of 2)" in status
    (line,) = [ln for ln in status.splitlines() if ln.startswith(dependent["id"])]
    assert " blocked  [upstream 'base' (training " in line and "failed: RuntimeError: base-test fails on purpose]" in line
    assert (tmp_path / "results/deps/leaderboard.md").exists()  # the report goes on with the other cells
    report = ganbench("report", "deps.yaml", cwd=tmp_path, check=0)
    assert "1 missing (1 of them blocked)" in report.stdout

    # --retry-failed trains the upstream again; on two workers the dependent waits for that
    # retry (not for the failed record it replaces) and runs in the same sweep.
    retry = ganbench("sweep", "deps.yaml", "--retry-failed", "--no-report", cwd=tmp_path, check=0)
    assert "2 to run on local" in retry.stderr
    assert json.loads((runs / dependent["id"] / "result.json").read_text())["status"] == "done"


def test_upstream_dir_and_derived_file(tmp_path):
    """What a dependent method sees: its upstream folders by name, a clear error for others."""
    from bench.registry import DATASETS, METHODS

    (cell,) = [c for c in load_sweep(_tree(tmp_path, "[needs-test]")).cells if c["config"]["method"] == "base-test"]
    upstream = tmp_path / "train/abc"
    upstream.mkdir(parents=True)
    method = METHODS.get("base-test").create(cell["config"], DATASETS.get("ring").info(), "cpu",
                                             upstream_dirs={"base": str(upstream)})  # fmt: skip
    assert method.upstream_dir("base") == upstream
    bank = method.derived_file("base", "bank-1234.pt")
    assert bank == upstream / "derived/bank-1234.pt" and bank.parent.is_dir()
    with pytest.raises(LookupError, match="method 'base-test' has no upstream training run 'other'"):
        method.upstream_dir("other")
    gone = METHODS.get("base-test").create(cell["config"], DATASETS.get("ring").info(), "cpu",
                                           upstream_dirs={"base": str(tmp_path / "missing")})  # fmt: skip
    with pytest.raises(FileNotFoundError, match="upstream training run 'base': no folder"):
        gone.upstream_dir("base")
