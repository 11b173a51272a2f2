"""Mode metrics for 2-D Gaussian mixtures (Srivastava et al. 2017, VEEGAN).

Each generated point is assigned to its nearest mode centre; it is high
quality when within 3 sigma of that centre.
- `high_quality`: % of generated points that are high quality.
- `modes_covered`: modes that received high-quality points amounting to at
  least 1% of all generated points.
- `mode_kl`: KL(histogram of nearest-mode assignments of all generated
  points || uniform), in nats: 0 when modes are hit equally often, log K
  when all points go to one mode. The reference is uniform because every
  evaluation is against the balanced mixture.
"""

from __future__ import annotations

import torch

from bench.metrics.base import EvalContext, Metric, kl_to_uniform
from bench.registry import METRICS


def _assignments(ctx: EvalContext) -> tuple[torch.Tensor, torch.Tensor, int]:
    if "modes" not in ctx.memo:
        centres = torch.as_tensor(ctx.dataset.centres(), dtype=torch.float32)
        dist = torch.cdist(ctx.fake.float(), centres)
        nearest_dist, nearest = dist.min(dim=1)
        ctx.memo["modes"] = (nearest, nearest_dist <= 3 * ctx.dataset.std, len(centres))
    return ctx.memo["modes"]


class PointsMetric(Metric):
    requirement = "needs a 2-D Gaussian mixture dataset with known centres"

    @classmethod
    def applies_to(cls, dataset) -> bool:
        return dataset.kind == "points" and hasattr(dataset, "centres")


@METRICS.register("high_quality")
class HighQuality(PointsMetric):
    label = "% high quality"
    direction = "higher"
    bounds = (0.0, 100.0)

    def compute(self, ctx):
        _, hq, _ = _assignments(ctx)
        return 100.0 * hq.float().mean().item()


@METRICS.register("modes_covered")
class ModesCovered(PointsMetric):
    label = "modes covered"
    direction = "higher"
    bounds = (0.0, None)  # at most the dataset's number of modes

    def compute(self, ctx):
        nearest, hq, k = _assignments(ctx)
        counts = torch.bincount(nearest[hq], minlength=k)
        return float((counts >= 0.01 * len(nearest)).sum())


@METRICS.register("mode_kl")
class ModeKL(PointsMetric):
    label = "mode KL"
    direction = "lower"
    bounds = (0.0, None)

    def compute(self, ctx):
        nearest, _, k = _assignments(ctx)
        return kl_to_uniform(torch.bincount(nearest, minlength=k))
