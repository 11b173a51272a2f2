"""Sweep files: parse, validate strictly, resolve and expand into cells.

A sweep is one YAML file::

    name: quickstart
    plugins: [my_plugins/]            # optional extra plugin folders
    matrix: {method: [...], dataset: [...], imbalance: [...], seed: [...]}
    include: [{method: x, dataset: y, imbalance: 1, seed: 0}]   # extra cells
    exclude: [{method: wgan-gp, imbalance: 100}]                # partial match
    defaults: {budget: {...}, optimizer: {...}, arch: {...}, metrics: [...],
               eval_seed: 0, log_every: 100, checkpoint_every: 500}
    overrides:
      dataset: {digits: {budget: {steps: 800}}}
      method: {wgan-gp: {hp: {gp_weight: 5}, optimizer: {lr_d: 2e-4}}}
    executor: {name: local, workers: 2}
    reference:                        # what papers printed, shown beside ours
      - {row: gan, dataset: fashion-mnist, imbalance: 1, metric: inception_fid,
         value: 10.6, source: "paper, table, setting", budget: paper}

Precedence, lowest first: the method's paper defaults and the harness
defaults for the dataset's kind, then `defaults`, then `overrides.dataset`,
then `overrides.method`. Every error is one line naming the file and the key.

A cell is plain data: {"id", "sweep", "config", "runtime"}. Only `config`
(the fully resolved settings that change results) enters the id.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.errors import UserError
from bench.nets import DEFAULT_ARCH
from bench.registry import DATASETS, METHODS, METRICS, load_plugins

AXES = ("method", "dataset", "imbalance", "seed")
EXECUTORS = ("debug", "local", "slurm")
OPTIMIZERS = ("adam", "rmsprop", "sgd")
DEFAULT_BUDGET = {"steps": 2000, "batch_size": 128, "eval_samples": 2000}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

TOP_KEYS = ("name", "description", "plugins", "matrix", "include", "exclude", "defaults", "overrides", "executor", "budgets", "reference")
SETTING_KEYS = ("budget", "optimizer", "arch", "metrics", "eval_seed", "log_every", "checkpoint_every")
METHOD_SETTING_KEYS = SETTING_KEYS + ("hp",)
EXECUTOR_KEYS = ("name", "workers", "cells_per_job", "profile")
DATASET_SETTING_KEYS = SETTING_KEYS + ("options",)  # `options`: the dataset's declared options (Dataset.options)
BUDGET_PROFILE_KEYS = ("defaults", "overrides")
RUNTIME_KEYS = ("log_every", "checkpoint_every")


@dataclass
class Sweep:
    name: str
    path: Path
    cells: list[dict]
    executor: dict
    plugin_dirs: list[str] = field(default_factory=list)
    description: str = ""
    budget: str | None = None  # the `budgets:` profile merged in, if any
    references: list[dict] = field(default_factory=list)  # `reference:` entries, what the papers printed


def cell_id(config: dict) -> str:
    """Short stable hash of the canonical JSON of a resolved config."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


