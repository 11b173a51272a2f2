"""Checkpoints load on any device: CPU tensors with weights_only=True, RNG states
handed to their setters as CPU ByteTensors, networks on the cell's device."""

import contextlib

import pytest
import torch
from torch import serialization

import bench.train
from bench.data import dataset_for
from bench.registry import METHODS
from bench.spec import load_sweep, training_config
from bench.train import STOP, Interrupted, seed_everything, train

SWEEP = """
name: ckpt
matrix: {method: [gan], dataset: [ring], imbalance: [1], seed: [0]}
defaults: {budget: {steps: 20, batch_size: 16, eval_samples: 100}, log_every: 2, checkpoint_every: 5}
"""


@pytest.fixture
def cell(tmp_path):
    (tmp_path / "s.yaml").write_text(SWEEP)
    return load_sweep(tmp_path / "s.yaml").cells[0]


def _run(cell, folder, device="cpu", stop_after=None):
    """Train the cell's run in `folder` as the runner does; stop (checkpoint + Interrupted) after a step."""
    config = training_config(cell["config"])
    dataset = dataset_for(cell)
    seed_everything(config["seed"])
    method = METHODS.get(config["method"])(config, dataset.info(), torch.device(device))
    if stop_after is not None:
        step = method.train_step

        def train_step(next_batch):
            logs = step(next_batch)
            if method.step == stop_after:
                STOP.set()
            return logs

        method.train_step = train_step
    try:
        return train(method, dataset.train_set(1, 0), config, cell["runtime"], folder), method
    finally:
        STOP.clear()


@contextlib.contextmanager
def written_on_a_gpu():
    """torch.save tags every CPU storage 'cuda:0', as a checkpoint written on a GPU is."""

    def tagger(storage):
        return "cuda:0" if storage.device.type == "cpu" else None

    serialization.register_package(1, tagger, lambda obj, location: None)
    try:
        yield
    finally:
        serialization._package_registry[:] = [e for e in serialization._package_registry if e[1] is not tagger]


def _cpu_bytes_only(name):
    def check(state, *args, **kwargs):
        assert state.device.type == "cpu" and state.dtype == torch.uint8, f"{name} got a {state.dtype} on {state.device}"

    return check


def test_rng_setters_get_cpu_byte_tensors_whatever_the_cell_device(cell, tmp_path, monkeypatch):
    """The cell's device here is `meta`, a stand-in for a GPU: a device the RNG
    setters refuse ("RNG state must be a torch.ByteTensor"), as they refuse CUDA tensors."""
    folder = tmp_path / "run"
    with pytest.raises(Interrupted):
        _run(cell, folder, stop_after=10)

    seen = []
    real_set_rng_state, real_generator = torch.set_rng_state, torch.Generator

    def set_rng_state(state):
        _cpu_bytes_only("torch.set_rng_state")(state)
        seen.append("torch")
        real_set_rng_state(state)

    class CheckedGenerator(real_generator):
        def set_state(self, state):
            _cpu_bytes_only("Generator.set_state")(state)
            seen.append("generator")
            return super().set_state(state)

    monkeypatch.setattr(torch, "set_rng_state", set_rng_state)
    monkeypatch.setattr(torch, "Generator", CheckedGenerator)
    monkeypatch.setattr(torch.cuda, "set_rng_state", _cpu_bytes_only("torch.cuda.set_rng_state"))
    config = training_config(cell["config"])
    dataset = dataset_for(cell)
    method = METHODS.get(config["method"])(config, dataset.info(), torch.device("cpu"))
    method.device = torch.device("meta")
    config_done_at_10 = {**config, "budget": {**config["budget"], "steps": 10}}
    checkpoint = bench.train.load_checkpoint(folder / "checkpoint.pt")
    checkpoint["config"] = config_done_at_10
    torch.save(checkpoint, folder / "checkpoint.pt")  # a run that ends at its checkpoint: only the resume runs
    outcome = train(method, dataset.train_set(1, 0), config_done_at_10, cell["runtime"], folder)
    assert outcome.resumed_from_step == 10
    assert seen == ["torch", "generator"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="emulates a GPU's checkpoint on a machine without CUDA; "
                    "test_round_trip_between_gpu_and_cpu runs the real one here")
def test_a_checkpoint_written_on_a_gpu_resumes_on_the_cpu_exactly(cell, tmp_path):
    with written_on_a_gpu():
        with pytest.raises(Interrupted):
            _run(cell, tmp_path / "resumed", stop_after=10)
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(tmp_path / "resumed/checkpoint.pt", weights_only=True)  # it is tagged as a GPU's
    outcome, resumed = _run(cell, tmp_path / "resumed")
    assert outcome.resumed_from_step == 10
    _, straight = _run(cell, tmp_path / "straight")
    assert (tmp_path / "resumed/losses.csv").read_text() == (tmp_path / "straight/losses.csv").read_text()
    for key, value in straight.G.state_dict().items():
        assert torch.equal(value, resumed.G.state_dict()[key]), key


def test_checkpoint_holds_only_plain_types(cell, tmp_path):
    _run(cell, tmp_path / "run")
    state = torch.load(tmp_path / "run/checkpoint.pt", weights_only=True)
    rng = state["rng"]
    assert isinstance(rng["python"]["state"], list) and rng["numpy"]["keys"].dtype == torch.uint32
    assert rng["torch"].dtype == torch.uint8 and rng["batches"].dtype == torch.uint8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: the round trip maps to another real device")
@pytest.mark.parametrize("written, resumed", [("cuda", "cpu"), ("cpu", "cuda")])
def test_round_trip_between_gpu_and_cpu(cell, tmp_path, written, resumed):
    with pytest.raises(Interrupted):
        _run(cell, tmp_path / "run", device=written, stop_after=10)
    outcome, method = _run(cell, tmp_path / "run", device=resumed)
    assert outcome.resumed_from_step == 10 and method.step == 20
    assert all(p.device.type == resumed for p in [*method.G.parameters(), *method.D.parameters()])
    for opt in (method.opt_g, method.opt_d):
        for state in opt.state.values():
            assert all(v.device.type == resumed for k, v in state.items() if torch.is_tensor(v) and k != "step")
