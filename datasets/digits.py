"""scikit-learn's 8x8 handwritten digits (UCI optdigits test set), 10 classes.

1,797 real images shipped with scikit-learn, so no download. Pixel values
0..16 are rescaled to 0..255. The split is fixed: a stratified 75/25
train/test split with seed 0; the test split is the balanced reference.
"""

import numpy as np

from bench.data import ClassImageDataset
from bench.registry import DATASETS


@DATASETS.register("digits")
class Digits(ClassImageDataset):
    num_classes = 10
    resolution = 8
    channels = 1
    description = "scikit-learn 8x8 digits, 10 classes (1,347 train / 450 test)"

    def load_split(self, split):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
        x_tr, x_te, y_tr, y_te = train_test_split(
            images, bunch.target, test_size=0.25, random_state=0, stratify=bunch.target
        )
        return (x_tr, y_tr.astype(np.int64)) if split == "train" else (x_te, y_te.astype(np.int64))