class _Checker:
    """Type and range checks that raise one-line UserErrors naming file and key."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, problem: str) -> None:
        raise UserError(f"{self.path}: {key}: {problem}" if key else f"{self.path}: {problem}")

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...] | None = None) -> dict:
        if not isinstance(value, dict):
            self.fail(key, f"must be a mapping, got {_type(value)}")
        if allowed is not None:
            for k in value:
                if k not in allowed:
                    self.unknown_key(f"{key}.{k}" if key else str(k), k, allowed)
        return value

    def unknown_key(self, where: str, k: Any, allowed: tuple[str, ...]) -> None:
        import difflib

        close = difflib.get_close_matches(str(k), allowed, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
        self.fail(where, f"unknown key {k!r}; {hint}")

    def integer(self, value: Any, key: str, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"must be an integer >= {minimum}, got {value!r}")
        if value < minimum:
            self.fail(key, f"must be >= {minimum}, got {value}")
        return value

    def number(self, value: Any, key: str, minimum: float, inclusive: bool = True) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(key, f"must be a number, got {value!r}")
        if value < minimum or (not inclusive and value == minimum):
            self.fail(key, f"must be {'>=' if inclusive else '>'} {minimum}, got {value}")
        return value

    def string_list(self, value: Any, key: str) -> list[str]:
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item:
                self.fail(f"{key}[{i}]", f"must be a non-empty string, got {item!r}")
        return items


def _type(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(type(value), type(value).__name__)


def load_sweep(path: str | Path, extra_plugin_dirs: list[str] = (), budget: str | None = None) -> Sweep:
    """Read, validate and expand a sweep file. Raises UserError, writes nothing.

    `budget` names a profile of the sweep's `budgets:` section (e.g. "paper")
    whose `defaults` and `overrides` are merged over the base ones; its cells
    are a sweep of their own, named "<name>-<budget>".
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such sweep file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "YAML"
        raise UserError(f"{path}: {where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    check = _Checker(path)
    if raw is None:
        check.fail("", "the file is empty; a sweep needs at least `name` and `matrix`")
    check.mapping(raw, "", TOP_KEYS)
    for required in ("name", "matrix"):
        if required not in raw:
            check.fail(required, "is required")
    name = raw["name"]
    if not isinstance(name, str) or not NAME_RE.match(name):
        check.fail("name", f"must be a name of letters, digits, '-', '_' or '.', got {name!r}")

    plugin_dirs = [str((path.parent / p).resolve()) for p in check.string_list(raw.get("plugins", []), "plugins")]
    for i, d in enumerate(plugin_dirs):
        if not Path(d).is_dir():
            check.fail(f"plugins[{i}]", f"folder {d} does not exist")
    plugin_dirs = [*extra_plugin_dirs, *plugin_dirs]
    load_plugins(plugin_dirs)

    combos = _expand(raw, check)
    profiles = check.mapping(raw.get("budgets", {}), "budgets")
    for k, profile in profiles.items():
        if not isinstance(k, str) or not NAME_RE.match(k):
            check.fail(f"budgets.{k}", "a budget profile needs a name of letters, digits, '-', '_' or '.'")
        check.mapping(profile, f"budgets.{k}", BUDGET_PROFILE_KEYS)
        _settings(profile.get("defaults", {}), f"budgets.{k}.defaults", check, DATASET_SETTING_KEYS)
        _override_blocks(profile.get("overrides", {}), f"budgets.{k}.overrides", check)
    raw_defaults, raw_overrides = raw.get("defaults", {}), raw.get("overrides", {})
    if budget is not None:
        if budget not in profiles:
            known = ", ".join(map(str, profiles)) or "none (add a `budgets:` section)"
            check.fail("budgets", f"no budget profile {budget!r} for --budget; the sweep has: {known}")
        name = f"{name}-{budget}"
        raw_defaults = _merge(check.mapping(raw_defaults, "defaults"), profiles[budget].get("defaults", {}))
        raw_overrides = _merge(check.mapping(raw_overrides, "overrides"), profiles[budget].get("overrides", {}))
    defaults = _settings(raw_defaults, "defaults", check, DATASET_SETTING_KEYS)
    by_dataset, by_method = _override_blocks(raw_overrides, "overrides", check)

    cells = []
    for combo in combos:
        config = _resolve(combo, defaults, by_dataset.get(combo["dataset"], {}), by_method.get(combo["method"], {}), check)
        runtime = {k: config.pop(k) for k in RUNTIME_KEYS}
        runtime["dataset_paths"] = config.pop("dataset_paths")
        runtime["plugin_dirs"] = plugin_dirs
        cells.append({"id": cell_id(config), "sweep": name, "config": config, "runtime": runtime})
    return Sweep(
        name=name,
        path=path,
        cells=cells,
        executor=_executor(raw.get("executor", {}), check),
        plugin_dirs=plugin_dirs,
        description=str(raw.get("description", "")),
        budget=budget,
        references=_references(raw.get("reference", []), profiles, check),
    )


def _override_blocks(value: Any, key: str, check: _Checker) -> tuple[dict, dict]:
    """Validate an `overrides` section: (by dataset name, by method name)."""
    overrides = check.mapping(value, key, ("method", "dataset"))
    by_dataset = {
        k: _settings(v, f"{key}.dataset.{k}", check, DATASET_SETTING_KEYS)
        for k, v in check.mapping(overrides.get("dataset", {}), f"{key}.dataset").items()
    }
    by_method = {
        k: _settings(v, f"{key}.method.{k}", check, METHOD_SETTING_KEYS)
        for k, v in check.mapping(overrides.get("method", {}), f"{key}.method").items()
    }
    for kind, table, registry in (("dataset", by_dataset, DATASETS), ("method", by_method, METHODS)):
        for k in table:
            if k not in registry:
                check.fail(f"{key}.{kind}.{k}", registry.unknown_message(k))
    for k, block in by_dataset.items():
        for opt, problem in DATASETS.get(k).option_problems(block.get("options", {})):
            check.fail(f"{key}.dataset.{k}.options.{opt}", problem)
    return by_dataset, by_method


def _axis_values(value: Any, key: str, axis: str, check: _Checker) -> list:
    values = list(value) if isinstance(value, list) else [value]
    if not values:
        check.fail(key, "must list at least one value")
    for i, v in enumerate(values):
        where = f"{key}[{i}]" if isinstance(value, list) else key
        if axis == "method":
            if not isinstance(v, str) or v not in METHODS:
                check.fail(where, METHODS.unknown_message(v))
        elif axis == "dataset":
            if not isinstance(v, str) or v not in DATASETS:
                check.fail(where, DATASETS.unknown_message(v))
        elif axis == "imbalance":
            check.number(v, where, 1)
            # 10 and 10.0 are one factor, so they must give one cell id.
            values[i] = int(v) if float(v).is_integer() else float(v)
        else:
            check.integer(v, where, 0)
    return values


def _expand(raw: dict, check: _Checker) -> list[dict]:
    matrix = check.mapping(raw["matrix"], "matrix", AXES)
    for axis in AXES:
        if axis not in matrix:
            check.fail(f"matrix.{axis}", "is required (a list of values)")
    axes = {a: _axis_values(matrix[a], f"matrix.{a}", a, check) for a in AXES}
    combos = [dict(zip(AXES, values)) for values in itertools.product(*axes.values())]

    include = raw.get("include", [])
    if not isinstance(include, list):
        check.fail("include", f"must be a list of cells, got {_type(include)}")
    for i, entry in enumerate(include):
        check.mapping(entry, f"include[{i}]", AXES)
        for a in AXES:
            if a not in entry:
                check.fail(f"include[{i}].{a}", "is required: an included cell names all of method, dataset, imbalance, seed")
        values = {a: _axis_values(entry[a], f"include[{i}].{a}", a, check) for a in AXES}
        combos += [dict(zip(AXES, v)) for v in itertools.product(*values.values())]

    exclude = raw.get("exclude", [])
    if not isinstance(exclude, list):
        check.fail("exclude", f"must be a list of partial cells, got {_type(exclude)}")
    rules = []
    for i, entry in enumerate(exclude):
        check.mapping(entry, f"exclude[{i}]", AXES)
        if not entry:
            check.fail(f"exclude[{i}]", "is empty: it would exclude every cell")
        rules.append({a: _axis_values(v, f"exclude[{i}].{a}", a, check) for a, v in entry.items()})
    combos = [c for c in combos if not any(all(c[a] in vals for a, vals in r.items()) for r in rules)]

    unique = list({json.dumps(c, sort_keys=True): c for c in combos}.values())
    if not unique:
        check.fail("exclude", "excludes every cell of the matrix")
    return unique


def _settings(value: Any, key: str, check: _Checker, allowed: tuple[str, ...]) -> dict:
    """Validate one settings block (defaults or an override)."""
    block = check.mapping(value, key, allowed)
    if "budget" in block:
        budget = check.mapping(block["budget"], f"{key}.budget", tuple(DEFAULT_BUDGET))
        for k, v in budget.items():
            check.integer(v, f"{key}.budget.{k}", 1)
    if "optimizer" in block:
        opt = check.mapping(block["optimizer"], f"{key}.optimizer", ("name", "lr_g", "lr_d", "betas", "d_steps"))
        if "name" in opt and opt["name"] not in OPTIMIZERS:
            check.fail(f"{key}.optimizer.name", f"must be one of {', '.join(OPTIMIZERS)}, got {opt['name']!r}")
        for lr in ("lr_g", "lr_d"):
            if lr in opt:
                check.number(opt[lr], f"{key}.optimizer.{lr}", 0, inclusive=False)
        if "betas" in opt:
            betas = opt["betas"]
            if not (isinstance(betas, list) and len(betas) == 2 and all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas
            )):
                check.fail(f"{key}.optimizer.betas", f"must be a list of two numbers in [0, 1), got {betas!r}")
        if "d_steps" in opt:
            check.integer(opt["d_steps"], f"{key}.optimizer.d_steps", 1)
    if "arch" in block:
        arch = check.mapping(block["arch"], f"{key}.arch", ("z_dim", "width"))
        for k, v in arch.items():
            check.integer(v, f"{key}.arch.{k}", 1)
    if "metrics" in block:
        metrics = block["metrics"]
        if not isinstance(metrics, list) or not metrics:
            check.fail(f"{key}.metrics", f"must be a non-empty list of metric names, got {metrics!r}")
        for i, m in enumerate(metrics):
            if not isinstance(m, str) or m not in METRICS:
                check.fail(f"{key}.metrics[{i}]", METRICS.unknown_message(m))
    for k in ("eval_seed",):
        if k in block:
            check.integer(block[k], f"{key}.{k}", 0)
    for k in RUNTIME_KEYS:
        if k in block:
            check.integer(block[k], f"{key}.{k}", 1)
    if "hp" in block:
        check.mapping(block["hp"], f"{key}.hp")
    if "options" in block:
        check.mapping(block["options"], f"{key}.options")
    return block


