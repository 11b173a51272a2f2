"""The dataset plugin contract.

A dataset plugin is a class registered in `bench.registry.DATASETS`. It
declares what it is (kind, label type, shape, default metrics) as class
attributes, which the spec, runner and metrics read: nothing elsewhere
special-cases a dataset by name.

Tensors are float32: points are (N, 2); images are (N, C, H, W) in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from bench.longtail import longtail_indices, longtail_weights


@dataclass
class Split:
    x: torch.Tensor
    y: torch.Tensor  # class ids (long) or continuous labels (float)
    class_counts: list[int] = field(default_factory=list)
    aux: torch.Tensor | None = None  # an auxiliary categorical attribute (e.g. the class of a rotated image)


class Dataset:
    name: ClassVar[str]  # set by the registry
    kind: ClassVar[str]  # "points" | "images"
    label_type: ClassVar[str] = "class"  # "class" | "continuous" | "none"
    num_classes: ClassVar[int | None] = None
    resolution: ClassVar[int | None] = None  # images only
    channels: ClassVar[int | None] = None  # images only
    dim: ClassVar[int | None] = None  # points only
    metrics: ClassVar[tuple[str, ...]] = ()  # default metrics; the first is the headline
    description: ClassVar[str] = ""

    def train_set(self, imbalance: float, seed: int) -> Split:
        """The (long-tailed) training data for one cell."""
        raise NotImplementedError

    def reference_set(self) -> Split:
        """The balanced held-out set every cell is evaluated against."""
        raise NotImplementedError

    @classmethod
    def info(cls) -> dict:
        return {
            "kind": cls.kind,
            "label_type": cls.label_type,
            "num_classes": cls.num_classes,
            "resolution": cls.resolution,
            "channels": cls.channels,
            "dim": cls.dim,
        }


class ContinuousDataset(Dataset):
    """Data with a real-valued label y (angle, age, ...), for CcGAN-style methods.

    `label_range` is the closed-open range of y; `eval_labels()` gives the
    evaluation centres (e.g. 360 unseen angles for `circle`).
    """

    label_type = "continuous"
    label_range: ClassVar[tuple[float, float]]

    def eval_labels(self) -> np.ndarray:
        raise NotImplementedError


class GaussianMixture2D(Dataset):
    """Isotropic 2-D Gaussian mixture; the component is the class.

    Component weights follow the long-tail profile of the imbalance factor;
    the reference set is balanced and drawn with a fixed seed.
    """

    kind = "points"
    dim = 2
    metrics = ("modes_covered", "high_quality", "mode_kl")
    std: ClassVar[float]
    n_train: ClassVar[int] = 20_000
    n_reference: ClassVar[int] = 10_000
    reference_seed: ClassVar[int] = 12345

    @classmethod
    def centres(cls) -> np.ndarray:
        raise NotImplementedError

    def _sample(self, weights: np.ndarray, n: int, seed: int) -> Split:
        rng = np.random.default_rng(seed)
        centres = self.centres()
        y = rng.choice(len(centres), size=n, p=weights)
        x = centres[y] + self.std * rng.standard_normal((n, 2))
        counts = np.bincount(y, minlength=len(centres)).tolist()
        return Split(torch.from_numpy(x).float(), torch.from_numpy(y).long(), counts)

    def train_set(self, imbalance: float, seed: int) -> Split:
        return self._sample(longtail_weights(len(self.centres()), imbalance), self.n_train, seed)

    def reference_set(self) -> Split:
        k = len(self.centres())
        return self._sample(np.full(k, 1.0 / k), self.n_reference, self.reference_seed)


class ClassImageDataset(Dataset):
    """Labelled images; subclasses load the full balanced splits once."""

    kind = "images"
    metrics = ("classifier_fid", "class_kl")

    def load_split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 images N×C×H×W, int labels) of split "train" or "test"."""
        raise NotImplementedError

    def _split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        # One decoded copy per process: cells in a batch share it.
        cache = type(self).__dict__.get("_memo")
        if cache is None:
            cache = {}
            setattr(type(self), "_memo", cache)
        if split not in cache:
            cache[split] = self.load_split(split)
        return cache[split]

    @staticmethod
    def to_tensor(images: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(images).float().div(127.5).sub(1.0)

    def train_set(self, imbalance: float, seed: int) -> Split:
        images, labels = self._split("train")
        idx, counts = longtail_indices(labels, self.num_classes, imbalance, seed)
        return Split(self.to_tensor(images[idx]), torch.from_numpy(labels[idx]).long(), counts)

    def reference_set(self) -> Split:
        images, labels = self._split("test")
        counts = np.bincount(labels, minlength=self.num_classes).tolist()
        return Split(self.to_tensor(images), torch.from_numpy(labels).long(), counts)
