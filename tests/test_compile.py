"""`compile: true`: compiled steps give eager's losses, non-compilable rows run
eagerly, the loop reads losses only at its cadence (and still stops at the
step a loss went non-finite), and a resumed compiled run equals an
uninterrupted one.

The per-row sweep uses the "aot_eager" backend: it runs what compiling
changes in our code (Dynamo's capture with its graph breaks and side
effects, AOTAutograd's joint forward/backward graphs, the random draws
inside them) without inductor's C++ code generation, which costs 15-50 s per
row on a 2-core machine. One test runs the real CPU backend (inductor) on
`gan`.
"""

import csv
import json
import math
import shutil

import pytest
import torch

import bench.compiled
from bench.compiled import capture_blocker, compile_steps
from bench.registry import DATASETS, METHODS
from bench.spec import load_sweep
from bench.train import STOP, Diverged, Interrupted, UnreadLogs, train
from conftest import ganbench
from metrics_threads import one_thread  # noqa: F401  (the fixture)
from test_methods import ROW_CASES, make_method

pytestmark = pytest.mark.usefixtures("one_thread")

# The unconditional rows that train on 2-D points (test_methods' cases: add-ons that apply to gan, not
# the image-only contrastive rows); conditional rows run eagerly or compiled through the same objectives.
ROWS = list(dict.fromkeys(name for name, dataset, _ in ROW_CASES if dataset == "ring"))
COMPILABLE = [row for row in ROWS if capture_blocker(METHODS.get(row)) is None]
EAGER = [row for row in ROWS if row not in COMPILABLE]
# The default run keeps three rows that cover the plain step, a penalty
# computed eagerly inside a compiled step (double backward) and spectral
# norm's in-place power iteration; the rest is marked slow.
QUICK = ("gan", "wgan-gp", "sngan")
STEPS = 4


def _losses(name, compiled, backend="aot_eager", dataset="ring"):
    method, next_batch = make_method(name, dataset, batch_size=8, width=4, steps=STEPS)
    facts = compile_steps(method, backend) if compiled else None
    rows = [{k: float(v) for k, v in method.train_step(next_batch).items()} for _ in range(STEPS)]
    return rows, method, facts


def _assert_close(eager, compiled):
    assert [list(row) for row in eager] == [list(row) for row in compiled]
    for a, b in zip(eager, compiled):
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (key, a, b)


@pytest.mark.parametrize("name", [pytest.param(row, marks=() if row in QUICK else pytest.mark.slow) for row in COMPILABLE])
def test_compiled_steps_give_the_eager_losses(name):
    torch._dynamo.reset()
    eager, eager_method, _ = _losses(name, compiled=False)
    compiled, method, facts = _losses(name, compiled=True)
    assert facts == {"path": "compiled", "backend": "aot_eager", "cudagraphs": False, "functions": ["d_objective", "g_objective"]}
    _assert_close(eager, compiled)
    for a, b in zip(eager_method.G.parameters(), method.G.parameters()):
        assert torch.allclose(a, b, atol=1e-5)
    assert method.record() == eager_method.record()


@pytest.mark.skipif(not any(map(shutil.which, bench.compiled.CXX_COMPILERS)), reason="inductor's CPU backend needs a C++ compiler")
def test_inductor_on_the_cpu_gives_the_eager_losses():
    """The backend `compile: true` uses on a CPU: fused C++ kernels, random draws in eager order."""
    torch._dynamo.reset()
    eager, _, _ = _losses("gan", compiled=False)
    compiled, _, facts = _losses("gan", compiled=True, backend="inductor")
    assert facts["path"] == "compiled" and facts["cudagraphs"] is False
    _assert_close(eager, compiled)


@pytest.mark.parametrize("name", EAGER)
def test_a_row_that_cannot_be_captured_runs_eagerly(name):
    method, next_batch = make_method(name, batch_size=8, width=4)
    facts = compile_steps(method, "aot_eager")
    blocker = capture_blocker(type(method))
    assert facts == {"path": "eager", "reason": f"{blocker.__name__} ({blocker.__module__.split('.')[-1]}.py) sets compilable = False"}
    assert method.d_objective.__func__ is type(method).d_objective  # not replaced
    method.train_step(next_batch)


def test_a_row_is_compilable_only_when_every_part_is():
    assert EAGER, "some registered row should declare compilable = False (adaptivemix: host reads)"
    assert capture_blocker(METHODS.get("gan")) is None
    assert capture_blocker(METHODS.get("sngan+adaptivemix")).__name__ == "AdaptiveMix"
    assert capture_blocker(METHODS.get("sngan+pa+adaptivemix")).__name__ == "AdaptiveMix"


# -- the loop --------------------------------------------------------------------


class _Steps:
    """A method stand-in whose step returns device tensors, NaN from step `bad` on."""

    device = torch.device("cpu")

    def batch_rows(self, y):  # every row once, as bench.method.Method
        return None

    def __init__(self, bad=None, crash_at=None):
        self.step, self.bad, self.crash_at = 0, bad, crash_at

    def train_step(self, next_batch):
        self.step += 1
        if self.step == self.crash_at:
            raise ValueError("a method that cannot go on from NaN weights")
        loss = torch.tensor(float("nan") if self.bad and self.step >= self.bad else 1.0 / self.step)
        return {"d_loss": loss, "g_loss": loss * 2, "level": 1.0}

    def state_dict(self):
        return {"step": self.step}

    def begin(self, data, fresh):
        pass


