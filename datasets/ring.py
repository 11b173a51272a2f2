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
