"""The SLURM executor: job arrays in dependency order, job state per cell, cancel.

Cells go out as submitit job arrays through the profile's settings
(bench.executors.profiles), one array task per cell, or per pack of
`cells_per_gpu` x `gpus_per_task` cells run at once (bench.executors.pack).
A cell that needs upstream training runs (`Method.needs`) goes into an
array submitted with ``--dependency=afterok:<the tasks that train them>``
(and ``--kill-on-invalid-dep=yes``, so a dependent of a task that died is
cancelled rather than left queued for ever); dependents that wait for the
same tasks share one array. A task whose upstream trained but failed still
exits 0, so its dependents start and find their upstream failed: the
runner leaves them `blocked`, never `failed`.

The job id of each cell is stored next to it (``<cell dir>/slurm.json``), so
`job_states` can tell a cell waiting in the SLURM queue ("queued") or
requeued after a preemption ("preempted") from one never submitted
("pending"), and re-submitting skips both. Every task runs
`bench.executors.task.CellRunner`, which checkpoints and requeues itself on
preemption or time limit.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from bench.errors import UserError
from bench.executors.base import ACTIVE, Executor, cell_states, counts, levels, to_run, upstream_ids, with_threads
from bench.executors.profiles import cells_per_task, sbatch_parameters, threads_per_cell
from bench.progress import Progress
from bench.store import Damaged, Store, read_json, write_json

JOB_FILE = "slurm.json"
PREEMPTED_FILE = "preempted.json"
MAX_ARRAY = 1000  # SLURM's default MaxArraySize is 1001
POLL_S = 3.0

# SLURM job states, grouped by what they mean for a cell without a result.
ACTIVE_RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING"}
ACTIVE_WAITING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED", "RESIZING", "SPECIAL_EXIT", "PREEMPTED"}
JOB_FAILED = {"FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE"}


class SlurmExecutor(Executor):
    name = "slurm"

    def __init__(self, store: Store, cells: list[dict], profile: dict, todo_status: tuple[str, ...]):
        super().__init__(store, cells)
        self.profile = profile
        self.todo_status = todo_status  # what to submit when looked at again under the submission lock

    def run(self, todo: list[dict], wait: bool = True) -> list[str]:
        """Submit the cells, then (with wait) follow them to the end; returns job failures."""
        job_ids = self.submit(todo)
        arrays = sorted({j.split("_")[0] for j in job_ids}, key=int)
        print(f"submitted {len(job_ids)} cells as SLURM job array{'s' if len(arrays) != 1 else ''} "
              f"{', '.join(arrays) or '(none)'} (profile {self.profile['name']})", file=sys.stderr)  # fmt: skip
        if not wait:
            return []
        try:
            return follow(self.store, todo)
        except KeyboardInterrupt:
            print("ganbench: stopped following; the jobs stay queued on SLURM "
                  "(`ganbench status` shows them, `ganbench cancel` cancels them)", file=sys.stderr)  # fmt: skip
            raise SystemExit(130) from None

    def submit(self, todo: list[dict]) -> list[str]:
        """Queue the cells that are still to run as job arrays in dependency order; returns their job ids."""
        from submitit.core.utils import FailedJobError, FailedSubmissionError

        from bench.executors.task import CellRunner

        store, profile = self.store, self.profile
        with submission_lock(store):
            # Look again under the lock: another submitter may have queued some meanwhile.
            states = cell_states(store, self.cells)
            wanted = {c["id"] for c in to_run(store, self.cells, states, self.todo_status)}
            todo = [c for c in todo if c["id"] in wanted]
            if not todo:
                return []
            executor = make_executor(profile, store.runs_dir / "_submitit", job_name(store))
            base = dict(executor.parameters["additional_parameters"])
            threads, per_task = threads_per_cell(profile), cells_per_task(profile)
            todo = [with_threads(c, threads, "the profile's cpus per cell") for c in todo]
            # The tasks that will train each training id: those queued before, then those submitted here.
            jobs_of: dict[str, list[str]] = {}
            for cell in self.cells:
                if states[cell["id"]][0] in ACTIVE:
                    jobs_of.setdefault(cell["training_id"], []).append(job_record(store, cell["id"])["job_id"])
            submitted = []
            for level in levels(todo):
                for after, group in _by_dependency(level, jobs_of, store).items():
                    dependency = {"dependency": "afterok:" + ":".join(after), "kill-on-invalid-dep": "yes"} if after else {}
                    executor.update_parameters(additional_parameters={**base, **dependency})
                    packs = [group[i:i + per_task] for i in range(0, len(group), per_task)]
                    for start in range(0, len(packs), MAX_ARRAY):
                        chunk = packs[start:start + MAX_ARRAY]
                        said = io.StringIO()  # submitit prints sbatch's refusal too: it goes into the one line
                        try:
                            with contextlib.redirect_stderr(said), executor.batch():  # batch() submits as it ends
                                jobs = [executor.submit(CellRunner(), pack) for pack in chunk]
                        except (FailedJobError, FailedSubmissionError, subprocess.CalledProcessError) as exc:
                            # sbatch exiting non-zero raises FailedJobError (its stderr as the message)
                            detail = " ".join((str(getattr(exc, "stderr", b"") or exc) or said.getvalue()).split())
                            raise UserError(f"{profile['path']}: sbatch refused the job array: {detail[-300:]}") from None
                        for job, pack in zip(jobs, chunk):
                            for cell in pack:
                                _note_submitted(store, cell, job.job_id, profile["name"], executor.folder)
                                jobs_of.setdefault(cell["training_id"], []).append(job.job_id)
                                submitted.append(job.job_id)
            return submitted

    @classmethod
    def job_states(cls, store: Store, cells: list[dict], states: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
        """For cells without a result that have a SLURM job: running / queued /
        preempted while it lasts; after it, the store's answer again, or failed
        when the job failed and left no result (out of memory, a node failure)."""
        records = {}
        for cell in cells:
            if states[cell["id"]][0] in ("pending", "running", "blocked"):
                record = job_record(store, cell["id"])
                if record is not None:
                    records[cell["id"]] = record
        if not records:
            return {}
        slurm = query_states([r["job_id"] for r in records.values()], job_name(store))
        if slurm is None:
            return {cid: (states[cid][0], "no SLURM client here to ask about the job") for cid in records}
        by_id = {c["id"]: c for c in cells}
        out = {}
        for cid, record in records.items():
            job_id = record["job_id"]
            state = slurm.get(job_id, "UNKNOWN")
            note = f"job {job_id} {state}"
            if state in ACTIVE_RUNNING:
                out[cid] = ("running", note)
            elif state in ACTIVE_WAITING:
                preempted = (store.cell_dir(cid) / PREEMPTED_FILE).exists() or state in {"REQUEUED", "PREEMPTED"}
                waits = states[cid][1] if states[cid][0] == "blocked" else ""
                out[cid] = ("preempted" if preempted else "queued", f"{note}; {waits}" if waits else note)
            else:
                # Finished: the result may have appeared since we looked.
                status, why = store.state(by_id[cid])
                if status == "pending" and state in JOB_FAILED:
                    status = "failed"
                out[cid] = (status, "; ".join(x for x in (note if status != "done" else "", why) if x))
        return out

    @classmethod
    def cancel(cls, store: Store, cells: list[dict]) -> list[str]:
        """scancel the jobs of every queued, running or preempted cell; returns their job ids."""
        states = cell_states(store, cells)
        job_ids = sorted({job_record(store, cid)["job_id"] for cid, (s, _) in states.items() if s in ACTIVE})
        if job_ids:
            proc = subprocess.run(["scancel", *job_ids], capture_output=True, text=True, timeout=60)
            if proc.returncode != 0:
                raise UserError(f"scancel {' '.join(job_ids)}: {' '.join(proc.stderr.split()) or 'failed'}")
        return job_ids


def _by_dependency(level: list[dict], jobs_of: dict[str, list[str]], store: Store) -> dict[tuple[str, ...], list[dict]]:
    """The cells of one level grouped by the tasks they must wait for (afterok):
    those that train their upstream runs, unless a run is trained already."""
    groups: dict[tuple[str, ...], list[dict]] = {}
    for cell in level:
        after = sorted({j for t in upstream_ids(cell) if not store.is_trained(t) for j in jobs_of.get(t, ())})
        groups.setdefault(tuple(after), []).append(cell)
    return groups


def _note_submitted(store: Store, cell: dict, job_id: str, profile: str, folder: Path) -> None:
    write_json(store.cell_dir(cell["id"]) / JOB_FILE, {"job_id": job_id, "profile": profile, "submitit_folder": str(folder),
                                                       "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})  # fmt: skip
    (store.cell_dir(cell["id"]) / PREEMPTED_FILE).unlink(missing_ok=True)


def make_executor(profile: dict, folder: Path, job_name: str):
    import submitit

    for command in ("sbatch", "srun"):  # submitit needs both (it raises a RuntimeError without srun)
        if shutil.which(command) is None:
            raise UserError(f"{profile['path']}: no `{command}` on PATH: run on a SLURM login node "
                            "(or start the test cluster, as root: slurm/start-test-cluster.sh)")  # fmt: skip
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=profile["max_timeouts"])
    executor.update_parameters(**sbatch_parameters(profile, job_name))
    return executor


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


def follow(store: Store, cells: list[dict], poll_s: float = POLL_S) -> list[str]:
    """Show progress until no cell is queued, running or preempted; returns job failures."""
    progress = Progress(len(cells))
    states: dict[str, tuple[str, str]] = {}
    try:
        while True:
            states = cell_states(store, cells)
            progress.update(counts(states))
            if not any(s in ACTIVE for s, _ in states.values()):
                break
            time.sleep(poll_s)
    finally:
        progress.close(counts(states))
    return [f"cell {cid}: {note}" for cid, (status, note) in states.items() if status == "failed" and note]


# ---------------------------------------------------------------- job state


def job_record(store: Store, cell_id: str) -> dict | None:
    """The cell's slurm.json ({"job_id", ...}), or None: absent, or damaged (the cell
    is then pending, and a new submission writes the file anew)."""
    try:
        record = read_json(store.cell_dir(cell_id) / JOB_FILE, "job_id")
    except Damaged:
        return None
    return record if record is not None and isinstance(record["job_id"], str) else None


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