def _run(tmp_path, method, steps=20, log_every=5, ckpt_every=10):
    from bench.data import Split

    data = Split(torch.zeros(32, 2), torch.zeros(32, dtype=torch.long), [32])
    config = {"seed": 0, "budget": {"steps": steps, "batch_size": 4}}
    return train(method, data, config, {"log_every": log_every, "checkpoint_every": ckpt_every}, tmp_path)


def _rows(folder):
    with open(folder / "losses.csv") as handle:
        return list(csv.DictReader(handle))


def test_losses_are_read_once_per_log_and_checkpoint_step(tmp_path, monkeypatch):
    reads = []
    original = UnreadLogs.read

    def counted(self):
        reads.append([step for step, _ in self.steps])
        return original(self)

    monkeypatch.setattr(UnreadLogs, "read", counted)
    _run(tmp_path, _Steps(), steps=20, log_every=5, ckpt_every=8)
    assert [r[-1] for r in reads] == [5, 8, 10, 15, 16, 20] and sum(map(len, reads)) == 20
    rows = _rows(tmp_path)
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 20]
    # the same floats `.item()` gave, and numbers from older plugins as they were
    assert [float(r["d_loss"]) for r in rows] == [torch.tensor(1.0 / s).item() for s in (5, 10, 15, 20)]
    assert {r["level"] for r in rows} == {"1.0"}


@pytest.mark.parametrize("crash_at", [None, 9])
def test_a_non_finite_loss_between_reads_stops_the_run_at_its_step(tmp_path, crash_at):
    """NaN at step 7 is found at the read of step 10 (or when the step of 9 raises),
    reported as step 7, with the log as the per-step check wrote it; no
    checkpoint holds the diverged run."""
    with pytest.raises(Diverged) as err:
        _run(tmp_path, _Steps(bad=7, crash_at=crash_at), steps=20, log_every=5, ckpt_every=10)
    assert err.value.step == 7 and "d_loss=nan" in str(err.value)
    assert [(r["step"], r["d_loss"]) for r in _rows(tmp_path)] == [("5", str(torch.tensor(0.2).item())), ("7", "nan")]
    assert not (tmp_path / "checkpoint.pt").exists()


def test_resumed_compiled_run_equals_uninterrupted(tmp_path, monkeypatch):
    """Checkpoints hold the networks' own state_dicts (no `_orig_mod.` keys), so a
    compiled run stopped at step 2 and resumed equals one that ran straight."""
    monkeypatch.setattr(bench.compiled, "compile_steps", lambda m: compile_steps(m, "aot_eager"))
    monkeypatch.setattr("bench.train.compile_steps", bench.compiled.compile_steps)
    runtime = {"log_every": 1, "checkpoint_every": 2, "compile": True}
    name, steps = "wgan-gp", 4

    def build():
        torch._dynamo.reset()
        method, _ = make_method(name, batch_size=8, width=4, steps=steps)
        return method

    data = DATASETS.get("ring")().train_set(1, 0)
    straight = build()
    outcome = train(straight, data, straight.config, runtime, tmp_path / "straight")
    assert outcome.compile["path"] == "compiled"

    first = build()
    calls = []
    original = first.train_step

    def stop_after_two(next_batch):
        calls.append(1)
        if len(calls) == 2:
            STOP.set()
        return original(next_batch)

    first.train_step = stop_after_two
    try:
        with pytest.raises(Interrupted):
            train(first, data, first.config, runtime, tmp_path / "resumed")
    finally:
        STOP.clear()
    saved = torch.load(tmp_path / "resumed/checkpoint.pt", weights_only=True)
    assert saved["step"] == 2
    assert not [k for part in ("G", "D") for k in saved["method"][part] if "_orig_mod" in k]
    resumed = build()
    outcome = train(resumed, data, resumed.config, runtime, tmp_path / "resumed")
    assert outcome.resumed_from_step == 2 and outcome.compile["path"] == "compiled"
    for part in ("G", "D"):
        for key, value in straight.state_dict()[part].items():
            assert torch.allclose(value, resumed.state_dict()[part][key], atol=1e-6), (part, key)
    assert _rows(tmp_path / "straight") == _rows(tmp_path / "resumed")


# -- the setting -----------------------------------------------------------------

SWEEP = """
name: comp
matrix: {method: [gan+adaptivemix], dataset: [ring], imbalance: [1], seed: [0]}
defaults: {budget: {steps: 6, batch_size: 16, eval_samples: 100}, log_every: 2, checkpoint_every: 3, metrics: [modes_covered]COMPILE}
executor: {name: debug}
"""


def test_compile_is_a_runtime_setting_outside_the_cell_id(tmp_path):
    (tmp_path / "on.yaml").write_text(SWEEP.replace("COMPILE", ", compile: true"))
    (tmp_path / "off.yaml").write_text(SWEEP.replace("COMPILE", ""))
    on, off = load_sweep(tmp_path / "on.yaml").cells[0], load_sweep(tmp_path / "off.yaml").cells[0]
    assert on["runtime"]["compile"] is True and off["runtime"]["compile"] is False
    assert "compile" not in on["config"] and (on["id"], on["training_id"]) == (off["id"], off["training_id"])


def test_a_sweep_with_compile_records_the_path_its_steps_took(tmp_path):
    (tmp_path / "s.yaml").write_text(SWEEP.replace("COMPILE", ", compile: true"))
    ganbench("sweep", "s.yaml", cwd=tmp_path, check=0)
    (path,) = (tmp_path / "results/runs/comp/train").glob("*/train.json")
    record = json.loads(path.read_text())
    assert record["status"] == "trained"
    assert record["train"]["compile"] == {"path": "eager", "reason": "AdaptiveMix (adaptivemix.py) sets compilable = False"}
    assert all(math.isfinite(float(r["d_loss"])) for r in _rows(path.parent))
