"""Metric contract and the evaluation context handed to every metric."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from bench.data import Dataset, Split


@dataclass
class EvalContext:
    dataset: Dataset
    fake: torch.Tensor  # generated samples, on the CPU
    reference: Split  # the balanced held-out real data
    device: torch.device
    fake_labels: torch.Tensor | None = None  # the labels a conditional generator was asked for
    info: dict[str, Any] = field(default_factory=dict)  # evaluator facts stored in the result
    memo: dict[str, Any] = field(default_factory=dict)  # shared work between metrics of one cell


class Metric:
    name: ClassVar[str]  # set by the registry
    label: ClassVar[str]
    direction: ClassVar[str]  # "lower" | "higher"
    # The range every value lies in, None for no bound (a distance is >= 0, a share <= 100):
    # the report clips a seed interval to it and says so.
    bounds: ClassVar[tuple[float | None, float | None]] = (None, None)
    requirement: ClassVar[str] = ""
    # Scores samples by the labels the generator was asked for (ctx.fake_labels):
    # the spec refuses it for unconditional rows.
    needs_labels: ClassVar[bool] = False

    @classmethod
    def applies_to(cls, dataset: type[Dataset]) -> bool:
        return True

    @classmethod
    def prepare(cls, dataset: Dataset) -> None:
        """Build what the metric caches (e.g. an evaluation network) before
        cells are dispatched, so workers do not all wait on the first one."""

    def compute(self, ctx: EvalContext) -> float:
        raise NotImplementedError

    @classmethod
    def describe(cls) -> dict:
        return {"name": cls.name, "label": cls.label, "direction": cls.direction, "bounds": list(cls.bounds)}


class ImageMetric(Metric):
    requirement = "needs an image dataset"

    @classmethod
    def applies_to(cls, dataset: type[Dataset]) -> bool:
        return dataset.kind == "images"


def unavailable(ctx: EvalContext, metric: str, reason: str) -> float:
    """Record why `metric` has no value in the result's evaluator info; the value is NaN."""
    ctx.info.setdefault("unavailable", {})[metric] = reason
    return float("nan")


def kl_to_uniform(counts: torch.Tensor) -> float:
    """KL(p || uniform) of a histogram, with 0 log 0 = 0 (nats)."""
    p = counts.double() / counts.sum()
    nz = p[p > 0]
    return float((nz * torch.log(nz * len(counts))).sum())
