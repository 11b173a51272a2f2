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

PacGAN's protocol (Lin et al. 2018, Table 1, after VEEGAN's; the code is
fjxmlzn/PacGAN synthetic_data_experiments/PacGAN/pacgan/extensions.py,
`MetricLogger`) counts differently, under names of its own so the metrics
above keep their meaning:
- `modes_recovered`: modes with at least one high-quality point (its
  "mode coverage": the non-zero entries of the high-quality histogram);
- `reverse_kl`: KL(histogram of the high-quality points' modes || uniform),
  in nats: the paper's "reverse KL" between the generated and the true mode
  distributions, over the high-quality points as the code's histogram
  ("detail of coverage") holds them. With no high-quality point at all it is
  undefined (the code divides by zero); we give log K, its value for a
  generator on one mode, so a failed run ranks last rather than vanishing.
High quality is the same rule in both (the code's Mahalanobis distance < 3
is Euclidean distance < 3 sigma for these isotropic, equal-sigma mixtures).
"""

from __future__ import annotations

import math

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


def _hq_counts(ctx: EvalContext) -> tuple[torch.Tensor, int]:
    """(high-quality points per mode, number of generated points)."""
    nearest, hq, k = _assignments(ctx)
    return torch.bincount(nearest[hq], minlength=k), len(nearest)


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


def count_of_modes(ctx: EvalContext, name: str, value: float) -> float:
    """A count of modes, with its upper bound (the data set's modes) in the record: the report cuts a
    seed interval there (`evaluator.bounds`, bench.report.frame)."""
    ctx.info.setdefault("bounds", {})[name] = [0.0, float(_assignments(ctx)[2])]  # K, as the assignments counted it
    return value


@METRICS.register("modes_covered")
class ModesCovered(PointsMetric):
    label = "modes covered"
    direction = "higher"
    bounds = (0.0, None)  # at most the dataset's number of modes: each record says how many

    def compute(self, ctx):
        counts, n = _hq_counts(ctx)
        return count_of_modes(ctx, self.name, float((counts >= 0.01 * n).sum()))


@METRICS.register("mode_kl")
class ModeKL(PointsMetric):
    label = "mode KL"
    direction = "lower"
    bounds = (0.0, None)

    def compute(self, ctx):
        nearest, _, k = _assignments(ctx)
        return kl_to_uniform(torch.bincount(nearest, minlength=k))


@METRICS.register("modes_recovered")
class ModesRecovered(PointsMetric):
    label = "modes recovered"
    direction = "higher"
    bounds = (0.0, None)  # at most the dataset's number of modes: each record says how many

    def compute(self, ctx):
        return count_of_modes(ctx, self.name, float((_hq_counts(ctx)[0] > 0).sum()))


@METRICS.register("reverse_kl")
class ReverseKL(PointsMetric):
    label = "reverse KL"
    direction = "lower"

    def compute(self, ctx):
        counts, _ = _hq_counts(ctx)
        return kl_to_uniform(counts) if counts.sum() > 0 else math.log(len(counts))
