"""Sweep files: parse, validate strictly, resolve and expand into cells.

A sweep is one YAML file::

    name: quickstart
    plugins: [my_plugins/]            # optional extra plugin folders
    matrix: {method: [...], dataset: [...], imbalance: [...], seed: [...]}
    include: [{method: x, dataset: y, imbalance: 1, seed: 0}]   # extra cells
    exclude: [{method: wgan-gp, imbalance: 100}]                # partial match
    defaults: {budget: {...}, optimizer: {...}, arch: {...}, metrics: [...],
               eval_seed: 0, eval_repeats: 1, log_every: 100, checkpoint_every: 500,
               compile: false}               # runtime: torch.compile the steps
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

A cell is plain data: {"id", "training_id", "sweep", "config", "runtime"}.
Only `config` (the fully resolved settings that change results) enters the
id; the training id hashes `config` without the evaluation keys
(`training_config`), so cells that differ only in how they are scored share
one training run.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import os
import pickle
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import UserError, error_line, shown
from bench.registry import DATASETS, METHODS, METRICS, load_plugins
from bench.yamlsafe import load_file

AXES = ("method", "dataset", "imbalance", "seed")
EXECUTORS = ("debug", "local", "slurm")
OPTIMIZERS = ("adam", "rmsprop", "sgd")
DEFAULT_BUDGET = {"steps": 2000, "batch_size": 128, "eval_samples": 2000, "sampler": "epoch"}
# How the loop draws batches (bench.batches). Results made before the key existed drew with
# replacement: a config without it means that, so the key enters the config at every
# other value, the default included (new results get new ids; old ones keep theirs).
SAMPLERS = ("epoch", "replacement")
LEGACY_SAMPLER = "replacement"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # always with fullmatch: `$` would let a final newline in
MAX_NAME_LEN = 100  # a sweep or budget name becomes a folder name (255 bytes at most on most filesystems)
MAX_CELLS = 100_000  # above this a sweep is refused before expanding; --max-cells / $GANBENCH_MAX_CELLS raise it
MAX_CELLS_ENV = "GANBENCH_MAX_CELLS"
MAX_PATH_LEN = 4096  # PATH_MAX on Linux


@dataclass(frozen=True)
class Range:
    """The allowed values of one number a sweep sets; every error quotes `describe()`."""

    low: float
    high: float
    integer: bool = True
    low_open: bool = False  # (low, high] rather than [low, high]

    def __contains__(self, value: float) -> bool:
        return (value > self.low if self.low_open else value >= self.low) and value <= self.high

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if math.isinf(self.low) and math.isinf(self.high):
            return f"a finite {kind.split()[-1]}"
        if self.low_open:
            return f"{kind} above {self.low:,} and at most {self.high:,}"
        return f"{kind} from {self.low:,} to {self.high:,}"


# Every number a sweep sets, by its key within a settings block (or the matrix
# axis, or `executor.`). Bounds keep a cell within what one machine holds and
# within what the libraries accept; the README's sweep-file section lists them.
RANGES: dict[str, Range] = {
    "seed": Range(0, 2**32 - 1),  # np.random.seed and torch.Generator take it as is
    "eval_seed": Range(0, 2**32 - 1),
    "eval_repeats": Range(1, 100),  # evaluations of one trained generator with eval seeds eval_seed, eval_seed + 1, ...; gSR uses 3
    "imbalance": Range(1, 10_000, integer=False),  # papers use up to 1,000
    "budget.steps": Range(1, 10_000_000),  # 100x the usual paper budget of 100k generator steps
    "budget.batch_size": Range(1, 65_536),  # 65,536 64x64 RGB images are 3 GB of float32
    "budget.eval_samples": Range(1, 100_000),  # 2x FID-50k; all are held in memory at once
    "arch.z_dim": Range(1, 1024),  # StyleGAN's 512, BigGAN's 120
    "arch.width": Range(1, 1024),  # DCGAN's first block has 8x width channels: 8,192 at most
    "optimizer.lr_g": Range(0, 1, integer=False, low_open=True),
    "optimizer.lr_d": Range(0, 1, integer=False, low_open=True),
    "optimizer.d_steps": Range(1, 100),  # WGAN's 5 is the usual most
    "log_every": Range(1, 10_000_000),
    "checkpoint_every": Range(1, 10_000_000),
    "executor.workers": Range(1, 1024),
    "executor.cells_per_job": Range(0, MAX_CELLS),
}

TOP_KEYS = ("name", "description", "plugins", "matrix", "include", "exclude", "defaults", "overrides", "executor", "budgets", "reference")
SETTING_KEYS = ("budget", "optimizer", "arch", "metrics", "eval_seed", "eval_repeats", "log_every", "checkpoint_every", "compile")
METHOD_SETTING_KEYS = SETTING_KEYS + ("hp",)
EXECUTOR_KEYS = ("name", "workers", "cells_per_job", "profile")
DATASET_SETTING_KEYS = SETTING_KEYS + ("options",)  # `options`: the dataset's declared options (Dataset.options)
BUDGET_PROFILE_KEYS = ("defaults", "overrides")
# How a cell runs, not what it computes: kept out of the config (and the ids).
# `compile` runs the steps through torch.compile, whose losses equal eager's (bench.compiled).
RUNTIME_KEYS = ("log_every", "checkpoint_every", "compile")
# How a trained generator is scored, not how it is trained: left out of the training id.
EVAL_KEYS = ("metrics", "eval_seed", "eval_repeats")
EVAL_BUDGET_KEYS = ("eval_samples",)
EVAL_DATASET_OPTIONS = ("evalnets",)  # which evaluation networks score the data (bench.metrics.evalnet)


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


def training_config(config: dict) -> dict:
    """The config without its evaluation keys: what a training run depends on."""
    out = {k: v for k, v in config.items() if k not in EVAL_KEYS}
    out["budget"] = {k: v for k, v in config["budget"].items() if k not in EVAL_BUDGET_KEYS}
    if "dataset_options" in config:
        options = {k: v for k, v in config["dataset_options"].items() if k not in EVAL_DATASET_OPTIONS}
        out.pop("dataset_options")
        if options:
            out["dataset_options"] = options
    return out


def training_id(config: dict) -> str:
    """The id of a cell's training run: equal for cells that differ only in evaluation keys."""
    return cell_id(training_config(config))


