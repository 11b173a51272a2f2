"""SLURM cluster profiles: slurm/NAME.yaml, validated strictly, and the sbatch settings they become.

A profile holds the sbatch settings of one cluster (see slurm/example.yaml).
A sweep names one (``executor: {name: slurm, profile: NAME}``) and the
command line can replace any field (``--set time_min=120``).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from bench.errors import UserError, shown
from bench.registry import BUILTIN_ROOT
from bench.threads import thread_env
from bench.yamlsafe import load_file, load_text

PROFILE_DIRS = (Path("slurm"), BUILTIN_ROOT / "slurm")

# field -> (type check, description for the error message)
PROFILE_FIELDS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "partition": (str, "a partition name"),
    "account": (str, "an account name"),
    "qos": (str, "a QOS name"),
    "gpus_per_task": (int, "an integer >= 0"),
    "cpus_per_task": (int, "an integer >= 1"),
    "cells_per_gpu": (int, "an integer from 1 to 64 (cells run at once on each GPU of a task, each its own process)"),
    "mem_gb": ((int, float), "a number of GB > 0"),
    "time_min": (int, "a time limit in minutes >= 1"),
    "array_parallelism": (int, "an integer >= 1 (array tasks running at once, sbatch --array=...%N)"),
    "signal_delay_s": (int, "seconds >= 0 between the checkpoint signal and the time limit"),
    "max_timeouts": (int, "an integer >= 0 (requeues after hitting the time limit)"),
    "sbatch": (dict, "a mapping of extra sbatch options to a text or a number, e.g. {constraint: a100}"),
    "setup": (list, "a list of shell lines run before the job, e.g. ['module load cuda']"),
}
MINIMUM = {"gpus_per_task": 0, "cpus_per_task": 1, "cells_per_gpu": 1, "time_min": 1, "array_parallelism": 1,
           "signal_delay_s": 0, "max_timeouts": 0}  # fmt: skip
MAX_MEM_GB = 1 << 20  # 1 PB: above any node
MAXIMUM = {"cells_per_gpu": 64, "time_min": 10 ** 7, "array_parallelism": 10 ** 6, "signal_delay_s": 10 ** 7,
           "max_timeouts": 10 ** 6, "gpus_per_task": 1024, "cpus_per_task": 1 << 20}  # fmt: skip
# cells_per_gpu: 16 packed cells already saturate an H100 (issue 14); more only thrash. The other
# maxima only keep sbatch from refusing (and Python from overflowing on) numbers no cluster takes.
DEFAULTS = {"cpus_per_task": 1, "cells_per_gpu": 1, "time_min": 60, "array_parallelism": 64, "signal_delay_s": 90,
            "max_timeouts": 3}  # fmt: skip


def profile_path(name: str) -> Path:
    """slurm/NAME.yaml in the current folder or the repository, or a path to a .yaml file."""
    if name.endswith((".yaml", ".yml")) or os.sep in name:
        path = Path(name)
        if not os.path.isfile(path):  # False, not an OSError, for a name too long for the filesystem
            raise UserError(f"{shown(name, 200, quote=False)}: no such profile file")
        return path
    if len(name) > 100 or not name.isprintable():
        raise UserError(f"--profile {shown(name)}: a profile name is at most 100 printable characters, got {len(name):,}")
    for folder in PROFILE_DIRS:
        path = folder / f"{name}.yaml"
        if os.path.isfile(path):
            return path
    known = sorted({p.stem for folder in PROFILE_DIRS if folder.is_dir() for p in folder.glob("*.yaml")})
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"available: {', '.join(known) or 'none'}"
    raise UserError(f"--profile {name}: no profile slurm/{name}.yaml; {hint}")


def load_profile(name: str, overrides: list[str] = ()) -> dict:
    """Read and validate a profile, then apply FIELD=VALUE overrides (values are YAML)."""
    path = profile_path(name)
    raw = load_file(path, "profile")  # the sweep files' strict, bounded YAML (bench.yamlsafe)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a profile must be a mapping of fields ({', '.join(PROFILE_FIELDS)})")
    profile = {**DEFAULTS}
    for key, value in raw.items():
        _check_field(f"{path}: {key}", key, value)
        profile[key] = value
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item}: must be FIELD=VALUE, e.g. --set time_min=120")
        try:
            value = load_text(text, f"--set {item}") if text else ""
        except UserError:  # not YAML: the text itself, e.g. --set sbatch.comment='a: b: c'
            value = text
        if key.startswith("sbatch."):  # one extra sbatch option: --set sbatch.constraint=a100
            profile["sbatch"] = {**profile.get("sbatch", {}), key[len("sbatch."):]: value}
            continue
        _check_field(f"--set {item}", key, value)
        profile[key] = value
    if profile["cpus_per_task"] < cells_per_task(profile):
        raise UserError(f"{path}: cpus_per_task: {profile['cpus_per_task']} cores cannot be shared by the "
                        f"{cells_per_task(profile)} cells a task runs at once (cells_per_gpu {profile['cells_per_gpu']} "
                        f"x {max(1, profile.get('gpus_per_task') or 0)} GPUs); give each cell at least one core")  # fmt: skip
    profile["name"] = path.stem
    profile["path"] = str(path)
    return profile


def _check_field(prefix: str, key: Any, value: Any) -> None:
    if key not in PROFILE_FIELDS:
        close = difflib.get_close_matches(str(key), PROFILE_FIELDS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(PROFILE_FIELDS)}"
        raise UserError(f"{prefix}: unknown profile field {key!r}; {hint}")
    kind, description = PROFILE_FIELDS[key]
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if ok and key in MINIMUM:
        ok = MINIMUM[key] <= value <= MAXIMUM.get(key, value)
    if ok and key == "mem_gb":  # finite and no larger than any node (sbatch refuses more; .inf cannot be written)
        ok = 0 < value <= MAX_MEM_GB
    if ok and key == "setup":
        ok = all(isinstance(line, str) for line in value)
    if ok and key == "sbatch":  # each becomes one `#SBATCH --key=value` line
        ok = all(isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in value.items())
    if not ok:
        most = MAX_MEM_GB if key == "mem_gb" else MAXIMUM.get(key) if key != "cells_per_gpu" else None
        over = most is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and not value <= most
        at_most = f" of at most {most:,}" if over else ""
        raise UserError(f"{prefix}: must be {description}{at_most}, got {shown(value)}")


def cells_per_task(profile: dict) -> int:
    """Cells one array task runs at once: `cells_per_gpu` on each of its GPUs (on a CPU-only task, `cells_per_gpu`)."""
    return profile["cells_per_gpu"] * max(1, profile.get("gpus_per_task") or 0)


def threads_per_cell(profile: dict) -> int:
    """Each packed cell's share of the task's cores."""
    return max(1, profile["cpus_per_task"] // cells_per_task(profile))


def sbatch_parameters(profile: dict, job_name: str) -> dict[str, Any]:
    """submitit's SlurmExecutor parameters for the profile (the #SBATCH lines and the job's setup)."""
    params: dict[str, Any] = {
        "job_name": job_name,
        "time": profile["time_min"],
        "cpus_per_task": profile["cpus_per_task"],
        "array_parallelism": profile["array_parallelism"],
        "signal_delay_s": profile["signal_delay_s"],
        "nodes": 1,
        "ntasks_per_node": 1,
        # A preempted task is requeued with `scontrol requeue`, which needs a requeueable job.
        "additional_parameters": {"requeue": True, **profile.get("sbatch", {})},
    }
    for key in ("partition", "account", "qos"):
        if profile.get(key):
            params[key] = profile[key]
    if profile.get("gpus_per_task"):
        params["gpus_per_task"] = profile["gpus_per_task"]
    if profile.get("mem_gb"):
        gb = profile["mem_gb"]
        params["mem"] = f"{int(gb)}GB" if float(gb).is_integer() else f"{int(gb * 1024)}MB"
    # Each cell's OpenMP and BLAS pools keep to its share of cpus_per_task (bench.threads); the profile's lines may change that.
    params["setup"] = [f"export {k}={v}" for k, v in thread_env(threads_per_cell(profile)).items()]
    params["setup"] += list(profile.get("setup", []))
    return params
