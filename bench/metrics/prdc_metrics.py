"""Precision, recall (Kynkäänniemi et al. 2019), density and coverage
(Naeem et al. 2020) on Inception features, computed by the `prdc` package
with k = 5 nearest neighbours; the real side is the cached reference subset."""

from __future__ import annotations

import contextlib
import io

from bench.metrics.fid_kid import InceptionMetric
from bench.metrics.spaces import inception_space
from bench.registry import METRICS

NEAREST_K = 5


def _prdc(ctx) -> dict:
    if "prdc" not in ctx.memo:
        from prdc import compute_prdc

        space = inception_space(ctx)
        with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the sample counts
            ctx.memo["prdc"] = compute_prdc(real_features=space["real"], fake_features=space["fake"], nearest_k=NEAREST_K)
        ctx.info["prdc"] = {"nearest_k": NEAREST_K}
    return ctx.memo["prdc"]


class PRDCMetric(InceptionMetric):
    direction = "higher"
    bounds = (0.0, None)  # precision, recall and coverage <= 1 too (density is not)

    def score(self, ctx):
        return float(_prdc(ctx)[self.name])


for _key in ("precision", "recall", "density", "coverage"):
    _bounds = (0.0, None) if _key == "density" else (0.0, 1.0)
    METRICS.register(_key)(type(f"PRDC_{_key}", (PRDCMetric,), {"label": _key, "bounds": _bounds, "__module__": __name__}))