class _Checker:
    """Type and range checks that raise one-line UserErrors naming file and key.

    `context` is said before the key: where the settings came from when not
    from the file itself (a method's `needs`)."""

    def __init__(self, path: Path, context: str = ""):
        self.path = path
        self.context = context

    def fail(self, key: str, problem: str) -> None:
        where = f"{self.context}{key}"
        raise UserError(f"{self.path}: {where}: {problem}" if where else f"{self.path}: {problem}")

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...] | None = None) -> dict:
        if not isinstance(value, dict):
            self.fail(key, f"must be a mapping, got {_type(value)}")
        if allowed is not None:
            for k in value:
                if k not in allowed:
                    where = shown(k, 40, quote=False)  # the key as written, unless long or odd
                    self.unknown_key(f"{key}.{where}" if key else where, k, allowed)
        return value

    def unknown_key(self, where: str, k: Any, allowed: tuple[str, ...]) -> None:
        import difflib

        close = difflib.get_close_matches(str(k), allowed, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
        self.fail(where, f"unknown key {shown(k)}; {hint}")

    def ranged(self, value: Any, key: str, allowed: Range) -> float:
        number_type = int if allowed.integer else (int, float)
        # NaN and the infinities fail the comparisons in `in` (YAML's .nan, .inf).
        if isinstance(value, bool) or not isinstance(value, number_type) or value not in allowed:
            self.fail(key, f"must be {allowed.describe()}, got {shown(value)}")
        return value

    def numbers(self, block: dict, key: str, prefix: str = "") -> None:
        """Range-check every entry of `block` that RANGES lists (as `prefix + name`)."""
        for k, v in block.items():
            if f"{prefix}{k}" in RANGES:
                self.ranged(v, f"{key}.{k}" if key else str(k), RANGES[f"{prefix}{k}"])

    def name(self, value: Any, key: str) -> str:
        if isinstance(value, str) and len(value) > MAX_NAME_LEN:
            self.fail(key, f"must be at most {MAX_NAME_LEN} characters, got {len(value):,} ({shown(value, 30)})")
        if not isinstance(value, str) or not NAME_RE.fullmatch(value):
            self.fail(key, f"must be a name of letters, digits, '-', '_' or '.' (starting with a letter or digit), got {shown(value)}")
        return value

    def folder(self, text: str, key: str) -> Path:
        """`text` as an absolute path against the sweep file's folder (not checked to exist)."""
        if len(text) > MAX_PATH_LEN or "\0" in text:
            self.fail(key, f"must be a folder path of at most {MAX_PATH_LEN:,} characters without NUL, got {shown(text)}")
        try:
            return (self.path.parent / Path(text).expanduser()).resolve()
        except (OSError, RuntimeError) as exc:  # e.g. ~nobody/: no such user
            self.fail(key, f"cannot resolve the path {shown(text)}: {exc}")

    def string_list(self, value: Any, key: str) -> list[str]:
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item:
                self.fail(f"{key}[{i}]", f"must be a non-empty string, got {shown(item)}")
        return items


def _type(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(type(value), type(value).__name__)


def load_sweep(
    path: str | Path, extra_plugin_dirs: list[str] = (), budget: str | None = None, max_cells: int | None = None
) -> Sweep:
    """Read, validate and expand a sweep file. Raises UserError, writes nothing.

    `budget` names a profile of the sweep's `budgets:` section (e.g. "paper")
    whose `defaults` and `overrides` are merged over the base ones; its cells
    are a sweep of their own, named "<name>-<budget>". A sweep of more than
    `max_cells` cells (default: $GANBENCH_MAX_CELLS, else MAX_CELLS) is
    refused before its matrix is expanded.
    """
    path = Path(path)
    if not os.path.exists(path):  # False, not an OSError, for a name too long for the filesystem
        raise UserError(f"{shown(str(path), 200, quote=False)}: no such sweep file")
    raw = load_file(path, "sweep file")  # bounded, strict YAML (bench.yamlsafe)
    check = _Checker(path)
    if raw is None:
        check.fail("", "the file is empty; a sweep needs at least `name` and `matrix`")
    check.mapping(raw, "", TOP_KEYS)
    for required in ("name", "matrix"):
        if required not in raw:
            check.fail(required, "is required")
    name = check.name(raw["name"], "name")
    if name == "runs":  # results/runs/ holds every sweep's cells; the report goes to results/<name>/
        check.fail("name", "'runs' is the results folder's own folder of cells; choose another name")
    description = raw.get("description", "")
    if not isinstance(description, str):
        check.fail("description", f"must be a string, got {_type(description)}")

    plugins = check.string_list(raw.get("plugins", []), "plugins")
    plugin_dirs = [str(check.folder(p, f"plugins[{i}]")) for i, p in enumerate(plugins)]
    for i, d in enumerate(plugin_dirs):
        if not os.path.isdir(d):  # False, not an OSError, for a name too long for the filesystem
            check.fail(f"plugins[{i}]", f"folder {shown(d, 200, quote=False)} does not exist")
    plugin_dirs = [*extra_plugin_dirs, *plugin_dirs]
    load_plugins(plugin_dirs)

    combos = _expand(raw, check, max_cells_limit() if max_cells is None else max_cells)
    profiles = check.mapping(raw.get("budgets", {}), "budgets")
    for k, profile in profiles.items():
        check.name(k, "budgets")  # a profile's name becomes part of the sweep's name
        check.mapping(profile, f"budgets.{k}", BUDGET_PROFILE_KEYS)
        _settings(profile.get("defaults", {}), f"budgets.{k}.defaults", check, DATASET_SETTING_KEYS)
        _check_rows(*_override_blocks(profile.get("overrides", {}), f"budgets.{k}.overrides", check), f"budgets.{k}.overrides", check)
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
    _check_rows(by_dataset, by_method, "overrides", check)

    resolver = _Resolver(defaults, by_dataset, by_method)
    cells = [_cell(resolver.config(combo, check), name, plugin_dirs) for combo in combos]
    cells = _with_upstreams(cells, resolver, check)
    return Sweep(
        name=name,
        path=path,
        cells=cells,
        executor=_executor(raw.get("executor", {}), check),
        plugin_dirs=plugin_dirs,
        description=description,
        budget=budget,
        references=_references(raw.get("reference", []), profiles, check),
    )


def _cell(config: dict, sweep: str, plugin_dirs: list[str]) -> dict:
    """The cell of a resolved config: its runtime settings moved out of the config, its ids."""
    runtime = {k: config.pop(k) for k in RUNTIME_KEYS}
    runtime["dataset_paths"] = config.pop("dataset_paths")
    runtime["plugin_dirs"] = plugin_dirs
    return {"id": cell_id(config), "training_id": training_id(config), "sweep": sweep, "config": config, "runtime": runtime}


class _Resolver:
    """Resolves (method, dataset, ρ, seed) with the sweep's layers, once per method x
    dataset (x the extra layer of a `needs`): ρ and seed only fill in."""

    def __init__(self, defaults: dict, by_dataset: dict, by_method: dict):
        self.defaults, self.by_dataset, self.by_method = defaults, by_dataset, by_method
        self.resolved: dict[tuple, dict] = {}

    def config(self, combo: dict, check: _Checker, extra: dict | None = None) -> dict:
        key = (combo["method"], combo["dataset"], json.dumps(extra, sort_keys=True) if extra else "")
        if key not in self.resolved:
            by_method = self.by_method.get(combo["method"], {})
            self.resolved[key] = _resolve(combo, self.defaults, self.by_dataset.get(combo["dataset"], {}),
                                          _merge(by_method, extra) if extra else by_method, check)  # fmt: skip
        config = pickle.loads(pickle.dumps(self.resolved[key]))  # a deep copy, 3x faster than copy.deepcopy
        config.update(imbalance=combo["imbalance"], seed=combo["seed"])
        return config


# Keys a method's `needs` may set for its upstream: the axes it shares with the
# dependent cell unless named, and what a sweep may set for a method.
NEEDS_AXES = ("dataset", "imbalance", "seed")
NEEDS_KEYS = NEEDS_AXES + METHOD_SETTING_KEYS + ("options",)
MAX_NEEDS_DEPTH = 8  # a chain of upstreams longer than this is a cycle (A needs B needs A)


def _with_upstreams(cells: list[dict], resolver: _Resolver, check: _Checker) -> list[dict]:
    """The cells, each with its upstream training ids in its config (`needs`), and the
    upstream cells the sweep lacks added after them (`added_for` names the rows that need them)."""
    added: dict[str, dict] = {}  # training id -> an upstream cell the matrix does not have

    def link(cell: dict, chain: tuple[str, ...]) -> dict:
        config = cell["config"]
        needs = _needs_of(config, check)
        if not needs:
            return cell
        if len(chain) >= MAX_NEEDS_DEPTH:
            check.fail("matrix", f"the upstream runs of method {chain[0]!r} form a chain longer than {MAX_NEEDS_DEPTH} "
                       f"({' -> '.join(chain)} -> ...): a method's `needs` must not lead back to itself")  # fmt: skip
        upstream = {}
        for name, need in needs.items():
            up = link(_upstream_cell(cell, name, need, resolver, check), (*chain, need["method"]))
            upstream[name] = up["training_id"]
            entry = added.setdefault(up["training_id"], {**up, "added_for": []})
            if config["method"] not in entry["added_for"]:
                entry["added_for"].append(config["method"])
        config = {**config, "upstream": upstream}
        return {**cell, "config": config, "id": cell_id(config), "training_id": training_id(config)}

    linked = list({c["id"]: c for c in (link(cell, (cell["config"]["method"],)) for cell in cells)}.values())
    trained_by_matrix = {c["training_id"] for c in linked}
    return linked + [c for tid, c in added.items() if tid not in trained_by_matrix]


def _needs_of(config: dict, check: _Checker) -> dict[str, dict]:
    """A row's `Method.needs(config)`, checked: {name: {"method": row, "config": {...}}}."""
    row = config["method"]
    try:
        needs = METHODS.get(row).needs(config)
    except Exception as exc:  # a plugin's bug: one line naming the row, not a traceback
        check.fail("", f"method {row!r}: needs() raised {error_line(exc)}")
    where = f"method {row!r}: needs() returned"
    if not isinstance(needs, dict):
        check.fail("", f"{where} {_type(needs)}; it must return a mapping name -> {{method, config}}")
    for name, need in needs.items():
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            check.fail("", f"{where} the name {shown(name)}; names are letters, digits, '-', '_' or '.'")
        if not isinstance(need, dict) or set(need) - {"method", "config"} or "method" not in need:
            check.fail("", f"{where} {shown(need)} for {name!r}; each entry is {{method: <row>, config: {{...}}}}")
        if not isinstance(need["method"], str) or need["method"] not in METHODS:
            check.fail("", f"{where} for {name!r}: {METHODS.unknown_message(need['method'])}")
        if not isinstance(need.get("config", {}), dict):
            check.fail("", f"{where} for {name!r}: config must be a mapping, got {_type(need['config'])}")
    return needs


def _upstream_cell(cell: dict, name: str, need: dict, resolver: _Resolver, check: _Checker) -> dict:
    """The cell of the training run `name` that `cell` needs: the dependent's dataset,
    imbalance, seed and dataset options unless `need["config"]` says otherwise, its row
    resolved with the sweep's layers for that row, then `need["config"]` merged over them."""
    config = cell["config"]
    row = need["method"]
    within = _Checker(check.path, f"method {config['method']!r} needs {name!r} ({row}): ")
    override = within.mapping(need.get("config", {}), "config", NEEDS_KEYS)
    combo = {"method": row, **{a: config[a] for a in NEEDS_AXES}}
    for axis in NEEDS_AXES:
        if axis in override:
            if isinstance(override[axis], list):
                within.fail(f"config.{axis}", f"must be one value, got {shown(override[axis])}")
            combo[axis] = _axis_values(override[axis], f"config.{axis}", axis, within)[0]
    # Dataset options come from the sweep's settings for the dataset, never a method's:
    # on the same dataset the upstream reads the same data unless `options` says otherwise.
    layer = _settings({k: v for k, v in override.items() if k not in NEEDS_AXES}, "config", within, METHOD_SETTING_KEYS + ("options",))
    upstream = resolver.config(combo, within, layer or None)
    return _cell(upstream, cell["sweep"], cell["runtime"]["plugin_dirs"])


def max_cells_limit() -> int:
    """The most cells a sweep may expand to: $GANBENCH_MAX_CELLS, else MAX_CELLS."""
    text = os.environ.get(MAX_CELLS_ENV, "").strip()
    if not text:
        return MAX_CELLS
    if not (text.isascii() and text.isdigit() and len(text) <= 30) or int(text) < 1:  # '²' is a digit to isdigit
        raise UserError(f"${MAX_CELLS_ENV}={shown(text)}: must be a positive integer (the most cells a sweep may have)")
    return int(text)


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


def _check_rows(by_dataset: dict, by_method: dict, key: str, check: _Checker) -> None:
    """Check what an override block says of each row and dataset it names, whether
    or not the matrix has them (the cells' resolution checks the rest in
    context): a method's hyperparameter names and values, a dataset's metrics.
    A typo for a row not in this matrix (or a budget not used now) is caught too."""
    for row, block in by_method.items():
        method = METHODS.get(row)
        for k in block.get("hp", {}):
            if k not in method.hp:
                known = ", ".join(method.hp) or "none"
                check.fail(f"{key}.method.{row}.hp.{k}", f"method {row!r} has no hyperparameter {shown(k)} (it has: {known})")
        for k, problem in method.hp_problems({**method.hp, **block.get("hp", {})}):
            check.fail(f"{key}.method.{row}.hp.{k}", problem)
    for name, block in by_dataset.items():
        dataset = DATASETS.get(name)
        for i, m in enumerate(block.get("metrics", [])):
            if not METRICS.get(m).applies_to(dataset):
                check.fail(f"{key}.dataset.{name}.metrics[{i}]",
                           f"metric {m!r} does not apply to dataset {name!r} ({METRICS.get(m).requirement})")


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
        else:
            check.ranged(v, where, RANGES[axis])
            if axis == "imbalance":  # 10 and 10.0 are one factor, so they must give one cell id
                values[i] = int(v) if float(v).is_integer() else float(v)
    return values


def _expand(raw: dict, check: _Checker, max_cells: int) -> list[dict]:
    """The cells of matrix + include - exclude, counted before anything is expanded."""
    matrix = check.mapping(raw["matrix"], "matrix", AXES)
    for axis in AXES:
        if axis not in matrix:
            check.fail(f"matrix.{axis}", "is required (a list of values)")
    blocks = [{a: _axis_values(matrix[a], f"matrix.{a}", a, check) for a in AXES}]

    include = raw.get("include", [])
    if not isinstance(include, list):
        check.fail("include", f"must be a list of cells, got {_type(include)}")
    for i, entry in enumerate(include):
        check.mapping(entry, f"include[{i}]", AXES)
        for a in AXES:
            if a not in entry:
                check.fail(f"include[{i}].{a}", "is required: an included cell names all of method, dataset, imbalance, seed")
        blocks.append({a: _axis_values(entry[a], f"include[{i}].{a}", a, check) for a in AXES})

    sizes = [math.prod(len(values) for values in block.values()) for block in blocks]
    if sum(sizes) > max_cells:
        shape = " x ".join(str(len(v)) for v in blocks[0].values())
        extra = f" + {sum(sizes[1:]):,} from include" if len(blocks) > 1 else ""
        check.fail("matrix", f"expands to {sum(sizes):,} cells ({shape}{extra}), more than the limit of {max_cells:,}; "
                   f"split the sweep, or raise the limit with --max-cells N or ${MAX_CELLS_ENV}")  # fmt: skip
    combos = [dict(zip(AXES, values)) for block in blocks for values in itertools.product(*block.values())]

    exclude = raw.get("exclude", [])
    if not isinstance(exclude, list):
        check.fail("exclude", f"must be a list of partial cells, got {_type(exclude)}")
    rules = []
    for i, entry in enumerate(exclude):
        check.mapping(entry, f"exclude[{i}]", AXES)
        if not entry:
            check.fail(f"exclude[{i}]", "is empty: it would exclude every cell")
        rules.append({a: set(_axis_values(v, f"exclude[{i}].{a}", a, check)) for a, v in entry.items()})
    combos = _drop_excluded(combos, rules, unused := [])
    for i in unused:  # not an error (a rule may be kept for a matrix that grows again), but said
        print(f"ganbench: warning: {check.path}: exclude[{i}] matches no cell of the matrix", file=sys.stderr)

    unique = list({json.dumps(c, sort_keys=True): c for c in combos}.values())
    if not unique:
        check.fail("exclude", "excludes every cell of the matrix")
    return unique


def _drop_excluded(combos: list[dict], rules: list[dict[str, set]], unused: list[int] | None = None) -> list[dict]:
    """The combos that no rule matches (a rule matches when each axis it names holds the cell's value).

    Looping over rules for every cell costs cells x rules (100,000 x 1,000 took
    three minutes); instead each axis value gets a bit mask of the rules it
    satisfies (every rule that does not name the axis, plus those listing the
    value), and a cell is excluded when the AND over its four axes is not 0.
    """
    if not rules:
        return combos
    masks = {}
    for a in AXES:
        wildcard = sum(1 << i for i, rule in enumerate(rules) if a not in rule)
        listed: dict[Any, int] = {}
        for i, rule in enumerate(rules):
            for value in rule.get(a, ()):
                listed[value] = listed.get(value, 0) | 1 << i
        masks[a] = (listed, wildcard)
    everyone = (1 << len(rules)) - 1

    def matched(combo: dict) -> int:
        bits = everyone
        for a, (listed, wildcard) in masks.items():
            bits &= listed.get(combo[a], 0) | wildcard
        return bits

    kept, hit = [], 0
    for c in combos:
        bits = matched(c)
        hit |= bits
        if not bits:
            kept.append(c)
    if unused is not None:  # the rules that matched no cell (their bit never set)
        unused.extend(i for i in range(len(rules)) if not hit >> i & 1)
    return kept


def _settings(value: Any, key: str, check: _Checker, allowed: tuple[str, ...]) -> dict:
    """Validate one settings block (defaults or an override)."""
    block = check.mapping(value, key, allowed)
    check.numbers(block, key)  # eval_seed, log_every, checkpoint_every: see RANGES
    if "compile" in block and not isinstance(block["compile"], bool):
        check.fail(f"{key}.compile", f"must be true or false, got {shown(block['compile'])}")
    if "budget" in block:
        check.numbers(check.mapping(block["budget"], f"{key}.budget", tuple(DEFAULT_BUDGET)), f"{key}.budget", "budget.")
        if "sampler" in block["budget"] and block["budget"]["sampler"] not in SAMPLERS:
            check.fail(f"{key}.budget.sampler", f"must be one of {', '.join(SAMPLERS)}, got {shown(block['budget']['sampler'])}")
    if "optimizer" in block:
        opt = check.mapping(block["optimizer"], f"{key}.optimizer", ("name", "lr_g", "lr_d", "betas", "d_steps"))
        if "name" in opt and opt["name"] not in OPTIMIZERS:
            check.fail(f"{key}.optimizer.name", f"must be one of {', '.join(OPTIMIZERS)}, got {shown(opt['name'])}")
        check.numbers(opt, f"{key}.optimizer", "optimizer.")
        if "betas" in opt:
            betas = opt["betas"]
            if not (isinstance(betas, list) and len(betas) == 2 and all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas
            )):
                check.fail(f"{key}.optimizer.betas", f"must be a list of two numbers in [0, 1), got {shown(betas)}")
    if "arch" in block:
        from bench.archs import ARCHS, PAPER  # torch: only where a sweep sets an architecture (bench.sweepcache)

        arch = check.mapping(block["arch"], f"{key}.arch", ("name", "z_dim", "width"))
        if "name" in arch and not (isinstance(arch["name"], str) and (arch["name"] == PAPER or arch["name"] in ARCHS)):
            check.fail(f"{key}.arch.name", ARCHS.unknown_message(arch["name"]) + f" (or {PAPER!r}: the method's paper architecture)")
        check.numbers(arch, f"{key}.arch", "arch.")
    if "metrics" in block:
        metrics = block["metrics"]
        if not isinstance(metrics, list) or not metrics:
            check.fail(f"{key}.metrics", f"must be a non-empty list of metric names, got {shown(metrics)}")
        for i, m in enumerate(metrics):
            if not isinstance(m, str) or m not in METRICS:
                check.fail(f"{key}.metrics[{i}]", METRICS.unknown_message(m))
            if m in metrics[:i]:  # a second name would make another cell id for the same computation
                check.fail(f"{key}.metrics[{i}]", f"repeats metric {m!r} (metrics[{metrics.index(m)}])")
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
        "arch": {},  # resolved below, once the layers have named the architecture
        "metrics": list(dataset.metrics),
        "eval_seed": 0,
        "log_every": 50,
        "checkpoint_every": 500,
        "compile": False,
        "hp": copy.deepcopy({**method.hp, **method.hp_by_dataset.get(combo["dataset"], {})}),
    }
    config = base
    for layer in (defaults, by_dataset, by_method):
        config = _merge(config, layer)
    for k in config["hp"]:
        if k not in method.hp:
            known = ", ".join(method.hp) or "none"
            check.fail(f"overrides.method.{combo['method']}.hp.{k}", f"method {combo['method']!r} has no hyperparameter {shown(k)} (it has: {known})")
    for k, problem in method.hp_problems(config["hp"]):
        check.fail(f"overrides.method.{combo['method']}.hp.{k}", problem)
    if config.get("eval_repeats", 1) == 1:
        config.pop("eval_repeats", None)  # the default stays out of the config: ids from before it existed hold
    for k in method.hp_kept_out_of_id:  # likewise hyperparameters added later, at their default
        if config["hp"].get(k) == method.hp[k]:
            config["hp"].pop(k)
    for k, legacy in method.hp_legacy.items():  # and those whose absence means what results computed before them
        if config["hp"].get(k) == legacy:
            config["hp"].pop(k)
    if config["budget"]["sampler"] == LEGACY_SAMPLER or not method.loop_batches:
        config["budget"].pop("sampler")  # what a config without it means, or a row the loop's batches never reach
    config["arch"] = _resolve_arch(config["arch"], config["hp"], method, dataset, combo, check)
    options, paths = _dataset_options(combo["dataset"], dataset, config.pop("options", {}), by_dataset, check)
    problem = method.dataset_problem(dataset.info())
    if problem:
        check.fail("matrix", f"method {combo['method']!r} on dataset {combo['dataset']!r}: {problem}")
    for name in config["metrics"]:
        metric = METRICS.get(name)
        if not metric.applies_to(dataset):
            check.fail("metrics", f"metric {name!r} does not apply to dataset {combo['dataset']!r} ({metric.requirement})")
        if metric.needs_labels and not method.conditional:
            check.fail("metrics", f"metric {name!r} scores the labels a generator was asked for; row {combo['method']!r} "
                       f"is unconditional (use a conditional row such as cgan or ccgan-svdl, or other metrics)")  # fmt: skip
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
        # A dataset whose protocol changed (its data or its evaluation) bumps `revision`: cells
        # get new ids, and revision 0 stays out of the config so older ids keep their meaning.
        **({"dataset_revision": dataset.revision} if dataset.revision else {}),
        "dataset_paths": paths,
    }


