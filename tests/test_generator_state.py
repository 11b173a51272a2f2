"""generator.pt: every row samples the same from its saved state, loaded with
weights_only=True into a freshly built method, as from the method that trained."""

import io

import pytest
import torch

from bench.registry import ADDONS, METHODS, REPO_ROOT
from bench.spec import load_sweep
from bench.registry import DATASETS
from conditional_data import TinyAngles
from test_methods import _fits, _needs_upstream, _sample, make_method


def _dataset(name):
    """ring for unconditional rows; for a conditional row the first dataset with labels of its kind."""
    cls = METHODS.get(name)
    if not cls.conditional:
        return "ring" if _fits(name, "ring", "mlp") else "digits"  # rows for images only (contrad) on digits
    return next(d for d in ("ring", "circle", TinyAngles)
                if cls.dataset_problem((d if isinstance(d, type) else DATASETS.get(d)).info()) is None)  # fmt: skip


def _rows() -> list[str]:
    """Every registered method and alias, each add-on on gan (or the first base it
    applies to), and every row the shipped sweeps name."""
    rows = set(METHODS.names())
    for name, addon in ADDONS.items():
        base = next(b for b in ["gan", *METHODS.names()] if f"{b}+{name}" in METHODS)
        rows.add(f"{base}+{name}")
    for path in sorted((REPO_ROOT / "sweeps").glob("*.yaml")):
        rows |= {c["config"]["method"] for c in load_sweep(path).cells}
    # rows that read another training run (Dual-NDA) sample-test in tests/test_conditional.py
    return sorted(r for r in rows if not _needs_upstream(r))


@pytest.mark.parametrize("name", _rows())
def test_saved_sampling_state_samples_like_the_trained_method(name):
    dataset = _dataset(name)
    method, next_batch = make_method(name, dataset, seed=0, hp={"ccgan_embed_net": "small"})
    for _ in range(3):
        method.train_step(next_batch)
    buffer = io.BytesIO()
    torch.save(method.sampling_state(), buffer)
    assert "opt_g" not in method.sampling_state() and "opt_d" not in method.sampling_state()
    buffer.seek(0)
    state = torch.load(buffer, map_location="cpu", weights_only=True)

    fresh, _ = make_method(name, dataset, seed=1, hp={"ccgan_embed_net": "small"})  # other initial weights (and GM means for a uniform layout)
    fresh.load_sampling_state(state)
    expected = _sample(method, dataset, 64, 5, 32)
    assert torch.equal(_sample(fresh, dataset, 64, 5, 32), expected)
    assert fresh.record() == method.record()
