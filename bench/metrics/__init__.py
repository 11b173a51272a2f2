"""The shared metric suite: every cell is scored by this code.

A metric is a class registered in `bench.registry.METRICS` that declares
what it needs (`applies_to`), its `direction` and a table `label`, and
returns one number from `compute(ctx)`; a metric that cannot be computed
returns NaN and records why in the result's evaluator info.
"""

from bench.metrics.base import EvalContext, Metric  # noqa: F401
from bench.metrics import (  # noqa: F401  (registration)
    circle,
    classifier_metrics,
    continuous,
    fid_kid,
    niqe,
    points,
    prdc_metrics,
    tail_fid,
)
