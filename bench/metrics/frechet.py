"""The Fréchet distance between two Gaussians: the one function every FID-like metric calls.

    d² = |mu1 - mu2|² + Tr(S1 + S2 - 2 (S1 S2)^½)

in float64, equal to clean-fid's `frechet_distance` (cleanfid/fid.py) to
~1e-12 relative on full-rank covariances, without a matrix square root:
Tr((S1 S2)^½) is the sum of the square roots of the eigenvalues of S1 S2,
which are those of the symmetric R S2 R with R = S1^½ (from S1's
eigendecomposition). Two symmetric eigendecompositions cost a quarter of
SciPy's Schur-based `sqrtm` on a CPU (2048-d: 33 s against 125 s on two
threads here) and run on the metric's device: on a GPU the per-class
Inception FIDs of a cell no longer dominate its evaluation (issue 14: on an
H100 with `sqrtm` they took 130-164 s of a 10k-sample cell's 190 s).
Covariances are fitted on the device too (`gaussian`).

Singular covariances (fewer samples than dimensions, e.g. a class with 100
samples in 2048-d Inception space) need nothing special: their product's
eigenvalues are zero or positive, and rounding noise below zero counts as
zero, which is the value clean-fid gets where SciPy's root of the singular
product is finite (SciPy >= 1.16). Where the eigendecomposition fails (it
does not converge, or gives non-finite values), both diagonals get
clean-fid's remedy, EPS, and the offset is returned so that the metric
records it (`evaluator.frechet.<metric>.offset`), as clean-fid offsets when
its root is not finite. A root whose imaginary part would exceed
clean-fid's bound (1e-3) is an error, as in clean-fid.

We own this small piece because clean-fid 0.1.35 passes `sqrtm(..., disp=False)`,
an argument SciPy deprecated in 1.16 and removed in 1.18.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

EPS = 1e-6  # clean-fid's diagonal offset
IMAGINARY_TOLERANCE = 1e-3  # clean-fid's bound on the imaginary part of the root


@dataclass(frozen=True)
class Frechet:
    distance: float
    offset: float | None  # the diagonal offset that was needed, None when none was


def _float64(x, device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).to(device=device or "cpu", dtype=torch.float64)


def _trace_of_root(s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
    """Tr((S1 S2)^½) from the eigenvalues of R S2 R, R = S1^½ (both symmetric)."""
    w1, v1 = torch.linalg.eigh(s1)
    root1 = (v1 * w1.clamp(min=0).sqrt()) @ v1.T
    product = root1 @ s2 @ root1
    eigenvalues = torch.linalg.eigvalsh((product + product.T) / 2)
    if not torch.isfinite(eigenvalues).all():
        raise torch.linalg.LinAlgError("non-finite eigenvalues")
    if eigenvalues.min() < -(IMAGINARY_TOLERANCE**2):
        raise ValueError(f"Fréchet distance: the square root of the covariance product has an imaginary "
                         f"component of {float((-eigenvalues.min()).sqrt()):.3g}")  # fmt: skip
    return eigenvalues.clamp(min=0).sqrt().sum()


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = EPS, device=None) -> Frechet:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64 on `device` (default CPU)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"Fréchet distance of Gaussians of different shapes: mean {mu1.shape} vs {mu2.shape}, "
                         f"covariance {sigma1.shape} vs {sigma2.shape}")  # fmt: skip
    if not (np.isfinite(sigma1).all() and np.isfinite(sigma2).all()):
        return Frechet(float("nan"), None)  # a covariance of fewer than two samples, as np.cov gives it
    s1, s2 = _float64(sigma1, device), _float64(sigma2, device)
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2  # eigh reads one triangle: make both the same
    offset = None
    try:
        trace_root = _trace_of_root(s1, s2)
    except torch.linalg.LinAlgError:
        offset = eps
        shift = eps * torch.eye(len(s1), dtype=s1.dtype, device=s1.device)
        trace_root = _trace_of_root(s1 + shift, s2 + shift)
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * float(trace_root)
    return Frechet(float(value), offset)


def gaussian(feats, device=None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (N, d) features as clean-fid fits them (np.mean, np.cov with rowvar=False), in float64
    on `device` (default CPU). Fewer than two samples give a NaN covariance, as np.cov does."""
    f = _float64(feats, device)
    mu = f.mean(0)
    centred = f - mu
    sigma = centred.T @ centred / (len(f) - 1) if len(f) > 1 else torch.full((f.shape[1],) * 2, float("nan"))
    return mu.cpu().numpy(), sigma.cpu().numpy()


def frechet_of_features(a, b, device=None) -> Frechet:
    """Fréchet distance between Gaussians fitted to two feature sets (clean-fid's `fid_from_feats`)."""
    return frechet_distance(*gaussian(a, device), *gaussian(b, device), device=device)


def record_offset(info: dict, metric: str, offset: float | None) -> None:
    """Note in the evaluator info (`frechet.<metric>.offset`) that `metric` needed the diagonal offset."""
    if offset is not None:
        info.setdefault("frechet", {})[metric] = {"offset": offset}
