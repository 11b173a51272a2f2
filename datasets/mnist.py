"""MNIST (LeCun et al. 1998): 28x28 grey digits, 10 classes, 60,000 train /
10,000 test, read from the four IDX .gz files as published.

The train split's classes are not equal (5,421 to 6,742), so the long tail's
n_max is the smallest class (5,421); the test split (892 to 1,135 per
class) is the reference, as published.
"""

from bench.data import IdxImageDataset
from bench.datafiles import MNIST
from bench.registry import DATASETS


@DATASETS.register("mnist")
class Mnist(IdxImageDataset):
    source = MNIST
    num_classes = 10
    resolution = 28
    channels = 1
    description = "MNIST 28x28 grey digits, 10 classes (60,000 train / 10,000 test)"
    reference_split = "the test split: 10,000 images (892 to 1,135 per class)"
