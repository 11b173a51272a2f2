"""Write small data files in the real published formats, for tests.

IDX (MNIST layout, gzipped), CIFAR-10 python pickles and the CcGAN 64x64
HDF5 layout. Imported by tests/test_data*.py and tests/perf/bench_data.py.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def write_idx(path: Path, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def images_for(labels: np.ndarray, size: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Images whose mean brightness encodes the label (so a subset can be checked against labels)."""
    rng = np.random.default_rng(seed)
    base = (np.asarray(labels) * 20 + 30).astype(np.uint8)[:, None, None, None]
    noise = rng.integers(0, 10, (len(labels), channels, size, size), dtype=np.uint8)
    out = base + noise
    return out[:, 0] if channels == 1 else out


def write_mnist_like(folder: Path, per_class_train: int = 20, per_class_test: int = 5, num_classes: int = 10) -> Path:
    """The four IDX .gz files of a small 28x28 MNIST-layout set (classes in a shuffled order)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for (img, lab), n in ((IDX_FILES[:2], per_class_train), (IDX_FILES[2:], per_class_test)):
        labels = rng.permutation(np.repeat(np.arange(num_classes), n)).astype(np.uint8)
        write_idx(folder / img, images_for(labels, 28))
        write_idx(folder / lab, labels)
    return folder


def write_cifar(folder: Path, per_batch: int = 30) -> Path:
    """data_batch_1..5 and test_batch of the CIFAR-10 python version, `per_batch` images each."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.permutation(np.arange(per_batch) % 10)
        data = images_for(labels, 32, channels=3).reshape(per_batch, -1)
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels.tolist(), b"data": data,
                         b"filenames": [b"x.png"] * per_batch}, f, protocol=2)  # fmt: skip
    return folder


def write_ccgan_h5(path: Path, labels: np.ndarray, races: np.ndarray | None = None, images: np.ndarray | None = None) -> Path:
    """The CcGAN authors' layout: `images` N×3×64×64 uint8 (random unless given) and `labels`;
    with `races`, UTKFace_64x64.h5's `races` (one integer class per image, 0..4 in theirs)."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    if images is None:
        images = rng.integers(0, 256, (len(labels), 3, 64, 64), dtype=np.uint8)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.asarray(images, dtype=np.uint8))
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.float64))
        if races is not None:
            f.create_dataset("races", data=np.asarray(races, dtype=np.int64))
    return path


def utkface_ages(n: int, seed: int = 0) -> np.ndarray:
    """n integer ages in 1..60 spread like CcGAN's UTKFace file: a peak of babies at
    age 1, few children and teenagers, most faces in the 20s and 30s, a thinning tail to
    60 (about 1:10 between the rarest and the commonest age, as in the real file)."""
    ages = np.arange(1, 61)
    weight = 0.15 + np.exp(-0.5 * ((ages - 28) / 8.0) ** 2) + 0.9 * (ages == 1) + 0.3 * (ages <= 4)
    rng = np.random.default_rng(seed)
    # every age at least 10 times (SFID's per-age windows), the rest drawn by the weights
    base = np.repeat(ages, 10)
    extra = rng.choice(ages, size=max(0, n - len(base)), p=weight / weight.sum())
    return rng.permutation(np.concatenate([base, extra])).astype(np.float64)


def steering_angles(n: int, seed: int = 0) -> np.ndarray:
    """n steering angles in degrees on (-80, 80) spread like CcGAN's Steering Angle file:
    most frames near straight ahead (a Laplace peak at 0, scale 8), a thin spread to the
    ends of the range; many distinct float values."""
    rng = np.random.default_rng(seed)
    near = rng.laplace(0.0, 8.0, size=n - n // 5)
    wide = rng.uniform(-80.0, 80.0, size=n // 5)
    return np.clip(rng.permutation(np.concatenate([near, wide])), -79.9, 79.9).round(4)
