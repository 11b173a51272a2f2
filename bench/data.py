"""The dataset plugin contract.

A dataset plugin is a class registered in `bench.registry.DATASETS`. It
declares what it is (kind, label type, shape, default metrics) as class
attributes, which the spec, runner and metrics read: nothing elsewhere
special-cases a dataset by name.

Tensors are float32: points are (N, 2); images are (N, C, H, W) in [-1, 1].
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from bench.datafiles import Source, decoded, locate, read_h5_images, read_idx
from bench.errors import UserError
from bench.longtail import MODES, PROFILES, density_keep, profile_indices, profile_weights


@dataclass
class Split:
    x: torch.Tensor
    y: torch.Tensor  # class ids (long) or continuous labels (float)
    class_counts: list[int] = field(default_factory=list)
    aux: torch.Tensor | None = None  # an auxiliary categorical attribute (e.g. the class of a rotated image)


@dataclass(frozen=True)
class Option:
    """One setting a dataset accepts in a sweep (`options:` of its block).

    `choices` limits a string option; a `path` option (a data folder) is
    resolved against the sweep file, goes to the cell's runtime and never
    changes the cell id: the same files at another place are the same data.
    """

    default: Any
    choices: tuple = ()
    path: bool = False
    help: str = ""


# The long-tail options every class-labelled dataset takes (see bench.longtail).
LONGTAIL_OPTIONS = {
    "profile": Option("exp", PROFILES, help="exp: n_max * rho**(-c/(C-1)); step: half the classes n_max, half n_max/rho"),
    "mode": Option("longtail", MODES, help="partial: balanced, with the long tail's total"),
}
SUBSAMPLE_TAG = 0x4C54  # "LT": the random stream of the continuous long tail
ROOT_OPTION = {"root": Option(None, path=True, help="a folder holding the data files")}
# Which evaluation networks score the data set (bench.metrics.evalnet): an evaluation
# setting, so bench.spec keeps it out of the training id.
EVALNET_OPTION = {"evalnets": Option("small", ("small", "authors"),
                                     help="small: the harness's CPU networks; authors: the CcGAN authors' ResNet-34s and 512-d autoencoder")}  # fmt: skip


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
    reference_split: ClassVar[str] = ""  # what `reference_set` is, in words
    options: ClassVar[dict[str, Option]] = {}  # settings a sweep may give (bench.spec validates them)
    # A variant (`variant`) names the dataset whose data it is: decoded files,
    # evaluation networks and reference statistics are cached under that name.
    variant_of: ClassVar[str | None] = None
    # Bumped when what the dataset gives (data, evaluation labels, windows, NIQE protocol)
    # changes: it enters cell configs as `dataset_revision` (bench.spec), so results
    # computed before keep ids of their own.
    revision: ClassVar[int] = 0

    @classmethod
    def data_name(cls) -> str:
        """The name the data, the evaluation networks and the reference statistics are cached under."""
        return cls.variant_of or cls.name

    def __init__(self, **options: Any):
        problems = self.option_problems(options)
        if problems:
            key, problem = problems[0]
            raise UserError(f"dataset {self.name!r}: option {key!r}: {problem}")
        self.settings = {**{k: o.default for k, o in self.options.items()}, **options}

    @classmethod
    def option_problems(cls, options: dict) -> list[tuple[str, str]]:
        """(key, problem) for each option that the dataset does not declare or accept."""
        problems = []
        for key, value in options.items():
            if key not in cls.options:
                close = difflib.get_close_matches(str(key), list(cls.options), n=1, cutoff=0.6)
                known = f"did you mean {close[0]!r}?" if close else f"it has: {', '.join(cls.options) or 'none'}"
                problems.append((key, f"dataset {cls.name!r} has no option {key!r}; {known}"))
                continue
            spec = cls.options[key]
            if spec.choices and value not in spec.choices:
                problems.append((key, f"must be one of {', '.join(map(str, spec.choices))}, got {value!r}"))
            elif spec.path and (not isinstance(value, str) or not value):
                problems.append((key, f"must be a folder path, got {value!r}"))
        return problems

    def prepare(self) -> None:
        """Find and decode the data before cells are dispatched, so a missing
        file is one error up front and workers do not all decode at once."""

    def train_set(self, imbalance: float, seed: int) -> Split:
        """The (long-tailed) training data for one cell."""
        raise NotImplementedError

    def reference_set(self) -> Split:
        """The balanced held-out set every cell is evaluated against."""
        raise NotImplementedError

    def requested_labels(self, n: int) -> torch.Tensor:
        """The labels evaluation asks a conditional generator for, one per sample:
        every class equally often (class ids 0, 1, ..., C-1, 0, 1, ...), or the
        evaluation centres of continuous labels (`ContinuousDataset`)."""
        if self.label_type != "class" or not self.num_classes:
            raise ValueError(f"dataset {self.name!r} has no labels to ask a generator for")
        return torch.arange(n) % self.num_classes

    @classmethod
    def info(cls) -> dict:
        return {
            "kind": cls.kind,
            "label_type": cls.label_type,
            "num_classes": cls.num_classes,
            "resolution": cls.resolution,
            "channels": cls.channels,
            "dim": cls.dim,
            "label_range": list(getattr(cls, "label_range", None) or []) or None,
            "periodic": getattr(cls, "periodic", False),
            "replicate_to": getattr(cls, "replicate_to", 0),
            "reference_split": cls.reference_split,
            "niqe": getattr(cls, "niqe", None),  # its NIQE protocol (bench.niqe.Protocol), None: the harness's
        }


class ContinuousDataset(Dataset):
    """Data with a real-valued label y (angle, age, ...), for CcGAN-style methods.

    `label_range` is the closed-open range of y; `eval_labels()` gives the
    evaluation centres (e.g. 360 unseen angles for `circle`).
    """

    label_type = "continuous"
    label_range: ClassVar[tuple[float, float]]
    periodic: ClassVar[bool] = False  # the label is an angle: the ends of label_range meet
    # The evaluation windows (bench.metrics.continuous): `window_centres()` (default: the
    # evaluation labels) and `window_radius` (default: half the centres' median spacing).
    window_radius: ClassVar[float | None] = None
    # CcGAN's protocol: labels with fewer training images are topped up to this many by
    # replicating their images (0: none), before sigma and kappa (methods/ccgan.py).
    replicate_to: ClassVar[int] = 0

    def eval_labels(self) -> np.ndarray:
        raise NotImplementedError

    def requested_labels(self, n: int) -> torch.Tensor:
        """An even grid over the evaluation centres: centre k is asked for n // K
        times (the first n % K centres once more), in order, as CcGAN samples
        a fixed number of fakes at each evaluation label (circle: 360 x 100).
        With n < K, one fake at each of n centres spread evenly over the grid."""
        centres = torch.from_numpy(np.asarray(self.eval_labels(), dtype=np.float32))
        if n < len(centres):  # fewer fakes than centres: every (K/n)-th centre, spread over the grid, not its low end
            return centres[torch.arange(n) * len(centres) // n]
        counts = torch.full((len(centres),), n // len(centres), dtype=torch.long)
        counts[: n % len(centres)] += 1
        return centres.repeat_interleave(counts)

    def relative(self, y: np.ndarray) -> np.ndarray:
        """Where labels sit in `label_range`, from 0 (low end) to 1 (high end)."""
        lo, hi = self.label_range
        return (np.asarray(y, dtype=np.float64) - lo) / (hi - lo)

    def imbalance_indices(self, y: np.ndarray, rho: float, seed: int) -> np.ndarray:
        """The continuous long tail: sample i is kept with probability rho ** -u_i,
        u_i its relative label (`bench.longtail.density_keep`), drawn with `seed`.
        The low end of the label range stays dense, the high end is rho times sparser.
        The stream is tagged so it never repeats the draws that made the data."""
        rng = np.random.default_rng([SUBSAMPLE_TAG, seed])
        return np.flatnonzero(rng.random(len(y)) < density_keep(self.relative(y), rho))

    def bin_counts(self, y: np.ndarray, bins: int = 10) -> list[int]:
        """Counts in `bins` equal-width label bins: a continuous Split's `class_counts`."""
        u = np.clip(self.relative(y), 0, 1 - 1e-12)
        return np.bincount((u * bins).astype(np.int64), minlength=bins).tolist()


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
    reference_split = "10,000 points drawn from equal-weight components (seed 12345)"
    options = LONGTAIL_OPTIONS

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
        # Points are drawn on the fly: n_train at any rho, so `partial` is balanced weights.
        weights = profile_weights(len(self.centres()), imbalance, self.settings["profile"], self.settings["mode"])
        return self._sample(weights, self.n_train, seed)

    def reference_set(self) -> Split:
        k = len(self.centres())
        return self._sample(np.full(k, 1.0 / k), self.n_reference, self.reference_seed)


