"""generator.pt: every row samples the same from its saved state, loaded with
weights_only=True into a freshly built method, as from the method that trained."""

import io

import pytest
import torch

from bench.registry import ADDONS, METHODS, REPO_ROOT
from bench.spec import load_sweep
from test_methods import _fits, make_method


def _rows() -> list[str]:
    """Every registered method and alias, each add-on on gan (or the first base it
    applies to), and every row the shipped sweeps name."""
    rows = set(METHODS.names())
    for name, addon in ADDONS.items():
        base = next(b for b in ["gan", *METHODS.names()] if f"{b}+{name}" in METHODS)
        rows.add(f"{base}+{name}")
    for path in sorted((REPO_ROOT / "sweeps").glob("*.yaml")):
        rows |= {c["config"]["method"] for c in load_sweep(path).cells}
    return sorted(rows)


@pytest.mark.parametrize("name", _rows())
def test_saved_sampling_state_samples_like_the_trained_method(name):
    dataset = "ring" if _fits(name, "ring", "mlp") else "digits"  # rows for images only (contrad) on digits
    method, next_batch = make_method(name, dataset, seed=0)
    for _ in range(3):
        method.train_step(next_batch)
    buffer = io.BytesIO()
    torch.save(method.sampling_state(), buffer)
    assert "opt_g" not in method.sampling_state() and "opt_d" not in method.sampling_state()
    buffer.seek(0)
    state = torch.load(buffer, map_location="cpu", weights_only=True)

    fresh, _ = make_method(name, dataset, seed=1)  # other initial weights (and GM means for a uniform layout)
    fresh.load_sampling_state(state)
    expected = method.sample(64, seed=5, batch_size=32)
    assert torch.equal(fresh.sample(64, seed=5, batch_size=32), expected)
    assert fresh.record() == method.record()
