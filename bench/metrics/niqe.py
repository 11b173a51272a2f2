"""The `niqe` metric: NIQE of the generated images under the data set's own
natural-scene model. NIQE itself (features, fitting, scoring, the protocols)
is in bench/niqe.py, shared with methods that rank their samples by it.

Under the harness's protocol (`bench.niqe.HARNESS`) the score is the mean
NIQE of all generated images. Data sets that declare the authors' protocol
are scored as the Dual-NDA / CcGAN authors do: each fake by the model of its
requested label where there is one per label, the mean NIQE of the fakes in
each label window (bench.metrics.continuous.windows), then the mean over
windows: UTKFace per age, then over the 60 ages
(NIQE/UTKFace/NIQE_64x64/Intra_niqe_test_utkface.m:18-44), Steering Angle per
±2° window of its 1,000 centres, then over centres
(NIQE/SteeringAngle/NIQE_64x64/niqe_test_steeringangle.m:19-42). Images
whose NIQE is undefined (no textured block) are left out and counted; a
window without a scored fake makes the metric NaN with the reason.
"""

from __future__ import annotations

import numpy as np

from bench.metrics.base import EvalContext, ImageMetric, unavailable
from bench.metrics.continuous import members, requested, windows
from bench.niqe import HARNESS, niqe_of, pristine_model
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
        protocol = model["protocol"]
        ctx.info["niqe"] = {"recipe": protocol.recipe, "digest": model["digest"], "fit_images": model["images"],
                            "fit_blocks": model["blocks"], "size": protocol.size(ctx.dataset.resolution),
                            "block": protocol.block, "sharpness": protocol.sharpness,
                            "models": 1 if model["labels"] is None else len(model["labels"])}  # fmt: skip
        labels = requested(ctx) if ctx.fake_labels is not None else None
        if protocol != HARNESS and labels is None:
            return unavailable(ctx, self.name, "the authors' NIQE protocol scores fakes by their requested labels; "
                               "this generator was asked for none")  # fmt: skip
        values = niqe_of(ctx.fake, model, labels)
        finite = np.isfinite(values)
        ctx.info["niqe"]["undefined_images"] = int((~finite).sum())  # e.g. flat images: no texture to fit
        if not finite.any():
            return unavailable(ctx, self.name, "NIQE is undefined on every generated image (no textured block)")
        if protocol == HARNESS:
            return float(values[finite].mean())
        centres, radius = windows(ctx.dataset)
        groups = [g[finite[g]] for g in members(labels, centres, radius)]
        empty = [k for k, g in enumerate(groups) if len(g) == 0]
        if empty:
            return unavailable(ctx, self.name, f"{len(empty)} of {len(centres)} windows hold no fake with a defined NIQE "
                               f"(e.g. centre {centres[empty[0]]:g})")  # fmt: skip
        ctx.info["niqe"]["windows"] = len(groups)
        return float(np.mean([values[g].mean() for g in groups]))