class ClassImageDataset(Dataset):
    """Labelled images; subclasses load the full balanced splits once."""

    kind = "images"
    metrics = ("classifier_fid", "class_kl")
    reference_split = "the balanced test split"
    options = LONGTAIL_OPTIONS

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
        """uint8 -> float32 in [-1, 1], in place on one float copy."""
        return torch.from_numpy(np.asarray(images, dtype=np.float32)).div_(127.5).sub_(1.0)

    def train_set(self, imbalance: float, seed: int) -> Split:
        images, labels = self._split("train")
        labels = np.asarray(labels)
        idx, counts = profile_indices(labels, self.num_classes, imbalance, seed, self.settings["profile"], self.settings["mode"])
        return Split(self.to_tensor(images[idx]), torch.from_numpy(labels[idx].astype(np.int64)), counts)

    def reference_set(self) -> Split:
        images, labels = self._split("test")
        labels = np.asarray(labels, dtype=np.int64)
        counts = np.bincount(labels, minlength=self.num_classes).tolist()
        return Split(self.to_tensor(images), torch.from_numpy(labels.copy()), counts)


class FileBacked:
    """A dataset read from published files: found by `bench.datafiles.locate`
    (sweep `root` option, $GANBENCH_DATA, /usr/share/datasets, download) and
    decoded once into the uint8 cache by `decode`."""

    source: ClassVar[Source]
    settings: dict

    def decode(self, folder: Path) -> dict[str, np.ndarray]:
        """Arrays by name (e.g. train_x, train_y, test_x, test_y), images uint8 N×C×H×W."""
        raise NotImplementedError

    def decode_key(self) -> str:
        return f"{self.data_name()}-{self.resolution}px"

    def arrays(self) -> dict[str, np.ndarray]:
        folder = locate(self.source, self.settings.get("root"), dataset=self.name)
        return decoded(self.decode_key(), [folder / f for f in self.source.files], lambda: self.decode(folder))

    def prepare(self) -> None:
        self.arrays()


