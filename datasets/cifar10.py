"""CIFAR-10 (Krizhevsky 2009): 32x32 colour, 10 classes, 50,000 train /
10,000 test, read from the python-version pickles (data_batch_1..5,
test_batch). rho = 100 gives the CIFAR-10-LT counts 5000, 2997, ..., 50.

`cifar10-partial` is the same data with `mode: partial` by default: the
balanced partial training set of the Damage GAN paper (at rho = 100, 12,406
images, 1,240 or 1,241 per class), a dataset of its own in sweeps and
reports, sharing CIFAR-10's files, evaluation classifier and statistics.
"""

import numpy as np

from bench.data import FileImageDataset, variant
from bench.datafiles import CIFAR10, read_cifar_batch
from bench.registry import DATASETS


@DATASETS.register("cifar10")
class Cifar10(FileImageDataset):
    source = CIFAR10
    num_classes = 10
    resolution = 32
    channels = 3
    description = "CIFAR-10 32x32 colour, 10 classes (50,000 train / 10,000 test)"
    reference_split = "the test split: 10,000 images, 1,000 per class"

    def decode(self, folder):
        train = [read_cifar_batch(folder / f) for f in self.source.files[:-1]]
        test_x, test_y = read_cifar_batch(folder / self.source.files[-1])
        return {
            "train_x": np.concatenate([x for x, _ in train]),
            "train_y": np.concatenate([y for _, y in train]),
            "test_x": test_x,
            "test_y": test_y,
        }


DATASETS.register("cifar10-partial")(variant(
    Cifar10, "CIFAR-10, balanced partial: as many images as the rho long tail, equal per class", mode="partial"))
