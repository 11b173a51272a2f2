"""A tiny continuous-label image dataset for method tests (not registered):
8x8 one-channel images whose brightness follows the label, labels in [0, 90)."""

import numpy as np
import torch

from bench.data import ContinuousDataset, Split


class TinyAngles(ContinuousDataset):
    name = "tiny-angles"
    kind = "images"
    resolution = 8
    channels = 1
    label_range = (0.0, 90.0)

    def eval_labels(self) -> np.ndarray:
        return np.arange(18) * 5.0 + 2.5

    def train_set(self, imbalance: float, seed: int) -> Split:
        gen = torch.Generator().manual_seed(seed)
        y = torch.rand(64, generator=gen) * 90
        x = torch.tanh(torch.randn(64, 1, 8, 8, generator=gen) * 0.3 + (y / 45 - 1)[:, None, None, None])
        return Split(x, y)

    def reference_set(self) -> Split:
        return self.train_set(1, 12345)
