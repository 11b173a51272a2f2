"""SLURM dispatch: cluster profiles, job arrays, job state per cell, cancel.

A profile is a YAML file in slurm/ (``slurm/NAME.yaml``; see
slurm/example.yaml) holding the sbatch settings of one cluster. A sweep names
one (``executor: {name: slurm, profile: NAME}``) and the command line can
replace any field (``--set time_min=120``).

Missing cells go out as submitit job arrays, one cell per array task. The
job id of each cell is stored next to it (``<cell dir>/slurm.json``), so
`cell_statuses` can tell a cell waiting in the SLURM queue ("queued") or
requeued after a preemption ("preempted") from one never submitted
("pending"), and re-submitting skips both. Every task runs
`bench.runner.CellRunner`, which checkpoints and requeues itself on
preemption or time limit.
"""

from __future__ import annotations

import difflib
import fcntl
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from bench.errors import UserError, shown
from bench.registry import REPO_ROOT
from bench.store import Store, write_json
from bench.threads import thread_env
from bench.yamlsafe import load_file, load_text

JOB_FILE = "slurm.json"
PREEMPTED_FILE = "preempted.json"
PROFILE_DIRS = (Path("slurm"), REPO_ROOT / "slurm")
MAX_ARRAY = 1000  # SLURM's default MaxArraySize is 1001
POLL_S = 3.0

# field -> (type check, description for the error message)
PROFILE_FIELDS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "partition": (str, "a partition name"),
    "account": (str, "an account name"),
    "qos": (str, "a QOS name"),
    "gpus_per_task": (int, "an integer >= 0"),
    "cpus_per_task": (int, "an integer >= 1"),
    "mem_gb": ((int, float), "a number of GB > 0"),
    "time_min": (int, "a time limit in minutes >= 1"),
    "array_parallelism": (int, "an integer >= 1 (array tasks running at once, sbatch --array=...%N)"),
    "signal_delay_s": (int, "seconds >= 0 between the checkpoint signal and the time limit"),
    "max_timeouts": (int, "an integer >= 0 (requeues after hitting the time limit)"),
    "sbatch": (dict, "a mapping of extra sbatch options, e.g. {constraint: a100}"),
    "setup": (list, "a list of shell lines run before the job, e.g. ['module load cuda']"),
}
MINIMUM = {"gpus_per_task": 0, "cpus_per_task": 1, "time_min": 1, "array_parallelism": 1, "signal_delay_s": 0, "max_timeouts": 0}
DEFAULTS = {"cpus_per_task": 1, "time_min": 60, "array_parallelism": 64, "signal_delay_s": 90, "max_timeouts": 3}

# SLURM job states, grouped by what they mean for a cell without a result.
ACTIVE_RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING"}
ACTIVE_WAITING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED", "RESIZING", "SPECIAL_EXIT", "PREEMPTED"}
JOB_FAILED = {"FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE"}
ACTIVE = ("queued", "running", "preempted")


# ---------------------------------------------------------------- profiles


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
        ok = value >= MINIMUM[key]
    if ok and key == "mem_gb":
        ok = value > 0
    if ok and key == "setup":
        ok = all(isinstance(line, str) for line in value)
    if ok and key == "sbatch":
        ok = all(isinstance(k, str) for k in value)
    if not ok:
        raise UserError(f"{prefix}: must be {description}, got {value!r}")


def make_executor(profile: dict, folder: Path, job_name: str):
    import submitit

    if shutil.which("sbatch") is None:
        raise UserError(f"{profile['path']}: no `sbatch` on PATH: run on a SLURM login node "
                        "(or start the test cluster: sudo slurm/start-test-cluster.sh)")  # fmt: skip
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=profile["max_timeouts"])
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
    # The task's OpenMP and BLAS pools keep to its cpus_per_task (bench.threads); the profile's lines may change that.
    params["setup"] = [f"export {k}={v}" for k, v in thread_env(profile["cpus_per_task"]).items()]
    params["setup"] += list(profile.get("setup", []))
    executor.update_parameters(**params)
    return executor


# ---------------------------------------------------------------- job state


def job_record(store: Store, cell_id: str) -> dict | None:
    import json

    path = store.cell_dir(cell_id) / JOB_FILE
    return json.loads(path.read_text()) if path.exists() else None