class FileImageDataset(FileBacked, ClassImageDataset):
    options = {**LONGTAIL_OPTIONS, **ROOT_OPTION}

    def _split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        arrays = self.arrays()  # memory-mapped, one copy per process (bench.datafiles.decoded)
        return arrays[f"{split}_x"], arrays[f"{split}_y"]


def read_idx_set(folder: Path, files: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The four MNIST-layout IDX files (train images, train labels, test
    images, test labels) as train_x (N×1×H×W uint8), train_y, test_x, test_y."""
    out = {}
    for key, name in zip(("train_x", "train_y", "test_x", "test_y"), files):
        array = read_idx(folder / name)
        out[key] = array[:, None] if key.endswith("_x") else array.astype(np.int64)
        if key.endswith("_x") and array.dtype != np.uint8:
            raise UserError(f"{folder / name}: expected uint8 images, got {array.dtype}")
    for split in ("train", "test"):
        if out[f"{split}_x"].ndim != 4 or len(out[f"{split}_x"]) != len(out[f"{split}_y"]):
            raise UserError(f"{folder}: {split} images {out[f'{split}_x'].shape[:1]} and labels {out[f'{split}_y'].shape} do not match")
    return out


class IdxImageDataset(FileImageDataset):
    """MNIST-layout data sets: four IDX .gz files, read as they are."""

    def decode(self, folder: Path) -> dict[str, np.ndarray]:
        arrays = read_idx_set(folder, self.source.files)
        for split in ("train", "test"):
            shape = arrays[f"{split}_x"].shape[1:]
            if shape != (self.channels, self.resolution, self.resolution):
                raise UserError(f"{folder}: {self.name} {split} images are {shape}, expected "
                                f"{(self.channels, self.resolution, self.resolution)}")  # fmt: skip
            bad = arrays[f"{split}_y"][(arrays[f"{split}_y"] < 0) | (arrays[f"{split}_y"] >= self.num_classes)]
            if len(bad):
                raise UserError(f"{folder}: {self.name} {split} labels must be 0..{self.num_classes - 1}, found {int(bad[0])}")
        return arrays


class ContinuousImageDataset(FileBacked, ContinuousDataset):
    """Images with a real-valued label, from decoded arrays train_x, train_y
    (and train_aux, an auxiliary class) and the same for the reference split
    named by `reference_arrays` ("test", or "train" where the published
    protocol evaluates against all real images, as CcGAN does)."""

    kind = "images"
    metrics = ("sfid", "label_score", "diversity")
    reference_arrays: ClassVar[str] = "test"
    options = ROOT_OPTION

    def _subset(self, split: str, idx: np.ndarray | None) -> Split:
        a = self.arrays()
        x, y = a[f"{split}_x"], np.asarray(a[f"{split}_y"], dtype=np.float64)
        aux = a.get(f"{split}_aux")
        if idx is not None:
            x, y = x[idx], y[idx]
            aux = aux[idx] if aux is not None else None
        return Split(
            ClassImageDataset.to_tensor(x),
            torch.from_numpy(np.array(y, dtype=np.float32)),
            self.bin_counts(y),
            torch.from_numpy(np.array(aux, dtype=np.int64)) if aux is not None else None,
        )

    def train_set(self, imbalance: float, seed: int) -> Split:
        return self._subset("train", self.imbalance_indices(self.arrays()["train_y"], imbalance, seed))

    def reference_set(self) -> Split:
        return self._subset(self.reference_arrays, None)


def variant(base: type[Dataset], description: str, **defaults: Any) -> type[Dataset]:
    """`base` with other defaults for its options: the same data, evaluation
    networks and reference statistics, a training set of its own in sweeps
    and reports. Register it under its own name, e.g.
    `DATASETS.register("cifar10-partial")(variant(Cifar10, "...", mode="partial"))`:
    one sweep can then hold the long tail and the balanced partial set of
    CIFAR-10 at the same rho (the Damage GAN protocol), which options alone
    cannot, since they are set per dataset name."""
    for key, value in defaults.items():
        problems = base.option_problems({key: value})
        if problems:
            raise ValueError(f"variant of {base.name!r}: {problems[0][1]}")
    options = {k: replace(o, default=defaults[k]) if k in defaults else o for k, o in base.options.items()}
    attrs = {"options": options, "variant_of": base.data_name(), "description": description, "__module__": base.__module__}
    return type(f"{base.__name__}Variant", (base,), attrs)


def dataset_for(cell: dict) -> Dataset:
    """The dataset of a cell, built with its options (config) and data paths (runtime)."""
    from bench.registry import DATASETS

    config = cell["config"]
    options = {**config.get("dataset_options", {}), **cell.get("runtime", {}).get("dataset_paths", {})}
    return DATASETS.get(config["dataset"])(**options)


class CcganH5Dataset(ContinuousImageDataset):
    """A CcGAN authors' HDF5 file (`images` N×3×R×R uint8, `labels`, and the
    auxiliary class `aux_key` where the file has it): the labels inside
    `label_range` are kept (closed, or open with `open_range`), and, as in
    CcGAN, the reference is all of those real images."""

    reference_arrays = "train"
    channels = 3
    options = {**ROOT_OPTION, **EVALNET_OPTION}
    open_range: ClassVar[bool] = False  # keep lo < y < hi (Steering Angle's main.py:68) instead of lo <= y <= hi
    aux_key: ClassVar[str | None] = None  # the file's auxiliary class (UTKFace: `races`), Split.aux

    def decode_key(self) -> str:
        return super().decode_key() + ("-open" if self.open_range else "") + (f"-{self.aux_key}" if self.aux_key else "")

    def decode(self, folder: Path) -> dict[str, np.ndarray]:
        extra = (self.aux_key,) if self.aux_key else ()
        images, labels, *aux = read_h5_images(folder / self.source.files[0], self.resolution, extra)
        lo, hi = self.label_range
        keep = ((labels > lo) & (labels < hi)) if self.open_range else ((labels >= lo) & (labels <= hi))
        out = {"train_x": images[keep], "train_y": labels[keep]}
        if aux and aux[0] is not None:
            out["train_aux"] = aux[0][keep]
        return out

    def data_labels(self) -> np.ndarray:
        """The labels of all kept images (the authors' `raw_labels`)."""
        return np.asarray(self.arrays()["train_y"], dtype=np.float64)

    # A separate HDF5 file of images and auxiliary classes (`images`, `labels`) in the data
    # folder, on which the Diversity classifier trains when the main file has no `aux_key`
    # (Steering Angle's SteeringAngle_5_scenes_64x64.h5).
    aux_file: ClassVar[str | None] = None

    def aux_problem(self) -> str | None:
        """Why the auxiliary classifier's file cannot be read (None: it can)."""
        if self.aux_file is None:
            return None
        folder = locate(self.source, self.settings.get("root"), dataset=self.name)
        if not (folder / self.aux_file).exists():
            return (f"dataset {self.name!r}: the Diversity classifier trains on {self.aux_file}, not in {folder} "
                    f"(published with the CcGAN code, https://github.com/UBCDingXin/improved_CcGAN)")  # fmt: skip
        return None

    def aux_split(self) -> Split | None:
        """The images and classes the auxiliary classifier learns from, when they come from `aux_file`."""
        if self.aux_file is None:
            return None
        folder = locate(self.source, self.settings.get("root"), dataset=self.name)
        arrays = decoded(f"{self.data_name()}-{self.resolution}px-aux", [folder / self.aux_file],
                         lambda: dict(zip(("x", "aux"), read_h5_images(folder / self.aux_file, self.resolution))))  # fmt: skip
        aux = np.asarray(arrays["aux"])
        if (aux != np.round(aux)).any() or aux.min() < 0:
            raise UserError(f"{folder / self.aux_file}: `labels` must be class ids 0, 1, ..., got {aux[(aux != np.round(aux)) | (aux < 0)][0]}")
        return Split(ClassImageDataset.to_tensor(arrays["x"]), torch.zeros(len(aux)), [], torch.from_numpy(aux.astype(np.int64)))
