"""Feature spaces shared by several metrics of one cell (memoised in ctx.memo).

- "inception": 2048-d Inception pool features (bench.metrics.inception);
  the real side is a fixed subset of the balanced reference split, of the
  same size as the generated set (capped by the reference size), cached on
  disk by bench.metrics.refstats.
- "classifier": the penultimate layer of the per-data-set classifier
  (bench.metrics.evalnet); the real side is the whole reference split.

Each space returns {"fake": (N, d), "real": (M, d), "real_labels": (M,),
"real_mu", "real_sigma"} as float arrays.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.metrics.base import EvalContext
from bench.metrics.evalnet import get_classifier
from bench.metrics.frechet import frechet_distance, gaussian, record_offset
from bench.metrics.inception import extractor, inception_features
from bench.metrics.refstats import cache_key, reference_stats

REFERENCE_SEED = 0  # which reference images enter the real set when it is capped


def reference_subset(n_reference: int, n: int) -> np.ndarray:
    """Indices of the first n of a fixed permutation of the reference split."""
    return np.sort(np.random.default_rng(REFERENCE_SEED).permutation(n_reference)[:n])


def inception_space(ctx: EvalContext) -> dict:
    if "inception" not in ctx.memo:
        fx = extractor(ctx.device)
        n = min(len(ctx.reference.x), len(ctx.fake))
        key = cache_key(ctx.dataset, fx.identity(), n)

        def compute():
            idx = torch.from_numpy(reference_subset(len(ctx.reference.x), n))
            return inception_features(ctx.reference.x[idx], ctx.device), ctx.reference.y[idx].numpy()

        real = reference_stats(key, compute)
        fake = inception_features(ctx.fake, ctx.device)
        ctx.memo["inception"] = {"fake": fake, "real": real["feats"], "real_labels": real["labels"],
                                 "real_mu": real["mu"], "real_sigma": real["sigma"]}  # fmt: skip
        ctx.info["inception"] = {**fx.describe(), "n_real": n, "n_fake": len(fake)}
    return ctx.memo["inception"]


def classifier_space(ctx: EvalContext) -> dict:
    if "classifier" not in ctx.memo:
        net = get_classifier(ctx.dataset)
        fake_feats, fake_logits = net.features_and_logits(ctx.fake.float())
        real_feats, _ = net.features_and_logits(ctx.reference.x)
        real = real_feats.double().numpy()
        real_mu, real_sigma = gaussian(real, ctx.device)
        ctx.memo["classifier"] = {
            "fake": fake_feats.double().numpy(), "real": real, "real_labels": ctx.reference.y.numpy(),
            "real_mu": real_mu, "real_sigma": real_sigma, "pred": fake_logits.argmax(1),
        }  # fmt: skip
        ctx.info["classifier"] = {"accuracy": net.accuracy, "digest": net.digest}
    return ctx.memo["classifier"]


SPACES = {"inception": inception_space, "classifier": classifier_space}


def fid_to_reference(ctx: EvalContext, metric: str, space: dict) -> float:
    """Fréchet distance from the generated features' Gaussian to the reference statistics."""
    result = frechet_distance(*gaussian(space["fake"], ctx.device), space["real_mu"], space["real_sigma"], device=ctx.device)
    record_offset(ctx.info, metric, result.offset)
    return result.distance
