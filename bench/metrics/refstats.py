"""Real-data features and statistics, computed once and cached on disk.

A cache entry is keyed by everything that changes it: data set, split,
subset (imbalance factor and subset seed when the reference is not the
balanced split), resolution, extractor (name + weight hash) and sample
count. The file name is a hash of the canonical JSON of that key, and the
key is stored inside the file. Concurrent jobs (processes, SLURM tasks on
one filesystem) take a file lock: one computes, the others wait and read;
the file appears by an atomic rename, so nobody reads half a file and no
duplicate is written.
"""

from __future__ import annotations

import hashlib
import json
from typing import Callable

import numpy as np

from bench.cache import cache_dir
from bench.cache import build_once
from bench.metrics.frechet import gaussian

_memo: dict[str, dict[str, np.ndarray]] = {}


def cache_key(dataset, extractor: dict, n: int, split: str = "reference", imbalance: float = 1, subset_seed: int | None = None) -> dict:
    subset = "balanced" if imbalance == 1 else {"imbalance": imbalance, "subset_seed": subset_seed}
    return {
        "dataset": dataset.data_name(),
        "split": split,
        "reference": getattr(dataset, "reference_split", ""),  # what the split is, in the dataset's words
        "subset": subset,
        "resolution": dataset.resolution,
        "extractor": extractor,
        "n": n,
    }


def key_path(key: dict):
    canonical = json.dumps(key, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return cache_dir("refstats") / f"{key['dataset']}-{key['split']}-{digest}.npz"


def reference_stats(key: dict, compute: Callable[[], tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """{"feats", "labels", "mu", "sigma"} for `key`; `compute()` -> (feats, labels) runs on a miss only.

    mu and sigma are fitted as clean-fid fits them (`frechet.gaussian`), so
    FID from the cache equals clean-fid's on the features.
    """
    path = key_path(key)
    name = str(path)
    if name in _memo:
        return _memo[name]

    def write(tmp):
        feats, labels = compute()
        mu, sigma = gaussian(feats)
        np.savez(tmp, feats=feats, labels=labels, mu=mu, sigma=sigma, key=json.dumps(key, sort_keys=True))

    build_once(path, write)
    with np.load(path) as f:
        if json.loads(str(f["key"])) != key:
            raise RuntimeError(f"{path} holds statistics for another key; delete it")
        _memo[name] = {k: f[k] for k in ("feats", "labels", "mu", "sigma")}
    return _memo[name]