def job_name(store: Store) -> str:
    """The SLURM job name of a sweep's cells: the sweep and a tag of its results folder."""
    import hashlib

    return f"ganbench-{store.sweep}-{hashlib.sha1(str(store.root).encode()).hexdigest()[:6]}"


def query_states(job_ids: list[str], expected_name: str) -> dict[str, str] | None:
    """SLURM state of each job id (``123_4`` for array tasks), or None without a SLURM client.

    squeue knows the queued and running jobs; sacct (accounting) the finished ones.
    A job of another name under the same id (ids restart when a cluster is
    reset) is not ours and is left out.
    """
    if not job_ids or shutil.which("squeue") is None:
        return None
    wanted = set(job_ids)
    states: dict[str, str] = {}
    arrays = sorted({j.split("_")[0] for j in wanted})
    out = _run(["squeue", "-h", "-r", "-o", "%i|%T|%j", "-j", ",".join(arrays)])
    for line in out.splitlines():
        jid, state, name = (line.split("|", 2) + ["", ""])[:3]
        if jid in wanted and name == expected_name:
            states[jid] = state.strip()
    missing = sorted({j.split("_")[0] for j in wanted - set(states)})
    if missing and shutil.which("sacct"):
        out = _run(["sacct", "-n", "-P", "-X", "-o", "JobID,State,JobName", "-j", ",".join(missing)])
        for line in out.splitlines():
            jid, state, name = (line.split("|", 2) + ["", ""])[:3]
            if name != expected_name:
                continue
            state = state.split()[0] if state.strip() else "UNKNOWN"  # "CANCELLED by 0" -> CANCELLED
            for one in _expand_job_id(jid):
                if one in wanted and one not in states:
                    states[one] = state
    return states


def _expand_job_id(text: str) -> list[str]:
    """sacct's ids: "12", "12_3", or a range of array tasks that never started, "12_[0-2%2]"."""
    from submitit.slurm.slurm import read_job_id

    try:
        parts = read_job_id(text)
    except ValueError:
        return []
    out = []
    for part in parts:
        if len(part) == 3:
            out += [f"{part[0]}_{i}" for i in range(int(part[1]), int(part[2]) + 1)]
        else:
            out.append("_".join(part))
    return out


def _run(command: list[str]) -> str:
    # squeue -j exits non-zero when none of the ids is still known: that is an empty answer.
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    return proc.stdout


def cell_statuses(store: Store, cells: list[dict]) -> dict[str, str]:
    """Status of each cell: a result's status, or running / queued / preempted /
    failed (the job died without a result) / pending (nothing submitted or queued)."""
    return {cid: status for cid, (status, _) in cell_states(store, cells).items()}


def cell_states(store: Store, cells: list[dict]) -> dict[str, tuple[str, str]]:
    """Like `cell_statuses`, with a note per cell (its job id and SLURM state)."""
    out: dict[str, tuple[str, str]] = {}
    records: dict[str, dict] = {}
    for cell in cells:
        cid = cell["id"]
        status = store.status(cid)
        out[cid] = (status, "")
        if status in ("pending", "running"):
            record = job_record(store, cid)
            if record is not None:
                records[cid] = record
    if not records:
        return out
    states = query_states([r["job_id"] for r in records.values()], job_name(store))
    if states is None:
        return {cid: (s, "no SLURM client here to ask about the job" if cid in records else n)
                for cid, (s, n) in out.items()}  # fmt: skip
    for cid, record in records.items():
        job_id = record["job_id"]
        state = states.get(job_id, "UNKNOWN")
        note = f"job {job_id} {state}"
        if state in ACTIVE_RUNNING:
            out[cid] = ("running", note)
        elif state in ACTIVE_WAITING:
            preempted = (store.cell_dir(cid) / PREEMPTED_FILE).exists() or state in {"REQUEUED", "PREEMPTED"}
            out[cid] = ("preempted" if preempted else "queued", note)
        else:
            # Finished: the result may have appeared since we looked.
            status = store.status(cid)
            if status == "pending" and state in JOB_FAILED:
                status = "failed"
            out[cid] = (status, note if status != "done" else "")
    return out


