"""The `niqe` metric: mean NIQE of the generated images under the data set's
own natural-scene model. NIQE itself (features, fitting, scoring) is in
bench/niqe.py, shared with methods that rank their samples by it."""

from __future__ import annotations

import numpy as np

from bench.metrics.base import EvalContext, ImageMetric, unavailable
from bench.niqe import RECIPE, UPSAMPLED, niqe_of, pristine_model
from bench.registry import METRICS


@METRICS.register("niqe")
class NIQE(ImageMetric):
    label = "NIQE"
    direction = "lower"
    bounds = (0.0, None)  # a distance between two Gaussian fits

    @classmethod
    def prepare(cls, dataset) -> None:
        pristine_model(dataset)

    def compute(self, ctx: EvalContext) -> float:
        model = pristine_model(ctx.dataset)
        ctx.info["niqe"] = {"recipe": RECIPE, "digest": model["digest"], "fit_images": model["images"],
                            "fit_blocks": model["blocks"], "size": max(ctx.dataset.resolution, UPSAMPLED)}  # fmt: skip
        values = niqe_of(ctx.fake, model)
        finite = np.isfinite(values)
        ctx.info["niqe"]["undefined_images"] = int((~finite).sum())  # e.g. flat images: no texture to fit
        if not finite.any():
            return unavailable(ctx, self.name, "NIQE is undefined on every generated image (no textured block)")
        return float(values[finite].mean())
