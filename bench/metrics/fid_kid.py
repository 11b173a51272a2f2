"""FID and KID on Inception features (clean-fid), and the Inception Score.

- `inception_fid`: the Fréchet distance (`bench.metrics.frechet`, clean-fid's
  arithmetic) between the Gaussian of the generated features and the cached
  reference statistics (the same number as `cleanfid.fid.fid_from_feats` on
  the two feature sets).
- `inception_kid`: clean-fid's `kernel_distance(real, fake)` (100 subsets of
  up to 1000), with NumPy's global generator seeded 0 for the call and
  restored after, so a cell's KID is reproducible.
- `inception_score`: the network we ship has no logits layer. IS is
  computed with torch-fidelity only when $GANBENCH_IS_WEIGHTS names its full
  Inception weights file (`weights-inception-2015-12-05-6726825d.pth`) and
  torch-fidelity is installed (`pip install 'ganbench[is]'`); otherwise it
  is NaN and the result says why.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from bench.metrics.base import EvalContext, ImageMetric, unavailable
from bench.metrics.inception import extractor, to_uint8
from bench.metrics.spaces import fid_to_reference, inception_space
from bench.metrics.tail_fid import update_per_class
from bench.registry import METRICS

IS_WEIGHTS_ENV = "GANBENCH_IS_WEIGHTS"
KID_SEED = 0


class InceptionMetric(ImageMetric):
    """A metric of the Inception space; once it is computed, `evaluator.per_class`
    (when class-aware metrics made one) gains its Inception column."""

    @classmethod
    def prepare(cls, dataset) -> None:
        extractor()

    def compute(self, ctx: EvalContext) -> float:
        value = self.score(ctx)
        update_per_class(ctx, create=False)
        return value

    def score(self, ctx: EvalContext) -> float:
        raise NotImplementedError


@METRICS.register("inception_fid")
class InceptionFID(InceptionMetric):
    label = "FID"
    direction = "lower"
    bounds = (0.0, None)

    def score(self, ctx):
        return fid_to_reference(ctx, self.name, inception_space(ctx))


def seeded_kid(real: np.ndarray, fake: np.ndarray, seed: int = KID_SEED) -> float:
    from cleanfid.fid import kernel_distance

    state = np.random.get_state()
    np.random.seed(seed)
    try:
        return float(kernel_distance(real, fake))
    finally:
        np.random.set_state(state)


@METRICS.register("inception_kid")
class InceptionKID(InceptionMetric):
    label = "KID"
    direction = "lower"

    def score(self, ctx):
        space = inception_space(ctx)
        return seeded_kid(space["real"], space["fake"])


@METRICS.register("inception_score")
class InceptionScore(InceptionMetric):
    label = "IS"
    direction = "higher"
    bounds = (1.0, None)  # exp of a KL divergence

    def score(self, ctx: EvalContext):
        weights = os.environ.get(IS_WEIGHTS_ENV)
        if not weights:
            return unavailable(ctx, self.name, f"the shipped Inception has no logits layer; set ${IS_WEIGHTS_ENV} to "
                               "torch-fidelity's full Inception weights file to compute IS")  # fmt: skip
        if not Path(weights).is_file():
            return unavailable(ctx, self.name, f"${IS_WEIGHTS_ENV}={weights}: no such file")
        try:
            import torch_fidelity
        except ImportError:
            return unavailable(ctx, self.name, "torch-fidelity is not installed (pip install 'ganbench[is]')")
        result = torch_fidelity.calculate_metrics(
            input1=_Uint8Images(to_uint8(ctx.fake)), isc=True, feature_extractor_weights_path=weights,
            cuda=ctx.device.type == "cuda", verbose=False, save_cpu_ram=True,
        )  # fmt: skip
        ctx.info["inception_score"] = {"weights": weights, "std": result["inception_score_std"]}
        value = float(result["inception_score_mean"])
        if not np.isfinite(value):
            return unavailable(ctx, self.name, f"torch-fidelity gave no score for {len(ctx.fake)} samples "
                               "(it splits them in 10; give more)")  # fmt: skip
        return value


class _Uint8Images(torch.utils.data.Dataset):
    """uint8 (3, H, W) tensors, what torch-fidelity reads."""

    def __init__(self, pixels: np.ndarray):
        self.pixels = pixels

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, i):
        img = torch.from_numpy(self.pixels[i]).permute(2, 0, 1)
        return img.expand(3, -1, -1).contiguous() if img.shape[0] == 1 else img