# ---------------------------------------------------------------- submit, follow, cancel


@contextmanager
def submission_lock(store: Store) -> Iterator[None]:
    """One submitter per sweep at a time, so two `ganbench sweep` never queue a cell twice."""
    store.runs_dir.mkdir(parents=True, exist_ok=True)
    with open(store.runs_dir / ".submit.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def submit(cells: list[dict], store: Store, profile: dict, todo_status: tuple[str, ...]) -> list[str]:
    """Queue the cells that are still to run as job arrays; returns their job ids."""
    from submitit.core.utils import FailedSubmissionError

    from bench.runner import CellRunner

    folder = store.runs_dir / "_submitit"
    with submission_lock(store):
        # Look again under the lock: another submitter may have queued some meanwhile.
        statuses = cell_statuses(store, cells)
        cells = [c for c in cells if statuses[c["id"]] in todo_status]
        if not cells:
            return []
        executor = make_executor(profile, folder, job_name=job_name(store))
        threads = profile["cpus_per_task"]
        cells = [{**c, "runtime": {**c["runtime"], "threads": threads}} for c in cells]
        job_ids = []
        for start in range(0, len(cells), MAX_ARRAY):
            chunk = cells[start:start + MAX_ARRAY]
            try:
                with executor.batch():
                    jobs = [executor.submit(CellRunner(), [cell]) for cell in chunk]
            except (FailedSubmissionError, subprocess.CalledProcessError) as exc:
                detail = " ".join(str(getattr(exc, "stderr", b"") or exc).split())
                raise UserError(f"{profile['path']}: sbatch refused the job array: {detail[-300:]}") from None
            now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            for job, cell in zip(jobs, chunk):
                write_json(store.cell_dir(cell["id"]) / JOB_FILE, {
                    "job_id": job.job_id, "profile": profile["name"], "submitted_at": now,
                    "submitit_folder": str(folder),
                })  # fmt: skip
                (store.cell_dir(cell["id"]) / PREEMPTED_FILE).unlink(missing_ok=True)
                job_ids.append(job.job_id)
        return job_ids


def follow(cells: list[dict], store: Store, poll_s: float = POLL_S) -> list[str]:
    """Show progress until no cell is queued, running or preempted; returns job failures."""
    from bench.dispatch import Progress

    states: dict[str, tuple[str, str]] = {}
    progress = Progress(store, [c["id"] for c in cells], statuses=lambda: {i: s for i, (s, _) in states.items()})
    try:
        while True:
            states = cell_states(store, cells)
            progress.update()
            if not any(s in ACTIVE for s, _ in states.values()):
                break
            time.sleep(poll_s)
    finally:
        progress.close()
    return [f"cell {cid}: {note}" for cid, (status, note) in states.items() if status == "failed" and note]


def dispatch_slurm(cells: list[dict], store: Store, profile: dict, todo_status: tuple[str, ...], wait: bool) -> list[str]:
    """Submit the cells, then (with wait) follow them to the end; returns job failures."""
    job_ids = submit(cells, store, profile, todo_status)
    arrays = sorted({j.split("_")[0] for j in job_ids})
    print(f"submitted {len(job_ids)} cells as SLURM job array{'s' if len(arrays) != 1 else ''} "
          f"{', '.join(arrays) or '(none)'} (profile {profile['name']})", file=sys.stderr)  # fmt: skip
    if not wait:
        return []
    try:
        return follow(cells, store)
    except KeyboardInterrupt:
        print("ganbench: stopped following; the jobs stay queued on SLURM "
              "(`ganbench status` shows them, `ganbench cancel` cancels them)", file=sys.stderr)  # fmt: skip
        raise SystemExit(130) from None


def cancel(store: Store, cells: list[dict]) -> list[str]:
    """scancel the jobs of every queued, running or preempted cell; returns their job ids."""
    states = cell_states(store, cells)
    job_ids = [job_record(store, cid)["job_id"] for cid, (s, _) in states.items() if s in ACTIVE]
    if job_ids:
        proc = subprocess.run(["scancel", *job_ids], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise UserError(f"scancel {' '.join(job_ids)}: {' '.join(proc.stderr.split()) or 'failed'}")
    return job_ids
