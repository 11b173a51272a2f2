"""CcGAN's metrics for label-conditional 2-D Gaussians (the `circle` task).

The data set declares the true mean of the Gaussian at each label
(`mean(labels) -> (N, 2)`) and its `sigma`; generated points are grouped by
the evaluation centre (`eval_labels()`, 360 unseen angles) nearest to the
label the generator was asked for, as in bench.metrics.continuous.
- `circle_hq`: % of generated points within 4 sigma (Euclidean) of the true
  mean for their requested label.
- `circle_modes`: % of evaluation centres (modes) with at least one
  high-quality point.
- `circle_w2`: the "2-Wasserstein distance" of CcGAN's simulation between
  N(mu_y, sigma^2 I) and the Gaussian fitted to the fakes at each centre
  (np.cov, ddof 1), averaged over centres. Like the authors'
  `two_wasserstein` (Simulation/utils.py) it is the squared distance,
  |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)), the Fréchet distance
  of `bench.metrics.frechet`, without a square root, so our numbers compare
  with the papers' (3.1e-4 for HVDL is W2^2; W2 itself would be ~1.8e-2).
  Centres with fewer than 2 fakes have no covariance and make the score NaN.
"""

from __future__ import annotations

import numpy as np

from bench.metrics.base import EvalContext, Metric, unavailable
from bench.metrics.continuous import centre_groups
from bench.metrics.frechet import frechet_distance, gaussian, record_offset
from bench.registry import METRICS

QUALITY_SIGMAS = 4.0


def _quality(ctx: EvalContext) -> dict:
    if "circle" not in ctx.memo:
        centres, labels, nearest = centre_groups(ctx)
        x = ctx.fake.double().numpy()
        hq = np.linalg.norm(x - ctx.dataset.mean(labels), axis=1) <= QUALITY_SIGMAS * ctx.dataset.sigma
        ctx.memo["circle"] = {"centres": centres, "nearest": nearest, "hq": hq, "x": x}
        counts = np.bincount(nearest, minlength=len(centres))
        ctx.info["circle"] = {"centres": len(centres), "fakes_per_centre_min": int(counts.min()),
                              "fakes_per_centre_max": int(counts.max())}  # fmt: skip
    return ctx.memo["circle"]


class CircleMetric(Metric):
    requirement = "needs a label-conditional 2-D dataset declaring its true mean per label and sigma"
    needs_labels = True

    @classmethod
    def applies_to(cls, dataset) -> bool:
        return (dataset.kind == "points" and dataset.label_type == "continuous"
                and callable(getattr(dataset, "mean", None)) and hasattr(dataset, "sigma"))  # fmt: skip

    def compute(self, ctx: EvalContext) -> float:
        if ctx.fake_labels is None:
            return unavailable(ctx, self.name, "needs a label-conditional generator (no requested labels)")
        return self.score(ctx, _quality(ctx))


@METRICS.register("circle_hq")
class CircleHighQuality(CircleMetric):
    label = "% high quality"
    direction = "higher"
    bounds = (0.0, 100.0)

    def score(self, ctx, q):
        return 100.0 * float(q["hq"].mean())


@METRICS.register("circle_modes")
class CircleModes(CircleMetric):
    label = "% modes recovered"
    direction = "higher"
    bounds = (0.0, 100.0)

    def score(self, ctx, q):
        hit = np.bincount(q["nearest"][q["hq"]], minlength=len(q["centres"])) > 0
        return 100.0 * float(hit.mean())


@METRICS.register("circle_w2")
class CircleW2(CircleMetric):
    label = "2-Wasserstein (squared)"
    direction = "lower"
    bounds = (0.0, None)

    def score(self, ctx, q):
        sigma2 = ctx.dataset.sigma**2 * np.eye(2)
        distances = []
        for k, c in enumerate(q["centres"]):
            pts = q["x"][q["nearest"] == k]
            if len(pts) < 2:
                return unavailable(ctx, self.name, f"centre {c:g} has {len(pts)} fakes; the Gaussian fit needs 2 or more")
            mu = ctx.dataset.mean(np.array([c]))[0]
            w2_squared = frechet_distance(mu, sigma2, *gaussian(pts))
            record_offset(ctx.info, self.name, w2_squared.offset)
            distances.append(w2_squared.distance)  # squared, as the authors report it
        return float(np.mean(distances))
