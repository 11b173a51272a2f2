"""Class-aware metrics for long-tailed data: head/tail FID, intra-FID, class KL
and the per-class record (`evaluator.per_class`), on a tiny synthetic 4-class
image set (classifier space: fast on a CPU)."""

import json
import math

import numpy as np
import pytest
import torch

from bench.data import Dataset, Split
from bench.metrics.base import EvalContext
from bench.metrics.classifier_metrics import ClassKL
from bench.metrics.evalnet import get_classifier
from bench.registry import METRICS
from bench.metrics.tail_fid import MIN_PER_CLASS
from metrics_threads import one_thread  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

C, RES = 4, 8


def _make(n_per_class: int, seed: int) -> Split:
    """Class c: a bright c-th quadrant on a noisy background."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(C).repeat_interleave(n_per_class)
    x = -0.8 + 0.2 * torch.randn(len(y), 1, RES, RES, generator=g)
    for c in range(C):
        r, q = divmod(c, 2)
        x[y == c, :, r * 4 : r * 4 + 4, q * 4 : q * 4 + 4] += 1.5
    return Split(x.clamp(-1, 1), y, [n_per_class] * C)


class Quadrants(Dataset):
    name = "mt-quadrants"
    kind = "images"
    num_classes = C
    resolution = RES
    channels = 1

    def train_set(self, imbalance, seed):
        return _make(60, 100 + seed)

    def reference_set(self):
        return _make(40, 7)


def _ctx(fake, fake_labels=None):
    d = Quadrants()
    return EvalContext(dataset=d, fake=fake, reference=d.reference_set(), device=torch.device("cpu"), fake_labels=fake_labels)


def _metric(name):
    return METRICS._items[name]()


def test_classifier_is_trained_once_and_recorded():
    net = get_classifier(Quadrants())
    assert net.accuracy > 0.9
    ctx = _ctx(_make(20, 3).x)
    _metric("fid_head").compute(ctx)
    assert ctx.info["classifier"] == {"accuracy": net.accuracy, "digest": net.digest}


def test_head_and_tail_fid_on_balanced_samples_are_small():
    ctx = _ctx(_make(40, 11).x)
    head, tail = _metric("fid_head").compute(ctx), _metric("fid_tail").compute(ctx)
    info = ctx.info["per_class_fid"]["classifier/predicted"]
    assert info["min_count"] == MIN_PER_CLASS and sum(info["fake_counts"]) == 4 * 40
    assert 0 <= head < 1 and 0 <= tail < 1


def test_tail_fid_is_nan_with_counts_when_the_tail_is_missing():
    head_only = _make(40, 12)
    keep = head_only.y < C // 2
    ctx = _ctx(head_only.x[keep])
    assert not math.isnan(_metric("fid_head").compute(ctx))
    assert math.isnan(_metric("fid_tail").compute(ctx))
    assert "fewer than" in ctx.info["unavailable"]["fid_tail"]
    counts = ctx.info["per_class_fid"]["classifier/predicted"]["fake_counts"]
    assert counts[2] < MIN_PER_CLASS and counts[3] < MIN_PER_CLASS
    assert _metric("class_kl").compute(ctx) == pytest.approx(math.log(2), abs=0.1)


def test_intra_fid_needs_requested_labels_and_groups_by_them():
    s = _make(40, 13)
    ctx = _ctx(s.x)
    assert math.isnan(_metric("intra_fid").compute(ctx))
    assert "class-conditional" in ctx.info["unavailable"]["intra_fid"]
    good = _metric("intra_fid").compute(_ctx(s.x, s.y))
    shuffled = _metric("intra_fid").compute(_ctx(s.x, (s.y + 1) % C))
    assert good < 1 < shuffled


def test_class_kl_of_balanced_samples_is_near_zero():
    assert ClassKL().compute(_ctx(_make(40, 14).x)) < 0.05


def test_class_metrics_apply_to_class_images_only():
    class Points(Dataset):
        kind, label_type, num_classes = "points", "class", 8

    for name in ("fid_head", "fid_tail", "intra_fid", "inception_fid_tail"):
        assert METRICS._items[name].applies_to(Quadrants)
        assert not METRICS._items[name].applies_to(Points)


def _fabricated_inception(ctx, dim: int = 16) -> dict:
    """Stand-in Inception features (the network is slow on a CPU): the per-class record only needs a space."""
    g = np.random.default_rng(0)
    real = g.normal(size=(len(ctx.reference.x), dim))
    return {"fake": g.normal(size=(len(ctx.fake), dim)), "real": real, "real_labels": ctx.reference.y.numpy(),
            "real_mu": real.mean(axis=0), "real_sigma": np.cov(real, rowvar=False)}  # fmt: skip


def test_per_class_record_reads_off_a_worse_minority_class():
    s = _make(40, 15)
    x = s.x.clone()
    worse = s.y == C - 1
    x[worse] = (x[worse] + 0.6 * torch.randn(x[worse].shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    ctx = _ctx(x)
    ClassKL().compute(ctx)
    record = ctx.info["per_class"]
    assert set(record) == {"classes", "generated", "fid_classifier"}  # no Inception metric ran
    assert record["classes"] == list(range(C)) and sum(record["generated"]) == len(x)
    assert record["generated"] == torch.bincount(ctx.memo["classifier"]["pred"], minlength=C).tolist()
    fids = record["fid_classifier"]
    assert fids[C - 1] > 2 * max(fids[: C - 1])
    json.dumps(record, allow_nan=False)


def test_per_class_fid_is_null_below_the_minimum_count():
    head_only = _make(40, 16)
    ctx = _ctx(head_only.x[head_only.y < C // 2])
    _metric("fid_tail").compute(ctx)
    record = ctx.info["per_class"]
    assert record["fid_classifier"][C // 2 :] == [None] * (C - C // 2)
    assert all(isinstance(v, float) for v in record["fid_classifier"][: C // 2])
    json.dumps(record, allow_nan=False)


@pytest.mark.parametrize("order", [("class_kl", "inception_fid"), ("inception_fid", "fid_head")])
def test_per_class_record_gains_the_inception_column_in_either_order(order):
    ctx = _ctx(_make(40, 17).x)
    ctx.memo["inception"] = _fabricated_inception(ctx)
    for name in order:
        _metric(name).compute(ctx)
    record = ctx.info["per_class"]
    assert len(record["fid_inception"]) == C and all(v is not None and v > 0 for v in record["fid_inception"])
    assert ctx.info["per_class_fid"]["inception/predicted"]["fid"] == record["fid_inception"]


def test_inception_metrics_alone_make_no_per_class_record():
    ctx = _ctx(_make(40, 18).x)
    ctx.memo["inception"] = _fabricated_inception(ctx)
    _metric("inception_fid").compute(ctx)
    assert "per_class" not in ctx.info
