"""Fashion-MNIST (Xiao et al. 2017): 28x28 grey clothing images, 10 classes,
60,000 train / 10,000 test.

Read from the four IDX .gz files as published (Debian package
`dataset-fashion-mnist`, $GANBENCH_DATA, the sweep's `root` option, or
torchvision's download); the balanced test split is the reference.

`fashion-mnist-partial` is the same data with `mode: partial` by default:
as many images as the rho long tail, equal per class (the Damage GAN
protocol's balanced partial set), sharing the files, evaluation classifier
and statistics.
"""

from bench.data import IdxImageDataset, variant
from bench.datafiles import FASHION_MNIST
from bench.registry import DATASETS


@DATASETS.register("fashion-mnist")
class FashionMNIST(IdxImageDataset):
    source = FASHION_MNIST
    num_classes = 10
    resolution = 28
    channels = 1
    description = "Fashion-MNIST 28x28 grey, 10 classes (60,000 train / 10,000 test)"
    reference_split = "the test split: 10,000 images, 1,000 per class"


DATASETS.register("fashion-mnist-partial")(variant(
    FashionMNIST, "Fashion-MNIST, balanced partial: as many images as the rho long tail, equal per class", mode="partial"))