def _resolve_arch(arch: dict, hp: dict, method: type, dataset: type, combo: dict, check: _Checker) -> dict:
    """The cell's architecture: its name (the dataset kind's default, or the
    method's `paper_arch` for `paper`) with that architecture's defaults
    under the values the sweep gave; refused in one line when it cannot
    serve the dataset or the method's settings."""
    from bench.archs import arch_problem, resolve_arch  # torch: only when expanding (bench.sweepcache)

    cell = f"method {combo['method']!r} on dataset {combo['dataset']!r}"
    resolved, problem = resolve_arch(arch, dataset.kind, method.paper_arch, method.conditional)
    if problem is None:
        problem = arch_problem(resolved["name"], dataset.info(), method.conditional)
    if problem:
        check.fail("arch", f"{cell}: {problem}")
    for k, problem in method.arch_problems(resolved, dataset.info(), hp):
        check.fail(f"overrides.method.{combo['method']}.hp.{k}", problem)
    return resolved


def _dataset_options(name: str, dataset: type, options: dict, by_dataset: dict, check: _Checker) -> tuple[dict, dict]:
    """Split a cell's dataset options into (settings for the id, data paths for the runtime).

    Settings equal to the dataset's default are left out, so a dataset that
    gains an option keeps the ids of the cells that do not use it; paths are
    made absolute against the sweep file's folder and never enter the id.
    """
    def where(k: str) -> str:
        return f"{f'overrides.dataset.{name}' if k in by_dataset.get('options', {}) else 'defaults'}.options.{k}"

    for k, problem in dataset.option_problems(options):
        check.fail(where(k), problem)
    settings, paths = {}, {}
    for k, value in options.items():
        if dataset.options[k].path:
            paths[k] = str(check.folder(value, where(k)))
            if os.path.exists(paths[k]) and not os.path.isdir(paths[k]):  # a file, a FIFO, /dev/zero: never a data folder
                check.fail(where(k), f"{shown(paths[k], 200, quote=False)} is not a folder; give the folder that holds the data files")
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
        rho = check.ranged(entry["imbalance"], f"{key}.imbalance", RANGES["imbalance"])
        value = check.ranged(entry["value"], f"{key}.value", Range(-math.inf, math.inf, integer=False))
        if not math.isfinite(value):
            check.fail(f"{key}.value", f"must be a finite number, got {shown(value)}")
        metric, dataset = METRICS.get(entry["metric"]), DATASETS.get(entry["dataset"])
        if not metric.applies_to(dataset):
            check.fail(f"{key}.metric", f"metric {entry['metric']!r} does not apply to dataset {entry['dataset']!r} "
                       f"({metric.requirement})")  # fmt: skip
        if not isinstance(entry["source"], str) or not entry["source"].strip():
            check.fail(f"{key}.source", "must name where the number is printed (paper, table, setting)")
        if "budget" in entry and not (isinstance(entry["budget"], str) and entry["budget"] in profiles):
            known = ", ".join(map(str, profiles)) or "none (the sweep has no `budgets:` section)"
            check.fail(f"{key}.budget", f"no budget profile {shown(entry['budget'])}; the sweep has: {known}")
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
        check.fail("executor.name", f"must be one of {', '.join(EXECUTORS)}, got {shown(out['name'])}")
    check.numbers(out, "executor", "executor.")
    profile = out.get("profile")
    if "profile" in out and not (isinstance(profile, str) and len(profile) <= MAX_NAME_LEN and NAME_RE.fullmatch(profile)):
        check.fail("executor.profile", f"must name a cluster profile slurm/NAME.yaml, got {shown(profile)} "
                   f"(NAME: at most {MAX_NAME_LEN} letters, digits, '-', '_' or '.')")  # fmt: skip
    return out