def _merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _resolve(combo: dict, defaults: dict, by_dataset: dict, by_method: dict, check: _Checker) -> dict:
    method = METHODS.get(combo["method"])
    dataset = DATASETS.get(combo["dataset"])
    base = {
        "budget": dict(DEFAULT_BUDGET),
        "optimizer": copy.deepcopy(method.optimizer),
        "arch": dict(DEFAULT_ARCH[dataset.kind]),
        "metrics": list(dataset.metrics),
        "eval_seed": 0,
        "log_every": 50,
        "checkpoint_every": 500,
        "hp": copy.deepcopy(method.hp),
    }
    config = base
    for layer in (defaults, by_dataset, by_method):
        config = _merge(config, layer)
    for k in config["hp"]:
        if k not in method.hp:
            known = ", ".join(method.hp) or "none"
            check.fail(f"overrides.method.{combo['method']}.hp.{k}", f"method {combo['method']!r} has no hyperparameter {k!r} (it has: {known})")
    for k, problem in method.hp_problems(config["hp"]):
        check.fail(f"overrides.method.{combo['method']}.hp.{k}", problem)
    options, paths = _dataset_options(combo["dataset"], dataset, config.pop("options", {}), by_dataset, check)
    for name in config["metrics"]:
        metric = METRICS.get(name)
        if not metric.applies_to(dataset):
            check.fail("metrics", f"metric {name!r} does not apply to dataset {combo['dataset']!r} ({metric.requirement})")
    if not config["metrics"]:
        check.fail(f"overrides.dataset.{combo['dataset']}.metrics", f"dataset {combo['dataset']!r} has no default metrics "
                   f"yet; name metrics that apply to it ({dataset.label_type} labels, {dataset.kind}), or leave it out of the matrix")  # fmt: skip
    return {
        "method": combo["method"],
        "dataset": combo["dataset"],
        "imbalance": combo["imbalance"],
        "seed": combo["seed"],
        **config,
        **({"dataset_options": options} if options else {}),
        "dataset_paths": paths,
    }


