"""Twenty-five Gaussians on a 5x5 grid with spacing 2, sigma 0.05.

The grid toy of Dumoulin et al. / VEEGAN / PacGAN; centres at
{-4, -2, 0, 2, 4}^2, classes numbered row by row.
"""

import numpy as np

from bench.data import GaussianMixture2D
from bench.registry import DATASETS


@DATASETS.register("grid")
class Grid(GaussianMixture2D):
    num_classes = 25
    std = 0.05
    description = "25 Gaussians on a 5x5 grid, spacing 2 (sigma 0.05)"

    @classmethod
    def centres(cls) -> np.ndarray:
        ticks = np.arange(-4.0, 4.1, 2.0)
        return np.array([(x, y) for x in ticks for y in ticks])


@DATASETS.register("pacgan-grid")
class PacGANGrid(Grid):
    """VEEGAN's and PacGAN's "2D-grid": `grid`'s 25 Gaussians (centres
    {-4, -2, 0, 2, 4}^2, sigma 0.05, as fjxmlzn/PacGAN
    synthetic_data_experiments/2DGrid_GAN&PacGAN/config.py) with its training
    set of 100,000 points ("num_sample"); `grid` draws 20,000, so its cells
    keep their meaning."""

    n_train = 100_000
    description = "VEEGAN/PacGAN 2D-grid: 25 Gaussians on a 5x5 grid, spacing 2 (sigma 0.05), 100,000 training points"
