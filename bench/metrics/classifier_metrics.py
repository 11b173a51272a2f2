"""Image metrics in the feature space of the per-dataset classifier.

- `classifier_fid`: Fréchet distance between Gaussians fitted to the
  classifier's penultimate features of generated and of balanced reference
  images (the in-domain FID used for small data sets, e.g. MNIST studies);
  `bench.metrics.frechet` does the arithmetic (clean-fid's).
- `class_kl`: KL(histogram of the classifier's predicted classes on
  generated images || uniform), in nats: how far generation is from
  balanced over classes. It also writes `evaluator.per_class` (the generated
  class histogram and per-class FIDs, see bench.metrics.tail_fid).
Both record the classifier's test accuracy and weight hash in the result.
"""

from __future__ import annotations

import torch

from bench.metrics.base import Metric, kl_to_uniform
from bench.metrics.evalnet import get_classifier
from bench.metrics.spaces import classifier_space, fid_to_reference
from bench.metrics.tail_fid import update_per_class
from bench.registry import METRICS


class ClassifierMetric(Metric):
    bounds = (0.0, None)  # a Fréchet distance, a KL divergence
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
        return fid_to_reference(ctx, self.name, classifier_space(ctx))


@METRICS.register("class_kl")
class ClassKL(ClassifierMetric):
    label = "class KL"
    direction = "lower"

    def compute(self, ctx):
        pred = classifier_space(ctx)["pred"]
        update_per_class(ctx)
        return kl_to_uniform(torch.bincount(pred, minlength=ctx.dataset.num_classes))
