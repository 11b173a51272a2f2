"""A damaged store never blocks a sweep: an unreadable file makes its one cell
`corrupt`; status, report and sweep go on with the others; the sweep moves the
file aside (never deleting it) and redoes what it held. Results are written
with the process's umask; a results folder that cannot be written is one line."""

import json
import os
import resource
import shutil
import stat
import subprocess
import sys

import pytest

from bench.spec import load_sweep
from bench.store import Store
from conftest import ganbench

SWEEP = """
name: dmg
matrix: {method: [gan], dataset: [ring], imbalance: [1], seed: [0, 1]}
defaults: {budget: {steps: 20, batch_size: 16, eval_samples: 100}, log_every: 5, checkpoint_every: 5}
executor: {name: debug}
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished two-cell sweep, run with umask 022."""
    root = tmp_path_factory.mktemp("finished")
    (root / "s.yaml").write_text(SWEEP)
    before = os.umask(0o022)
    try:
        ganbench("sweep", "s.yaml", cwd=root, check=0)
    finally:
        os.umask(before)
    return root


def _copy(finished, tmp_path):
    shutil.copytree(finished, tmp_path / "w")
    root = tmp_path / "w"
    cells = load_sweep(root / "s.yaml").cells
    return root, Store(root / "results", "dmg"), cells


