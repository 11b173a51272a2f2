"""The long-tail profile shared by every class-labelled dataset.

Class c of C keeps n_c = floor(n_max * rho ** (-c / (C - 1))) samples
(Cao et al. 2019, the CIFAR-10-LT convention); rho = 1 is balanced. Class 0 is
the head, class C-1 the tail.
"""

from __future__ import annotations

import math

import numpy as np


def longtail_counts(n_max: int, num_classes: int, rho: float) -> list[int]:
    if rho < 1:
        raise ValueError(f"imbalance factor must be >= 1, got {rho}")
    if num_classes == 1:
        return [n_max]
    # The small epsilon keeps floor() from dropping a sample to float error
    # (e.g. 5000 * 100**-0.5 must be 500, not 499).
    return [
        int(math.floor(n_max * rho ** (-c / (num_classes - 1)) + 1e-9)) for c in range(num_classes)
    ]


def longtail_weights(num_classes: int, rho: float) -> np.ndarray:
    """Mixture weights with the same profile, for datasets sampled on the fly."""
    w = np.array([rho ** (-c / (num_classes - 1)) if num_classes > 1 else 1.0 for c in range(num_classes)])
    return w / w.sum()


def longtail_indices(labels: np.ndarray, num_classes: int, rho: float, seed: int) -> tuple[np.ndarray, list[int]]:
    """Indices of a long-tailed subset of `labels`, and the per-class counts.

    n_max is the size of the smallest class, so every class can supply its
    share; each class's subset is drawn without replacement with `seed`.
    """
    labels = np.asarray(labels)
    per_class = [np.flatnonzero(labels == c) for c in range(num_classes)]
    n_max = min(len(idx) for idx in per_class)
    counts = longtail_counts(n_max, num_classes, rho)
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(idx, size=n, replace=False) for idx, n in zip(per_class, counts)]
    return np.sort(np.concatenate(chosen)), counts
