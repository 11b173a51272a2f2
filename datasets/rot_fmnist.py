"""Rotated Fashion-MNIST: real clothing images rotated by a continuous angle.

A chair-rotation task in the spirit of RC-49 (CcGAN), built offline from
real Fashion-MNIST images: every image gets one angle y ~ U[0, 90) degrees
(seed 0 for the train split, 1 for the test split) and is rotated
counter-clockwise about its centre (bilinear, black fill). The label is the
angle; the clothing class is kept as `Split.aux` for the Diversity metric.
The rotated uint8 images are built once and kept in the decoded cache.

Imbalance: an image at angle y is kept with probability rho ** (-y / 90):
small angles stay dense, angles near 90 are rho times sparser. The
reference is the whole rotated test split (angles uniform). Evaluation
labels: 180 angles at 0.25, 0.75, ..., 89.75 degrees.
"""

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from bench.data import ContinuousImageDataset, read_idx_set
from bench.datafiles import FASHION_MNIST
from bench.registry import DATASETS


def rotate(images: np.ndarray, degrees: np.ndarray, chunk: int = 5000) -> np.ndarray:
    """Rotate uint8 N×C×H×W images counter-clockwise by per-image angles (degrees)."""
    out = np.empty_like(images)
    for i in range(0, len(images), chunk):
        x = torch.from_numpy(images[i : i + chunk].astype(np.float32))
        t = torch.from_numpy(np.deg2rad(degrees[i : i + chunk])).float()
        cos, sin = torch.cos(t), torch.sin(t)
        # affine_grid maps output to input coordinates: the inverse rotation.
        theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(t)], 1), torch.stack([sin, cos, torch.zeros_like(t)], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        y = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        out[i : i + chunk] = y.round().clamp(0, 255).to(torch.uint8).numpy()
    return out


@DATASETS.register("rot-fmnist")
class RotatedFashionMNIST(ContinuousImageDataset):
    source = FASHION_MNIST
    resolution = 28
    channels = 1
    num_classes = 10  # of the auxiliary clothing class
    label_range = (0.0, 90.0)
    angle_seeds: ClassVar[dict[str, int]] = {"train": 0, "test": 1}
    description = "Fashion-MNIST rotated by a continuous angle in [0, 90) degrees; label = angle, aux = class"
    reference_split = "the rotated test split: 10,000 images, angles uniform in [0, 90)"

    def eval_labels(self) -> np.ndarray:
        return np.arange(180) * 0.5 + 0.25

    def decode(self, folder):
        plain = read_idx_set(folder, self.source.files)
        out = {}
        for split, seed in self.angle_seeds.items():
            angles = np.random.default_rng(seed).uniform(0.0, 90.0, len(plain[f"{split}_x"]))
            out[f"{split}_x"] = rotate(plain[f"{split}_x"], angles)
            out[f"{split}_y"] = angles
            out[f"{split}_aux"] = plain[f"{split}_y"]
        return out