def test_results_are_readable_by_the_group(finished):
    runs = finished / "results/runs/dmg"
    files = [p for p in (finished / "results").rglob("*") if p.is_file() and "_submitit" not in p.parts]
    names = {p.name for p in files}
    assert {"result.json", "cell.json", "samples.png", "train.json", "checkpoint.pt", "checkpoint.prev.pt",
            "generator.pt", "losses.csv", "leaderboard.md", "ring.png"} <= names  # fmt: skip
    modes = {str(p.relative_to(runs.parent.parent)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files if p.name != "lock"}
    assert set(modes.values()) == {"0o644"}, modes


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _unfinish(store, cell):
    """The state of a cell killed after its training's last checkpoint."""
    (store.cell_dir(cell["id"]) / "result.json").unlink()
    train = store.training_dir(cell["training_id"])
    (train / "train.json").unlink()
    (train / "generator.pt").unlink()


CASES = {
    # name: (damage, the file named by `status`, what the rerun record says)
    "result-not-json": (lambda s, c: (s.cell_dir(c["id"]) / "result.json").write_text("{garbage"),
                        "result.json: not valid JSON", None),
    "result-not-utf8": (lambda s, c: (s.cell_dir(c["id"]) / "result.json").write_bytes(b"\xff\xfe\x00bad"),
                        "result.json: not UTF-8 text", None),
    "cell-json-empty": (lambda s, c: ((s.cell_dir(c["id"]) / "result.json").unlink(),
                                      (s.cell_dir(c["id"]) / "cell.json").write_text("")),
                        "cell.json: empty", None),
    "checkpoint-truncated": (lambda s, c: (_unfinish(s, c), _truncate(s.training_dir(c["training_id"]) / "checkpoint.pt")),
                             "checkpoint.pt: truncated", "checkpoint.prev.pt"),
    "both-checkpoints-truncated": (lambda s, c: (_unfinish(s, c), _truncate(s.training_dir(c["training_id"]) / "checkpoint.pt"),
                                                 _truncate(s.training_dir(c["training_id"]) / "checkpoint.prev.pt")),
                                   "checkpoint.pt: truncated", "scratch"),
    "generator-truncated": (lambda s, c: ((s.cell_dir(c["id"]) / "result.json").unlink(),
                                          _truncate(s.training_dir(c["training_id"]) / "generator.pt")),
                            "generator.pt: truncated", "checkpoint.pt"),
    "train-json-not-json": (lambda s, c: ((s.cell_dir(c["id"]) / "result.json").unlink(),
                                          (s.training_dir(c["training_id"]) / "train.json").write_text("not json")),
                            "train.json: not valid JSON", "checkpoint.pt"),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_a_damaged_file_is_one_corrupt_cell_and_the_sweep_redoes_it(finished, tmp_path, case):
    damage, named, resumed_from = CASES[case]
    root, store, (hurt, other) = _copy(finished, tmp_path)
    original = store.result(hurt["id"]) or json.loads((finished / "results/runs/dmg" / hurt["id"] / "result.json").read_text())
    other_stamp = (store.cell_dir(other["id"]) / "result.json").stat().st_mtime_ns
    damage(store, hurt)

    assert store.status(hurt["id"]) == "corrupt" and store.status(other["id"]) == "done"
    assert named in store.damage(hurt["id"])
    assert [r["id"] for r in store.records()] == [other["id"]]  # the report reads the others

    proc = ganbench("sweep", "s.yaml", cwd=root, check=0)  # the debug executor: no pdb, no traceback
    assert "Traceback" not in proc.stderr and "(Pdb)" not in proc.stdout
    record = store.result(hurt["id"])
    assert record["status"] == "done"
    assert record["metrics"] == original["metrics"], "the redone cell differs from the undamaged one"
    assert (store.cell_dir(other["id"]) / "result.json").stat().st_mtime_ns == other_stamp
    moved = record["set_aside"] + record["train"].get("set_aside", [])
    assert moved and all(m["moved_to"].startswith(m["file"] + ".corrupt-") for m in moved)
    leftovers = [p.name for p in (root / "results").rglob("*.corrupt-*")]
    assert sorted(m["moved_to"] for m in moved) == sorted(leftovers), "a damaged file was deleted or not recorded"
    if resumed_from is not None:
        assert record["train"]["resumed_from"] == resumed_from and record["timings"]["train_reused"] is False
    else:
        assert record["timings"]["train_reused"] is True  # the training run was fine: only scored again


def test_status_and_report_go_on_past_a_damaged_record(finished, tmp_path):
    root, store, (hurt, other) = _copy(finished, tmp_path)
    (store.cell_dir(hurt["id"]) / "result.json").write_text("{garbage")
    status = ganbench("status", "s.yaml", "--cells", cwd=root, check=0).stdout
    assert f"{hurt['id']}" in status and "corrupt" in status and f"{hurt['id']}/result.json: not valid JSON" in status
    assert "dmg: done 1, diverged 0, failed 0, running 0, pending 0, corrupt 1 (of 2)" in status
    assert "2 cells: 1 done" in ganbench("report", "s.yaml", cwd=root, check=0).stdout


# -- a results folder that cannot be written --------------------------------------------


def _cli(args, cwd, wrapper=(), preexec_fn=None):
    return subprocess.run([*wrapper, sys.executable, "-m", "bench.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600, preexec_fn=preexec_fn, stdin=subprocess.DEVNULL)  # fmt: skip


def _one_error_line(proc):
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganbench: error: ") and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["sweep", "status", "report", "plan"])
def test_results_that_is_a_file_is_one_line_exit_2(tmp_path, command):
    (tmp_path / "s.yaml").write_text(SWEEP)
    (tmp_path / "taken").write_text("a file")
    proc = ganbench(command, "s.yaml", "--results", "taken", cwd=tmp_path, check=2)
    assert "--results taken: is a file, not a folder" in _one_error_line(proc)
    assert (tmp_path / "taken").read_text() == "a file"


def test_read_only_results_folder_is_one_line_exit_2_nothing_written(tmp_path):
    wrapper = ()
    if os.geteuid() == 0:  # root writes anywhere; drop the capabilities that let it
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: a read-only folder cannot be simulated")
        wrapper = ("setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all")
    (tmp_path / "s.yaml").write_text(SWEEP)
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    try:
        proc = _cli(["sweep", "s.yaml", "--results", "ro"], tmp_path, wrapper)
        assert proc.returncode == 2, proc.stderr
        line = _one_error_line(proc)
        assert str(tmp_path / "ro") in line and "errno 13 EACCES" in line
        assert list((tmp_path / "ro").iterdir()) == []
    finally:
        (tmp_path / "ro").chmod(0o755)


def test_a_full_disk_is_one_line_exit_1_nothing_half_written(tmp_path):
    """A file-size limit (EFBIG) stands in for a full disk (ENOSPC): both are the
    machine's fault; the checkpoint of the first cell cannot be written."""
    (tmp_path / "s.yaml").write_text(SWEEP.replace("{name: debug}", "{name: local, workers: 1}"))

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    proc = _cli(["sweep", "s.yaml", "--no-report"], tmp_path, preexec_fn=limit_file_size)
    assert proc.returncode == 1, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ganbench:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "File too large" in errors[0] and "checkpoint.pt" in errors[0] and "[Errno 27]" in errors[0]
    runs = tmp_path / "results/runs/dmg"
    assert not list(runs.rglob(".*.tmp*")), "a half-written file was left"
    assert not list(runs.glob("*/result.json")), "a machine fault was recorded as the cell's result"
    assert "pending 2" in ganbench("status", "s.yaml", cwd=tmp_path, check=0).stdout
