"""The one Fréchet distance (bench.metrics.frechet): clean-fid's number on any
SciPy (it calls no `sqrtm`, whose `disp` argument SciPy 1.18 removed), the
diagonal offset for singular covariances, and the record of that offset."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from bench.data import ContinuousDataset
from bench.metrics.base import EvalContext
from bench.metrics.circle import CircleW2
from bench.metrics.frechet import EPS, frechet_distance, frechet_of_features, gaussian
from cleanfid_reference import cleanfid_fid
from metrics_threads import one_thread  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

REAL_SQRTM = scipy.linalg.sqrtm


def sqrtm_failing_when_singular(A):
    """Like SciPy < 1.16 on a singular product: a non-finite root, the case clean-fid offsets."""
    if np.linalg.matrix_rank(A) < len(A):
        return np.full(A.shape, np.nan)
    return REAL_SQRTM(A)


def features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) / math.sqrt(d) + shift).astype(np.float32)


def sqrtm_must_not_be_called(*args, **kwargs):
    raise AssertionError("bench.metrics.frechet called scipy.linalg.sqrtm")


@pytest.mark.parametrize("n", [200, 12])  # full-rank covariances, and fewer samples than dimensions
def test_equals_cleanfid_without_sqrtm(monkeypatch, n):
    a, b = features(n, 64, 1), features(n, 64, 2, shift=0.3)
    theirs = cleanfid_fid(a, b)
    monkeypatch.setattr(scipy.linalg, "sqrtm", sqrtm_must_not_be_called)  # so no SciPy signature can break it
    ours = frechet_of_features(a, b)
    assert ours.offset is None
    assert ours.distance == pytest.approx(theirs, rel=1e-6)  # the bound; measured 9e-9 at n = 200


REAL_EIGVALSH = torch.linalg.eigvalsh


def eigvalsh_failing_when_singular(A):
    """Eigenvalues that do not converge for a singular product: the case that gets the offset."""
    if torch.linalg.matrix_rank(A) < len(A):
        raise torch.linalg.LinAlgError("did not converge (emulated)")
    return REAL_EIGVALSH(A)


def test_a_failing_decomposition_gets_cleanfids_offset_and_value(monkeypatch):
    a, b = features(12, 64, 3), features(12, 64, 4, shift=0.1)
    theirs = cleanfid_fid(a, b, root=sqrtm_failing_when_singular)  # clean-fid offsets where its root fails
    monkeypatch.setattr(torch.linalg, "eigvalsh", eigvalsh_failing_when_singular)
    ours = frechet_of_features(a, b)
    assert ours.offset == EPS
    assert math.isfinite(ours.distance) and ours.distance == pytest.approx(theirs, rel=1e-6)


def test_covariances_fitted_on_the_device_equal_numpys():
    a = features(300, 32, 5)
    mu, sigma = gaussian(a)
    assert np.allclose(mu, a.astype(np.float64).mean(0), rtol=0, atol=1e-12)
    assert np.allclose(sigma, np.cov(a.astype(np.float64), rowvar=False), rtol=1e-12, atol=1e-14)


def test_identical_gaussians_are_at_zero_and_shapes_must_match():
    mu, sigma = gaussian(features(100, 16, 5))
    assert frechet_distance(mu, sigma, mu, sigma).distance == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ValueError, match="different shapes"):
        frechet_distance(mu, sigma, mu[:8], sigma[:8, :8])


def test_means_alone_give_the_squared_distance():
    """Equal covariances: d² = |mu1 - mu2|², in float64 even for float32 inputs."""
    sigma = np.eye(3, dtype=np.float32)
    result = frechet_distance(np.zeros(3, np.float32), sigma, np.array([1, 2, 2], np.float32), sigma)
    assert result.distance == pytest.approx(9.0, abs=1e-12)


class Ring(ContinuousDataset):
    name = "mt-frechet-ring"
    kind = "points"
    dim = 2
    label_range = (0.0, 2 * np.pi)
    sigma = 0.02

    def eval_labels(self):
        return np.array([0.5, 2.0])

    @classmethod
    def mean(cls, labels):
        t = np.asarray(labels, dtype=np.float64)
        return np.stack([np.sin(t), np.cos(t)], axis=-1)


def _ring_ctx(points, labels):
    return EvalContext(dataset=Ring(), fake=torch.as_tensor(points), reference=None, device=torch.device("cpu"),
                       fake_labels=torch.as_tensor(labels))  # fmt: skip


def test_the_offset_is_recorded_under_the_metric_only_when_needed(monkeypatch):
    d = Ring()
    labels = np.repeat(d.eval_labels(), 3)
    spread = d.mean(labels) + d.sigma * np.tile([[1.0, 0.0], [-1.0, 0.5], [0.0, -0.5]], (2, 1))
    ctx = _ring_ctx(spread, labels)
    CircleW2().compute(ctx)
    assert "frechet" not in ctx.info
    collapsed = d.mean(labels)  # three identical fakes per centre: a zero covariance, a singular product
    ctx = _ring_ctx(collapsed, labels)
    w2 = CircleW2().compute(ctx)
    assert "frechet" not in ctx.info  # singular, yet exact: W2² to a point mass at mu is 2 s² (trace of N(mu, s² I))
    assert w2 == pytest.approx(2 * d.sigma**2, rel=1e-9)  # circle_w2 is W2², as the CcGAN authors report it
    monkeypatch.setattr(torch.linalg, "eigvalsh", eigvalsh_failing_when_singular)
    ctx = _ring_ctx(collapsed, labels)
    w2 = CircleW2().compute(ctx)
    assert ctx.info["frechet"] == {"circle_w2": {"offset": EPS}}
    # both offset: 2 s² - 2 * 2 sqrt((s² + eps) eps)
    s2 = d.sigma**2
    assert w2 == pytest.approx(2 * s2 - 4 * math.sqrt((s2 + EPS) * EPS), rel=1e-9)
