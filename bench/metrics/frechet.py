"""The Fréchet distance between two Gaussians: the one function every FID-like metric calls.

    d² = |mu1 - mu2|² + Tr(S1 + S2 - 2 (S1 S2)^½)

computed in float64 the way clean-fid's `frechet_distance` (cleanfid/fid.py)
does it, so scores equal clean-fid's: the square root of the product by
`scipy.linalg.sqrtm`; when that is not finite (a singular product: fewer
samples than dimensions, e.g. a class with 100 samples in 2048-d Inception
space), both covariances get EPS on the diagonal and the root is taken
again; a complex root whose diagonal has an imaginary part above 1e-3 is an
error, a smaller one is numerical noise and dropped.

We own this small piece because clean-fid 0.1.35 passes `sqrtm(..., disp=False)`,
an argument SciPy deprecated in 1.16 and removed in 1.18; the call here uses
only the signature both old and new SciPy accept. Where clean-fid prints a
line when it offsets the diagonal, we return the offset so the metric can
record it (`evaluator.frechet.<metric>.offset`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

EPS = 1e-6  # clean-fid's diagonal offset
IMAGINARY_TOLERANCE = 1e-3  # clean-fid's bound on the imaginary part of the root's diagonal


@dataclass(frozen=True)
class Frechet:
    distance: float
    offset: float | None  # the diagonal offset that was needed, None when none was


def _sqrtm(a: np.ndarray) -> np.ndarray:
    from scipy import linalg

    with warnings.catch_warnings():
        # SciPy >= 1.16 warns (LinAlgWarning) on a singular or ill-conditioned
        # product; the finiteness check below is what decides, as in clean-fid.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return linalg.sqrtm(a)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = EPS) -> Frechet:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"Fréchet distance of Gaussians of different shapes: mean {mu1.shape} vs {mu2.shape}, "
                         f"covariance {sigma1.shape} vs {sigma2.shape}")  # fmt: skip
    offset = None
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = eps
        shift = np.eye(len(sigma1)) * eps
        covmean = _sqrtm((sigma1 + shift) @ (sigma2 + shift))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=IMAGINARY_TOLERANCE):
            raise ValueError(f"Fréchet distance: the square root of the covariance product has an imaginary "
                             f"component of {np.max(np.abs(covmean.imag)):.3g}")  # fmt: skip
        covmean = covmean.real
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)
    return Frechet(float(value), offset)


def gaussian(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (N, d) features as clean-fid fits them (np.mean, np.cov with rowvar=False), in float64."""
    feats = np.asarray(feats, np.float64)
    return np.mean(feats, axis=0), np.cov(feats, rowvar=False)


def frechet_of_features(a: np.ndarray, b: np.ndarray) -> Frechet:
    """Fréchet distance between Gaussians fitted to two feature sets (clean-fid's `fid_from_feats`)."""
    return frechet_distance(*gaussian(a), *gaussian(b))


def record_offset(info: dict, metric: str, offset: float | None) -> None:
    """Note in the evaluator info (`frechet.<metric>.offset`) that `metric` needed the diagonal offset."""
    if offset is not None:
        info.setdefault("frechet", {})[metric] = {"offset": offset}
