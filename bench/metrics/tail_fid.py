"""Class-aware FIDs for long-tailed data: head/tail FID and intra-class FID.

- `fid_head` / `fid_tail`: each generated sample is assigned to the class
  the per-data-set classifier predicts; FID of the samples assigned to
  class c against the real class-c samples of the reference, averaged over
  the head half of the classes (c < C // 2, the frequent ones under the
  long-tail profile) or the tail half (c >= C // 2).
- `intra_fid`: for class-conditional generation, samples are grouped by the
  class the generator was asked for (`ctx.fake_labels`), and the per-class
  FIDs are averaged over all classes.
A class with fewer than MIN_PER_CLASS generated (or real) samples has no
FID: it is NaN, the counts are recorded, and a mean containing it is NaN
with the reason, so collapsing onto the head never improves a tail score.
Each metric exists in the classifier's feature space (the CPU default) and,
prefixed `inception_`, on Inception features; clean-fid's `fid_from_feats`
does the arithmetic.
"""

from __future__ import annotations

import numpy as np

from bench.metrics.base import EvalContext, Metric, unavailable
from bench.metrics.evalnet import get_classifier
from bench.metrics.spaces import SPACES, classifier_space
from bench.registry import METRICS

MIN_PER_CLASS = 10


def per_class_fid(fake: np.ndarray, fake_classes: np.ndarray, real: np.ndarray, real_labels: np.ndarray,
                  num_classes: int) -> tuple[list[float], list[int]]:  # fmt: skip
    """FID per class (NaN below MIN_PER_CLASS samples on either side) and generated counts."""
    from cleanfid.fid import fid_from_feats

    fids, counts = [], []
    for c in range(num_classes):
        f, r = fake[fake_classes == c], real[real_labels == c]
        counts.append(len(f))
        fids.append(float(fid_from_feats(f, r)) if min(len(f), len(r)) >= MIN_PER_CLASS else float("nan"))
    return fids, counts


class ClassFIDMetric(Metric):
    direction = "lower"
    requirement = "needs a class-labelled image dataset"
    space: str
    grouping: str  # "predicted" | "requested"

    @classmethod
    def applies_to(cls, dataset) -> bool:
        return dataset.kind == "images" and dataset.label_type == "class" and (dataset.num_classes or 0) >= 2

    @classmethod
    def prepare(cls, dataset) -> None:
        get_classifier(dataset)

    def classes(self, ctx: EvalContext) -> list[int]:
        return list(range(ctx.dataset.num_classes))

    def compute(self, ctx: EvalContext) -> float:
        if self.grouping == "requested" and ctx.fake_labels is None:
            return unavailable(ctx, self.name, "needs a class-conditional generator (no requested labels)")
        key = f"per_class_fid/{self.space}/{self.grouping}"
        if key not in ctx.memo:
            feats = SPACES[self.space](ctx)
            if self.grouping == "predicted":
                groups = classifier_space(ctx)["pred"].numpy()
            else:
                groups = ctx.fake_labels.long().numpy()
            fids, counts = per_class_fid(feats["fake"], groups, feats["real"], feats["real_labels"], ctx.dataset.num_classes)
            ctx.memo[key] = fids
            ctx.info.setdefault("per_class_fid", {})[f"{self.space}/{self.grouping}"] = {
                "fid": fids, "fake_counts": counts, "min_count": MIN_PER_CLASS}  # fmt: skip
        values = [ctx.memo[key][c] for c in self.classes(ctx)]
        if any(np.isnan(values)):
            short = [c for c in self.classes(ctx) if np.isnan(ctx.memo[key][c])]
            return unavailable(ctx, self.name, f"classes {short} have fewer than {MIN_PER_CLASS} samples "
                               f"(counts in per_class_fid)")  # fmt: skip
        return float(np.mean(values))


class HeadHalf(ClassFIDMetric):
    def classes(self, ctx):
        return list(range(ctx.dataset.num_classes // 2))


class TailHalf(ClassFIDMetric):
    def classes(self, ctx):
        return list(range(ctx.dataset.num_classes // 2, ctx.dataset.num_classes))


for _space, _prefix, _tag in (("classifier", "", " (classifier)"), ("inception", "inception_", "")):
    for _name, _base, _grouping, _label in (
        ("fid_head", HeadHalf, "predicted", "head FID"),
        ("fid_tail", TailHalf, "predicted", "tail FID"),
        ("intra_fid", ClassFIDMetric, "requested", "intra-FID"),
    ):
        _attrs = {"label": _label + _tag, "space": _space, "grouping": _grouping, "__module__": __name__}
        METRICS.register(_prefix + _name)(type(f"{_base.__name__}_{_prefix}{_name}", (_base,), _attrs))
