"""Continuous-label image metrics, following the CcGAN / Dual-NDA protocol.

Generated samples are grouped by evaluation centre: each sample goes to the
centre of `dataset.eval_labels()` nearest to the label the generator was
asked for (`ctx.fake_labels`); centres that got no sample are left out.
- `label_score`: mean |ŷ - y| of the cached regressor's estimate ŷ against
  the requested label y, in label units, per centre, averaged over centres.
- `diversity`: entropy (nats) of the histogram of the auxiliary classifier's
  predicted classes on the fakes at each centre, averaged over centres.
- `sfid`: sliding FID in the bottleneck of the cached autoencoder: at each
  centre c, real reference images with |y - c| <= radius against fakes
  whose requested label is within the same window; averaged over centres.
  The radius is the data set's `sfid_radius` when it declares one, else half
  the median spacing of the centres. Windows with fewer than MIN_WINDOW real
  images are skipped (the same for every method); a window with fewer than
  MIN_WINDOW fakes makes the score NaN.
The evaluation networks' scores and hashes go into the result.
"""

from __future__ import annotations

import numpy as np

from bench.metrics.base import EvalContext, Metric, unavailable
from bench.metrics.evalnet import EvalNetUnavailable, get_evalnet
from bench.metrics.frechet import frechet_of_features, record_offset
from bench.registry import METRICS

MIN_WINDOW = 10


def centre_groups(ctx: EvalContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centres, requested labels, index of each sample's nearest centre)."""
    centres = np.asarray(ctx.dataset.eval_labels(), dtype=np.float64).reshape(-1)
    labels = ctx.fake_labels.double().reshape(len(ctx.fake), -1)[:, 0].numpy()
    nearest = np.abs(labels[:, None] - centres[None, :]).argmin(axis=1)
    return centres, labels, nearest


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
        return self.score(ctx, net, *centre_groups(ctx))

    def score(self, ctx, net, centres, labels, nearest) -> float:
        raise NotImplementedError


@METRICS.register("label_score")
class LabelScore(ContinuousMetric):
    label = "Label Score"
    direction = "lower"
    role = "regressor"

    def score(self, ctx, net, centres, labels, nearest):
        err = np.abs(net.predict_labels(ctx.fake).numpy() - labels)
        return float(np.mean([err[nearest == k].mean() for k in np.unique(nearest)]))


@METRICS.register("diversity")
class Diversity(ContinuousMetric):
    label = "Diversity"
    direction = "higher"
    role = "aux_classifier"

    def score(self, ctx, net, centres, labels, nearest):
        pred = net.predict_classes(ctx.fake).numpy()
        k_aux = net.extra["num_aux_classes"]
        return float(np.mean([entropy(np.bincount(pred[nearest == k], minlength=k_aux)) for k in np.unique(nearest)]))


def sfid_radius(dataset, centres: np.ndarray) -> float:
    declared = getattr(dataset, "sfid_radius", None)
    if declared is not None:
        return float(declared)
    spacing = np.diff(np.unique(centres))
    return float(np.median(spacing) / 2) if len(spacing) else 0.0


@METRICS.register("sfid")
class SlidingFID(ContinuousMetric):
    label = "SFID"
    direction = "lower"
    role = "autoencoder"

    @classmethod
    def applies_to(cls, dataset) -> bool:
        return super().applies_to(dataset) and (dataset.resolution or 0) % 4 == 0

    def score(self, ctx, net, centres, labels, nearest):
        radius = sfid_radius(ctx.dataset, centres)
        real_y = ctx.reference.y.double().reshape(len(ctx.reference.x), -1)[:, 0].numpy()
        real = net.encode(ctx.reference.x).double().numpy()
        fake = net.encode(ctx.fake).double().numpy()
        fids, short_fake, short_real = [], [], 0
        for c in centres[np.unique(nearest)]:
            r = real[np.abs(real_y - c) <= radius]
            f = fake[np.abs(labels - c) <= radius]
            if len(r) < MIN_WINDOW:
                short_real += 1
            elif len(f) < MIN_WINDOW:
                short_fake.append(float(c))
            else:
                result = frechet_of_features(f, r)
                record_offset(ctx.info, self.name, result.offset)
                fids.append(result.distance)
        ctx.info["sfid"] = {"radius": radius, "windows": len(fids), "skipped_few_real": short_real, "min_window": MIN_WINDOW}
        if short_fake:
            return unavailable(ctx, self.name, f"{len(short_fake)} windows have fewer than {MIN_WINDOW} fakes "
                               f"(e.g. centre {short_fake[0]:g})")  # fmt: skip
        if not fids:
            return unavailable(ctx, self.name, f"no window of radius {radius:g} holds {MIN_WINDOW} real images")
        return float(np.mean(fids))
