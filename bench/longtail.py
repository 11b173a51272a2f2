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
    return profile_indices(labels, num_classes, rho, seed)


PROFILES = ("exp", "step")
MODES = ("longtail", "partial")


def profile_counts(n_max: int, num_classes: int, rho: float, profile: str = "exp", mode: str = "longtail") -> list[int]:
    """Per-class counts for a profile and mode.

    - profile "exp": `longtail_counts` above.
    - profile "step": the first C // 2 classes keep n_max, the others
      floor(n_max / rho) (the step imbalance of Cao et al. 2019).
    - mode "partial": balanced, with the same total T as the long tail of
      that profile and rho (the "balanced partial" set of the Damage GAN
      paper): every class gets floor(T / C), and the first T mod C classes
      one more, so the totals match exactly.
    """
    if rho < 1:
        raise ValueError(f"imbalance factor must be >= 1, got {rho}")
    if profile == "exp":
        counts = longtail_counts(n_max, num_classes, rho)
    elif profile == "step":
        tail = int(math.floor(n_max / rho + 1e-9))
        counts = [n_max if c < num_classes // 2 else tail for c in range(num_classes)]
    else:
        raise ValueError(f"unknown long-tail profile {profile!r}; one of {', '.join(PROFILES)}")
    if mode == "partial":
        total = sum(counts)
        share, extra = divmod(total, num_classes)
        counts = [share + (1 if c < extra else 0) for c in range(num_classes)]
    elif mode != "longtail":
        raise ValueError(f"unknown long-tail mode {mode!r}; one of {', '.join(MODES)}")
    return counts


def profile_indices(
    labels: np.ndarray, num_classes: int, rho: float, seed: int, profile: str = "exp", mode: str = "longtail"
) -> tuple[np.ndarray, list[int]]:
    """`longtail_indices` for any profile and mode (see `profile_counts`)."""
    labels = np.asarray(labels)
    per_class = [np.flatnonzero(labels == c) for c in range(num_classes)]
    n_max = min(len(idx) for idx in per_class)
    counts = profile_counts(n_max, num_classes, rho, profile, mode)
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(idx, size=n, replace=False) for idx, n in zip(per_class, counts)]
    return np.sort(np.concatenate(chosen)), counts


def profile_weights(num_classes: int, rho: float, profile: str = "exp", mode: str = "longtail") -> np.ndarray:
    """Mixture weights with the profile's shape, for datasets sampled on the fly."""
    if mode == "partial":
        return np.full(num_classes, 1.0 / num_classes)
    if profile == "exp":
        return longtail_weights(num_classes, rho)
    w = np.array([1.0 if c < num_classes // 2 else 1.0 / rho for c in range(num_classes)])
    return w / w.sum()


def density_keep(u: np.ndarray, rho: float) -> np.ndarray:
    """Keep-probability rho ** -u for a label at relative position u in [0, 1].

    The continuous-label long tail: subsampling with it multiplies the label
    density by a profile whose densest (u = 0, the low end of the label range)
    to sparsest (u = 1, the high end) ratio is rho; rho = 1 keeps everything.
    """
    if rho < 1:
        raise ValueError(f"imbalance factor must be >= 1, got {rho}")
    return np.power(float(rho), -np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0))
