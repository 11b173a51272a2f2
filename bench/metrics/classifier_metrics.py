"""Image metrics in the feature space of the per-dataset classifier.

- `classifier_fid`: Fréchet distance between Gaussians fitted to the
  classifier's penultimate features of generated and of balanced reference
  images (the in-domain FID used for small data sets, e.g. MNIST studies);
  clean-fid's `frechet_distance` does the arithmetic.
- `class_kl`: KL(histogram of the classifier's predicted classes on
  generated images || uniform), in nats: how far generation is from
  balanced over classes.
Both record the classifier's test accuracy and weight hash in the result.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.metrics.base import EvalContext, Metric, kl_to_uniform
from bench.metrics.evalnet import get_classifier
from bench.registry import METRICS


def _classify(ctx: EvalContext) -> dict:
    if "classifier" not in ctx.memo:
        net = get_classifier(ctx.dataset)
        fake_feats, fake_logits = net.features_and_logits(ctx.fake.float())
        real_feats, _ = net.features_and_logits(ctx.reference.x)
        ctx.memo["classifier"] = {"fake": fake_feats, "real": real_feats, "pred": fake_logits.argmax(1)}
        ctx.info["classifier"] = {"accuracy": net.accuracy, "digest": net.digest}
    return ctx.memo["classifier"]


def _gaussian(feats: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    f = feats.double().numpy()
    return f.mean(axis=0), np.cov(f, rowvar=False)


class ClassifierMetric(Metric):
    requirement = "needs a class-labelled image dataset"

    @classmethod
    def applies_to(cls, dataset) -> bool:
        return dataset.kind == "images" and dataset.label_type == "class"

    @classmethod
    def prepare(cls, dataset) -> None:
        get_classifier(dataset)


@METRICS.register("classifier_fid")
class ClassifierFID(ClassifierMetric):
    label = "FID (classifier)"
    direction = "lower"

    def compute(self, ctx):
        from cleanfid.fid import frechet_distance

        feats = _classify(ctx)
        mu1, s1 = _gaussian(feats["fake"])
        mu2, s2 = _gaussian(feats["real"])
        return float(frechet_distance(mu1, s1, mu2, s2))


@METRICS.register("class_kl")
class ClassKL(ClassifierMetric):
    label = "class KL"
    direction = "lower"

    def compute(self, ctx):
        pred = _classify(ctx)["pred"]
        return kl_to_uniform(torch.bincount(pred, minlength=ctx.dataset.num_classes))