def _dataset_options(name: str, dataset: type, options: dict, by_dataset: dict, check: _Checker) -> tuple[dict, dict]:
    """Split a cell's dataset options into (settings for the id, data paths for the runtime).

    Settings equal to the dataset's default are left out, so a dataset that
    gains an option keeps the ids of the cells that do not use it; paths are
    made absolute against the sweep file's folder and never enter the id.
    """
    for k, problem in dataset.option_problems(options):
        where = f"overrides.dataset.{name}" if k in by_dataset.get("options", {}) else "defaults"
        check.fail(f"{where}.options.{k}", problem)
    settings, paths = {}, {}
    for k, value in options.items():
        if dataset.options[k].path:
            paths[k] = str((check.path.parent / Path(value).expanduser()).resolve())
        elif value != dataset.options[k].default:
            settings[k] = value
    return settings, paths


REFERENCE_KEYS = ("row", "dataset", "imbalance", "metric", "value", "source", "budget")


def _references(value: Any, profiles: dict, check: _Checker) -> list[dict]:
    """Validate `reference:`: what a paper printed for (row, dataset, imbalance, metric), with its source."""
    if not isinstance(value, list):
        check.fail("reference", f"must be a list of entries {{row, dataset, imbalance, metric, value, source}}, got {_type(value)}")
    out, seen = [], {}
    for i, entry in enumerate(value):
        key = f"reference[{i}]"
        check.mapping(entry, key, REFERENCE_KEYS)
        for required in REFERENCE_KEYS[:-1]:
            if required not in entry:
                check.fail(f"{key}.{required}", "is required (an entry names row, dataset, imbalance, metric, value, source)")
        for axis, registry in (("row", METHODS), ("dataset", DATASETS), ("metric", METRICS)):
            if not isinstance(entry[axis], str) or entry[axis] not in registry:
                check.fail(f"{key}.{axis}", registry.unknown_message(entry[axis]))
        rho = check.number(entry["imbalance"], f"{key}.imbalance", 1)
        check.number(entry["value"], f"{key}.value", -math.inf)
        if not isinstance(entry["source"], str) or not entry["source"].strip():
            check.fail(f"{key}.source", "must name where the number is printed (paper, table, setting)")
        if "budget" in entry and entry["budget"] not in profiles:
            known = ", ".join(map(str, profiles)) or "none (the sweep has no `budgets:` section)"
            check.fail(f"{key}.budget", f"no budget profile {entry['budget']!r}; the sweep has: {known}")
        ref = {**entry, "imbalance": int(rho) if float(rho).is_integer() else float(rho), "value": float(entry["value"])}
        ident = (ref["row"], ref["dataset"], ref["imbalance"], ref["metric"], ref.get("budget"))
        if ident in seen:
            check.fail(key, f"repeats reference[{seen[ident]}] (same row, dataset, imbalance, metric and budget)")
        seen[ident] = i
        out.append(ref)
    return out


def _executor(value: Any, check: _Checker) -> dict:
    block = check.mapping(value, "executor", EXECUTOR_KEYS)
    out = {"name": "local", "workers": 2, "cells_per_job": 0, **block}
    if out["name"] not in EXECUTORS:
        check.fail("executor.name", f"must be one of {', '.join(EXECUTORS)}, got {out['name']!r}")
    check.integer(out["workers"], "executor.workers", 1)
    check.integer(out["cells_per_job"], "executor.cells_per_job", 0)
    if "profile" in out and not (isinstance(out["profile"], str) and NAME_RE.match(out["profile"])):
        check.fail("executor.profile", f"must name a cluster profile slurm/NAME.yaml, got {out['profile']!r}")
    return out
