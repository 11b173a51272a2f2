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
prefixed `inception_`, on Inception features; `bench.metrics.frechet` does
the arithmetic (clean-fid's).

`evaluator.per_class` (issue 12: can the minority classes' FID be read off?)
comes from the same machinery: whenever a class-aware metric (these, or
`class_kl`) runs on class-labelled images, the record gets the classes, the
generated class histogram (by the classifier's prediction) and the
per-class FID in classifier space, null below MIN_PER_CLASS; once the
Inception space is computed in the cell (by any Inception metric, before or
after), also the per-class FID in Inception space.
"""

from __future__ import annotations

import numpy as np

from bench.metrics.base import EvalContext, Metric, unavailable
from bench.metrics.evalnet import get_classifier
from bench.metrics.frechet import frechet_of_features, record_offset
from bench.metrics.spaces import SPACES, classifier_space
from bench.registry import METRICS

MIN_PER_CLASS = 10


def per_class_fid(fake: np.ndarray, fake_classes: np.ndarray, real: np.ndarray, real_labels: np.ndarray,
                  num_classes: int, device=None) -> dict:  # fmt: skip
    """{"fid": per class (NaN below MIN_PER_CLASS samples on either side), "fake_counts",
    "offset": the Fréchet diagonal offset if any class needed it, else None}."""
    fids, counts, offset = [], [], None
    for c in range(num_classes):
        f, r = fake[fake_classes == c], real[real_labels == c]
        counts.append(len(f))
        if min(len(f), len(r)) < MIN_PER_CLASS:
            fids.append(float("nan"))
            continue
        result = frechet_of_features(f, r, device)
        fids.append(result.distance)
        offset = result.offset if result.offset is not None else offset
    return {"fid": fids, "fake_counts": counts, "offset": offset}


def class_fids(ctx: EvalContext, space: str, grouping: str) -> dict:
    """Per-class FIDs of one cell in `space`, samples grouped by the classifier's
    prediction ("predicted") or the requested label ("requested"); computed once."""
    key = f"per_class_fid/{space}/{grouping}"
    if key not in ctx.memo:
        feats = SPACES[space](ctx)
        if grouping == "predicted":
            groups = classifier_space(ctx)["pred"].numpy()
        else:
            groups = ctx.fake_labels.long().numpy()
        result = per_class_fid(feats["fake"], groups, feats["real"], feats["real_labels"], ctx.dataset.num_classes, ctx.device)
        ctx.memo[key] = result
        entry = {"fid": result["fid"], "fake_counts": result["fake_counts"], "min_count": MIN_PER_CLASS}
        ctx.info.setdefault("per_class_fid", {})[f"{space}/{grouping}"] = entry
    return ctx.memo[key]


def has_classes(dataset) -> bool:
    return dataset.kind == "images" and dataset.label_type == "class" and (dataset.num_classes or 0) >= 2


def update_per_class(ctx: EvalContext, create: bool = True) -> None:
    """Write `evaluator.per_class` (see the module doc). Class-aware metrics create
    it; Inception metrics (create=False) only add the Inception column to it."""
    if not has_classes(ctx.dataset) or ("per_class" not in ctx.info and not create):
        return
    columns = [("fid_classifier", "classifier")] + ([("fid_inception", "inception")] if "inception" in ctx.memo else [])
    record = {"classes": list(range(ctx.dataset.num_classes))}
    for column, space in columns:
        result = class_fids(ctx, space, "predicted")
        if space == "classifier":
            record["generated"] = result["fake_counts"]
        record[column] = [None if np.isnan(v) else v for v in result["fid"]]
        record_offset(ctx.info, f"per_class.{column}", result["offset"])
    ctx.info["per_class"] = record


class ClassFIDMetric(Metric):
    direction = "lower"
    bounds = (0.0, None)
    requirement = "needs a class-labelled image dataset"
    space: str
    grouping: str  # "predicted" | "requested"

    @classmethod
    def applies_to(cls, dataset) -> bool:
        return has_classes(dataset)

    @classmethod
    def prepare(cls, dataset) -> None:
        get_classifier(dataset)

    def classes(self, ctx: EvalContext) -> list[int]:
        return list(range(ctx.dataset.num_classes))

    def compute(self, ctx: EvalContext) -> float:
        if self.grouping == "requested" and ctx.fake_labels is None:
            return unavailable(ctx, self.name, "needs a class-conditional generator (no requested labels)")
        result = class_fids(ctx, self.space, self.grouping)
        update_per_class(ctx)
        record_offset(ctx.info, self.name, result["offset"])
        values = [result["fid"][c] for c in self.classes(ctx)]
        if any(np.isnan(values)):
            short = [c for c in self.classes(ctx) if np.isnan(result["fid"][c])]
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
        _attrs = {"label": _label + _tag, "space": _space, "grouping": _grouping, "__module__": __name__,
                  "needs_labels": _grouping == "requested"}  # fmt: skip
        METRICS.register(_prefix + _name)(type(f"{_base.__name__}_{_prefix}{_name}", (_base,), _attrs))
