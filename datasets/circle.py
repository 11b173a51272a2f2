"""CcGAN's Circular 2-D Gaussians (Ding et al. 2021, "CcGAN").

As improved_CcGAN's `Simulation/main.py` runs it. Training: 120 angles
evenly spaced in [0, 2pi) (linspace(0, 2pi, 121) without its last point),
10 samples each from N((sin t, cos t), 0.02^2 I), drawn with the cell's
seed; the label is the angle t (radians, `periodic`: 0 and 2pi meet).
Evaluation angles are the authors': the 12,000-point grid
linspace(0, 2pi, 12001)[:12000] without the training angles (removed by
exact float comparison, `np.setdiff1d`), then its 360 quantiles (i + 1) / 360
with method "nearest". Because the comparison is exact, 16 training angles
that differ from a grid point by one ulp stay in the grid, and 5 of the 360
evaluation angles (54, 99, 189, 342 and 351 degrees) are training angles
to 1e-14 degrees; we keep the grid as it is, so scores compare with theirs.
A conditional generator is asked for each evaluation angle equally often
(`requested_labels`; the authors: 100 fakes per angle, 36,000 in all).
The reference split: 10 real samples per evaluation angle (seed 12345).

Imbalance: a sample at angle t is kept with probability rho ** (-t / 2pi)
(bench.longtail.density_keep): angles near 0 stay dense, angles near 2pi
are rho times sparser.
"""

from typing import ClassVar

import numpy as np
import torch

from bench.data import ContinuousDataset, Split
from bench.registry import DATASETS


@DATASETS.register("circle")
class Circle(ContinuousDataset):
    kind = "points"
    dim = 2
    metrics = ("circle_hq", "circle_modes", "circle_w2")
    label_range = (0.0, 2 * np.pi)
    periodic = True
    sigma: ClassVar[float] = 0.02
    radius: ClassVar[float] = 1.0
    n_angles: ClassVar[int] = 120
    per_angle: ClassVar[int] = 10
    n_eval_angles: ClassVar[int] = 360
    reference_seed: ClassVar[int] = 12345
    description = "CcGAN circular 2-D Gaussians: 120 training angles, 10 samples each, sigma 0.02; label = angle"
    reference_split = "the 360 evaluation angles of CcGAN's simulation, 10 samples each (seed 12345)"

    @classmethod
    def train_labels(cls) -> np.ndarray:
        return np.linspace(0, 2 * np.pi, cls.n_angles + 1)[: cls.n_angles]

    def eval_labels(self) -> np.ndarray:
        grid = np.linspace(0, 2 * np.pi, 100 * self.n_angles + 1)[: 100 * self.n_angles]
        unseen = np.setdiff1d(grid, self.train_labels())
        q = (np.arange(self.n_eval_angles) + 1) / self.n_eval_angles
        return np.quantile(unseen, q, method="nearest")

    @classmethod
    def mean(cls, labels) -> np.ndarray:
        """The true mean (R sin t, R cos t) of the Gaussian at each angle t, shape (N, 2)."""
        t = np.asarray(labels, dtype=np.float64)
        return cls.radius * np.stack([np.sin(t), np.cos(t)], axis=-1)

    def _draw(self, angles: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(angles, self.per_angle)
        return self.mean(y) + self.sigma * rng.standard_normal((len(y), 2)), y

    def _split(self, x: np.ndarray, y: np.ndarray) -> Split:
        return Split(torch.from_numpy(x).float(), torch.from_numpy(y).float(), self.bin_counts(y))

    def train_set(self, imbalance: float, seed: int) -> Split:
        x, y = self._draw(self.train_labels(), np.random.default_rng(seed))
        keep = self.imbalance_indices(y, imbalance, seed)
        return self._split(x[keep], y[keep])

    def reference_set(self) -> Split:
        return self._split(*self._draw(self.eval_labels(), np.random.default_rng(self.reference_seed)))
