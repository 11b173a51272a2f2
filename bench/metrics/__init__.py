"""The shared metric suite: every cell is scored by this code.

A metric is a class registered in `bench.registry.METRICS` that declares
what it needs (`applies_to`), its `direction` and a table `label`, and
returns one number from `compute(ctx)`.
"""

from bench.metrics.base import EvalContext, Metric  # noqa: F401
from bench.metrics import classifier_metrics, points  # noqa: F401  (registration)
