"""Eight Gaussians evenly spaced on a circle of radius 2, sigma 0.02.

The standard mode-collapse toy (Metz et al. 2017, "Unrolled GANs").
"""

import numpy as np

from bench.data import GaussianMixture2D
from bench.registry import DATASETS


@DATASETS.register("ring")
class Ring(GaussianMixture2D):
    num_classes = 8
    std = 0.02
    description = "8 Gaussians on a circle of radius 2 (sigma 0.02)"

    @classmethod
    def centres(cls) -> np.ndarray:
        angles = 2 * np.pi * np.arange(cls.num_classes) / cls.num_classes
        return 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)


@DATASETS.register("pacgan-ring")
class PacGANRing(GaussianMixture2D):
    """VEEGAN's and PacGAN's "2D-ring": 8 Gaussians on the unit circle, sigma 0.01.

    As fjxmlzn/PacGAN synthetic_data_experiments/2DRing_GAN&PacGAN/config.py
    builds it (means (cos 2 pi k/8, sin 2 pi k/8), variances 0.01^2 I; mode 0
    at angle 0 like `ring`) and as its training set: 100,000 points drawn once
    ("num_sample"), shuffled into batches. A name of its own because `ring`
    (radius 2, sigma 0.02, Metz et al.) keeps its cells' meaning.
    """

    num_classes = 8
    std = 0.01
    n_train = 100_000
    description = "VEEGAN/PacGAN 2D-ring: 8 Gaussians on a circle of radius 1 (sigma 0.01), 100,000 training points"

    @classmethod
    def centres(cls) -> np.ndarray:
        return Ring.centres() / 2.0
