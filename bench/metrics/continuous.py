"""Continuous-label image metrics, following the CcGAN / Dual-NDA protocol.

Samples are grouped by label windows, as the authors' evaluation does
(UBCDingXin/Dual-NDA, `SteeringAngle/SteeringAngle_64x64/CcGAN/NDA/main.py:475-514`
and `UTKFace/UTKFace_64x64/CcGAN/NDA/main.py:467-517`): for each window centre c
of `dataset.window_centres()` (default: the evaluation labels), the fakes whose
requested label y (`ctx.fake_labels`) has |y - c| <= r and the real reference
images with |y_real - c| <= r, r = `dataset.window_radius` (default: half the
median spacing of the centres, so a window holds one evaluation label).
Steering Angle: 1,000 centres on linspace(min + 2, max - 2) of its labels,
r = 2 degrees (`opts.py:98-99`); UTKFace: the ages 1..60, r = 0 (`--FID_radius 0`).
- `label_score`: mean |ŷ - y| over all fakes, ŷ the cached regressor's
  estimate, in label units (their reported "overall LS", `main.py:529`;
  not the mean of per-window means, which equals it only when windows hold
  equal counts).
- `diversity`: entropy (nats) of the auxiliary classifier's predicted classes
  among the fakes of each window, averaged over windows (`main.py:504-505`).
- `sfid`: FID in the cached encoder's features between the real and the fake
  images of each window, averaged over windows. Every row is encoded (their
  `cal_FID` fills features only for whole batches, leaving the last partial
  batch's rows at zero: a bug we do not copy).
Every window is scored; theirs has no minimum count. A window holding no
fake (SFID, Diversity) or fewer than two real or two fake images (SFID: no
covariance) makes the metric NaN, with the reason and the first such centre
in `evaluator.unavailable`; theirs would fail there.
The evaluation networks' scores and hashes go into the result.
"""

from __future__ import annotations

import numpy as np

from bench.metrics.base import EvalContext, Metric, unavailable
from bench.metrics.evalnet import EvalNetUnavailable, get_evalnet
from bench.metrics.frechet import frechet_of_features, record_offset
from bench.registry import METRICS


def window_radius(dataset, centres: np.ndarray) -> float:
    declared = getattr(dataset, "window_radius", None)
    if declared is not None:
        return float(declared)
    spacing = np.diff(np.unique(centres))
    return float(np.median(spacing) / 2) if len(spacing) else 0.0


def windows(dataset) -> tuple[np.ndarray, float]:
    """(window centres, radius) of a continuous-label data set."""
    centres = dataset.window_centres() if hasattr(dataset, "window_centres") else dataset.eval_labels()
    centres = np.asarray(centres, dtype=np.float64).reshape(-1)
    return centres, window_radius(dataset, centres)


def members(labels: np.ndarray, centres: np.ndarray, radius: float) -> list[np.ndarray]:
    """Indices of `labels` within [c - radius, c + radius] for each centre (closed, as theirs)."""
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]
    lo = np.searchsorted(ordered, centres - radius, side="left")
    hi = np.searchsorted(ordered, centres + radius, side="right")
    return [order[a:b] for a, b in zip(lo, hi)]


def requested(ctx: EvalContext) -> np.ndarray:
    return ctx.fake_labels.double().reshape(len(ctx.fake), -1)[:, 0].numpy()


def centre_groups(ctx: EvalContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(evaluation centres, requested labels, index of each sample's nearest centre): the circle's grouping."""
    centres = np.asarray(ctx.dataset.eval_labels(), dtype=np.float64).reshape(-1)
    labels = requested(ctx)
    return centres, labels, np.abs(labels[:, None] - centres[None, :]).argmin(axis=1)


def entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


class ContinuousMetric(Metric):
    bounds = (0.0, None)  # a mean absolute error, an entropy, a Fréchet distance
    requirement = "needs a continuous-label image dataset"
    needs_labels = True
    role: str

    @classmethod
    def applies_to(cls, dataset) -> bool:
        return dataset.kind == "images" and dataset.label_type == "continuous" and hasattr(dataset, "eval_labels")

    @classmethod
    def prepare(cls, dataset) -> None:
        try:
            get_evalnet(dataset, cls.role)
        except EvalNetUnavailable:
            pass  # recorded per cell as the reason for NaN

    def compute(self, ctx: EvalContext) -> float:
        if ctx.fake_labels is None:
            return unavailable(ctx, self.name, "needs a label-conditional generator (no requested labels)")
        try:
            net = get_evalnet(ctx.dataset, self.role)
        except EvalNetUnavailable as exc:
            return unavailable(ctx, self.name, str(exc))
        ctx.info[self.role] = net.describe()
        centres, radius = windows(ctx.dataset)
        ctx.info["windows"] = {"centres": len(centres), "radius": radius, "first": float(centres[0]), "last": float(centres[-1])}
        return self.score(ctx, net, requested(ctx), centres, radius)

    def score(self, ctx, net, labels, centres, radius) -> float:
        raise NotImplementedError


def empty_window(ctx, name: str, groups: list[np.ndarray], centres: np.ndarray, need: int, what: str) -> float | None:
    short = [k for k, g in enumerate(groups) if len(g) < need]
    if not short:
        return None
    return unavailable(ctx, name, f"{len(short)} of {len(centres)} windows hold fewer than {need} {what} "
                       f"(e.g. centre {centres[short[0]]:g})")  # fmt: skip


@METRICS.register("label_score")
class LabelScore(ContinuousMetric):
    label = "Label Score"
    direction = "lower"
    role = "regressor"

    def score(self, ctx, net, labels, centres, radius):
        return float(np.abs(net.predict_labels(ctx.fake).numpy() - labels).mean())


@METRICS.register("diversity")
class Diversity(ContinuousMetric):
    label = "Diversity"
    direction = "higher"
    role = "aux_classifier"

    def score(self, ctx, net, labels, centres, radius):
        groups = members(labels, centres, radius)
        missing = empty_window(ctx, self.name, groups, centres, 1, "fakes")
        if missing is not None:
            return missing
        pred = net.predict_classes(ctx.fake).numpy()
        k_aux = net.extra["num_aux_classes"]
        return float(np.mean([entropy(np.bincount(pred[g], minlength=k_aux)) for g in groups]))


@METRICS.register("sfid")
class SlidingFID(ContinuousMetric):
    label = "SFID"
    direction = "lower"
    role = "autoencoder"

    @classmethod
    def applies_to(cls, dataset) -> bool:
        return super().applies_to(dataset) and (dataset.resolution or 0) % 4 == 0

    def score(self, ctx, net, labels, centres, radius):
        real_y = ctx.reference.y.double().reshape(len(ctx.reference.x), -1)[:, 0].numpy()
        real_groups, fake_groups = members(real_y, centres, radius), members(labels, centres, radius)
        for groups, what in ((real_groups, "real images"), (fake_groups, "fakes")):
            missing = empty_window(ctx, self.name, groups, centres, 2, what)
            if missing is not None:
                return missing
        real = net.encode(ctx.reference.x).double().numpy()  # every row (theirs drops a last partial batch)
        fake = net.encode(ctx.fake).double().numpy()
        fids = []
        for r, f in zip(real_groups, fake_groups):
            result = frechet_of_features(fake[f], real[r])
            record_offset(ctx.info, self.name, result.offset)
            fids.append(result.distance)
        ctx.info["sfid"] = {"radius": radius, "windows": len(fids)}
        return float(np.mean(fids))
