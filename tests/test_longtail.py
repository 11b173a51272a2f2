import numpy as np
import pytest

from bench.longtail import longtail_counts, longtail_indices, longtail_weights


def test_cifar10_rho100_counts():
    assert longtail_counts(5000, 10, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def test_balanced_and_rho10():
    assert longtail_counts(500, 10, 1) == [500] * 10
    counts = longtail_counts(5000, 10, 10)
    assert counts[0] == 5000 and counts[-1] == 500
    assert all(a >= b for a, b in zip(counts, counts[1:]))


def test_rejects_rho_below_one():
    with pytest.raises(ValueError):
        longtail_counts(100, 10, 0.5)


def test_indices_follow_profile_and_seed():
    labels = np.repeat(np.arange(4), 100)
    idx, counts = longtail_indices(labels, 4, 100, seed=3)
    assert counts == [100, 21, 4, 1]
    assert np.bincount(labels[idx], minlength=4).tolist() == counts
    again, _ = longtail_indices(labels, 4, 100, seed=3)
    other, _ = longtail_indices(labels, 4, 100, seed=4)
    assert np.array_equal(idx, again) and not np.array_equal(idx, other)


def test_mixture_weights_have_same_profile():
    w = longtail_weights(8, 100)
    assert w.sum() == pytest.approx(1)
    assert w[0] / w[-1] == pytest.approx(100)


def test_points_datasets_follow_profile():
    from bench.registry import DATASETS

    ring = DATASETS.get("ring")()
    split = ring.train_set(imbalance=100, seed=0)
    counts = np.array(split.class_counts)
    assert counts[0] / counts[-1] == pytest.approx(100, rel=0.25)
    ref = ring.reference_set()
    assert max(ref.class_counts) / min(ref.class_counts) < 1.2
