"""PacGAN's mode metrics (modes_recovered, reverse_kl) beside the harness's own, on hand-placed points."""

import math

import torch

from bench.metrics.base import EvalContext
from bench.registry import DATASETS, METRICS


def _scores(points: list[list[float]], dataset: str = "pacgan-ring") -> dict[str, float]:
    ds = DATASETS.get(dataset)()
    ctx = EvalContext(ds, torch.tensor(points), None, torch.device("cpu"))
    names = ("modes_recovered", "reverse_kl", "modes_covered", "high_quality")
    return {n: METRICS.get(n)().compute(ctx) for n in names}


def test_one_high_quality_point_recovers_a_mode_the_one_percent_rule_does_not():
    # 200 points on mode 0 (1, 0), one within 3 sigma (0.03) of mode 2 (0, 1), one 5 sigma off mode 4.
    s = _scores([[1.0, 0.0]] * 200 + [[0.0, 1.02], [-1.05, 0.0]])
    assert s["modes_recovered"] == 2.0  # PacGAN: any high-quality point recovers its mode
    assert s["modes_covered"] == 1.0  # ours: >= 1% of all points
    assert math.isclose(s["high_quality"], 100 * 201 / 202, rel_tol=1e-6)
    p = torch.tensor([200 / 201, 1 / 201], dtype=torch.float64)  # over high-quality points only
    assert math.isclose(s["reverse_kl"], float((p * torch.log(p * 8)).sum()), rel_tol=1e-9)


def test_reverse_kl_is_zero_on_equal_modes_and_log_k_without_a_high_quality_point():
    centres = DATASETS.get("pacgan-ring").centres().tolist()
    assert _scores(centres * 10)["reverse_kl"] < 1e-12
    assert math.isclose(_scores([[0.0, 0.0]] * 5)["reverse_kl"], math.log(8))


def test_pacgan_mixtures_are_the_authors():
    ring, grid = DATASETS.get("pacgan-ring"), DATASETS.get("pacgan-grid")
    assert ring.std == 0.01 and grid.std == 0.05 and ring.n_train == grid.n_train == 100_000
    assert torch.allclose(torch.as_tensor(ring.centres()).norm(dim=1), torch.ones(8, dtype=torch.float64))
    assert sorted({x for c in grid.centres().tolist() for x in c}) == [-4.0, -2.0, 0.0, 2.0, 4.0]
