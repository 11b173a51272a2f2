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
from conftest import ganbench, ganbench_batch

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


# -- hostile damage: one sweep of many cells, each damaged its own way (issue 23) ---------------------

MANY = 22
MANY_SWEEP = SWEEP.replace("seed: [0, 1]", f"seed: {list(range(MANY))}").replace("steps: 20", "steps: 10")


def _rm_result(s, c):
    (s.cell_dir(c["id"]) / "result.json").unlink()


def _replace(path, how):
    """Put a folder, a FIFO or a link (to `how`) where the file `path` is."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
    if how == "folder":
        path.mkdir()
        (path / "x").write_text("x")
    elif how == "fifo":
        os.mkfifo(path)
    elif how == "file":
        path.write_text("not a folder")
    else:
        os.symlink(how, path)


def _edit_result(s, c, **changes):
    path = s.cell_dir(c["id"]) / "result.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _train(s, c, name=""):
    return s.training_dir(c["training_id"]) / name


HOSTILE = {
    # name: (damage(store, cell, outside folder), status of the cell, its note in `status --cells`)
    "result-is-a-folder": (lambda s, c, o: _replace(s.cell_dir(c["id"]) / "result.json", "folder"),
                           "corrupt", "result.json: a folder, not a file"),
    "result-is-a-fifo": (lambda s, c, o: _replace(s.cell_dir(c["id"]) / "result.json", "fifo"),
                         "corrupt", "result.json: a FIFO, not a file"),
    "cell-folder-is-a-file": (lambda s, c, o: _replace(s.cell_dir(c["id"]), "file"),
                              "corrupt", "a file where a folder should be"),
    "cell-json-is-a-folder": (lambda s, c, o: (_rm_result(s, c), _replace(s.cell_dir(c["id"]) / "cell.json", "folder")),
                              "corrupt", "cell.json: a folder, not a file"),
    "metrics-not-a-mapping": (lambda s, c, o: _edit_result(s, c, metrics="x"),
                              "corrupt", "result.json: metrics is not a JSON object"),
    "bogus-status": (lambda s, c, o: _edit_result(s, c, status="bogus"),
                     "corrupt", "result.json: status 'bogus' is not one of done, failed, diverged, trained"),
    "training-id-leads-out": (lambda s, c, o: _edit_result(s, c, training_id="../../../../etc"),
                              "corrupt", "result.json: training_id '../../../../etc' is not a cell id"),
    "train-json-bogus-status": (lambda s, c, o: (_rm_result(s, c), _train(s, c, "train.json").write_text('{"status": "bogus"}')),
                                "corrupt", "train.json: status 'bogus' is not one of trained, diverged, failed"),
    "training-folder-is-a-file": (lambda s, c, o: (_rm_result(s, c), _replace(_train(s, c), "file")),
                                  "corrupt", "a file where a folder should be"),
    "checkpoint-is-a-fifo": (lambda s, c, o: (_unfinish(s, c), _replace(_train(s, c, "checkpoint.pt"), "fifo")),
                             "corrupt", "checkpoint.pt: a FIFO, not a file"),
    "checkpoint-links-to-dev-zero": (lambda s, c, o: (_unfinish(s, c), _replace(_train(s, c, "checkpoint.pt"), "/dev/zero")),
                                     "corrupt", "checkpoint.pt: a symbolic link"),
    "checkpoint-empty": (lambda s, c, o: (_unfinish(s, c), _train(s, c, "checkpoint.pt").write_bytes(b"")),
                         "corrupt", "checkpoint.pt: truncated or not a torch file"),
    "checkpoint-is-a-folder": (lambda s, c, o: (_unfinish(s, c), _replace(_train(s, c, "checkpoint.pt"), "folder")),
                               "corrupt", "checkpoint.pt: a folder, not a file"),
    "lock-is-a-fifo": (lambda s, c, o: (_rm_result(s, c), _replace(s.cell_dir(c["id"]) / "lock", "fifo")),
                       "corrupt", "lock: a FIFO, not a lock file"),
    "lock-is-a-folder": (lambda s, c, o: (_rm_result(s, c), _replace(s.cell_dir(c["id"]) / "lock", "folder")),
                         "corrupt", "lock: a folder, not a lock file"),
    "lock-is-a-dangling-link": (lambda s, c, o: (_rm_result(s, c), _replace(s.cell_dir(c["id"]) / "lock", o / "made-by-lock")),
                                "corrupt", "lock: a symbolic link, not a lock file"),
    "slurm-json-garbled": (lambda s, c, o: (_rm_result(s, c), (s.cell_dir(c["id"]) / "slurm.json").write_bytes(b"\xff\xfe{garbage")),
                           "pending", ""),
    "temporary-files-left": (lambda s, c, o: (_rm_result(s, c), (s.cell_dir(c["id"]) / ".samples.k1ll3d.tmp.png").write_bytes(b"half"),
                                              _train(s, c, ".checkpoint.k1ll3d.tmp.pt").write_bytes(b"half")),
                             "pending", ""),
    "killed-after-training": (lambda s, c, o: _rm_result(s, c), "pending", ""),
    "losses-csv-of-words": (lambda s, c, o: _train(s, c, "losses.csv").write_text("step,d_loss\nfoo,bar\nbaz,qux\n"),
                            "done", ""),
    "records-index-is-a-fifo": (lambda s, c, o: _replace(s.runs_dir / "records-index.json", "fifo"), "done", ""),
}  # fmt: skip


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A finished sweep of MANY cells, each damaged as one HOSTILE case (the last cell
    untouched); then status, report, sweep and status again, in one process (a hang fails
    on its timeout). Returns (root, store, {case: cell}, untouched cell, runs, records before)."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "s.yaml").write_text(MANY_SWEEP)
    ganbench("sweep", "s.yaml", "--no-report", cwd=root, check=0)
    store, cells = Store(root / "results", "dmg"), load_sweep(root / "s.yaml").cells
    assert len(cells) == MANY and len(HOSTILE) < MANY
    before = {c["id"]: json.loads((store.cell_dir(c["id"]) / "result.json").read_text()) for c in cells}
    outside = root / "outside"
    outside.mkdir()
    hurt = dict(zip(HOSTILE, cells))
    for case, cell in hurt.items():
        HOSTILE[case][0](store, cell, outside)
    argvs = [["status", "s.yaml", "--cells"], ["report", "s.yaml"], ["sweep", "s.yaml"], ["status", "s.yaml", "--cells"]]
    runs = ganbench_batch(argvs, cwd=root, timeout=400)
    return root, store, hurt, cells[-1], runs, before


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_damage_stays_in_its_cell_and_the_sweep_repairs_it(hostile, case):
    root, store, hurt, untouched, (status, report, sweep, after), before = hostile
    cell = hurt[case]
    _, expected, note = HOSTILE[case]
    line = next(ln for ln in status["stdout"].splitlines() if ln.startswith(cell["id"]))
    assert status["rc"] == 0 and f" {expected} " in f" {line} " and note in line, (line, status["stderr"][-2000:])
    assert report["rc"] == 0 and "Traceback" not in report["stderr"], report["stderr"][-3000:]
    assert sweep["rc"] == 0 and "Traceback" not in sweep["stderr"], sweep["stderr"][-3000:]
    assert after["rc"] == 0 and f"dmg: done {MANY}, diverged 0, failed 0" in after["stdout"], after["stdout"][-3000:]
    record = store.result(cell["id"])
    assert record["status"] == "done" and record["metrics"] == before[cell["id"]]["metrics"]
    assert not list(root.joinpath("outside").iterdir()), "a write followed a link out of the results folder"
    assert not [p for p in (root / "results").rglob(".*.tmp*")], "a temporary file was left behind"
    if case.startswith("checkpoint-"):
        assert record["train"]["resumed_from"] == "checkpoint.prev.pt", record["train"]
    if case == "killed-after-training":
        # Its training ran in the first sweep: the report's total counts it, though the record says reused.
        from bench.report.cost import sweep_total
        from bench.report.frame import cells_frame

        records = [store.result(c["id"]) for c in load_sweep(root / "s.yaml").cells]
        assert record["timings"]["train_reused"] is True
        assert len({r["training_id"] for r in records}) == MANY  # one training run per cell: each counts once
        expected_total = sum(r["timings"]["train_s"] + r["timings"]["sample_s"] + r["timings"]["eval_s"] for r in records)
        assert sweep_total(cells_frame(records))["total"] == pytest.approx(expected_total)


def test_report_never_embeds_a_file_from_outside_the_results_folder(finished, tmp_path):
    """A record's `files.samples.png` that is absolute, a `training_id` of `../..`, a
    samples.png that links out: the page embeds the cell's own picture or none, never the file."""
    import base64

    secret = b"\x89PNG top secret " + os.urandom(16).hex().encode()
    roots = {}
    for case in ("absolute-files-path", "training-id-leads-out", "samples-link-leads-out"):
        root = tmp_path / case
        shutil.copytree(finished, root)
        (root / "outside").mkdir()
        (root / "outside/samples.png").write_bytes(secret)
        store = Store(root / "results", "dmg")
        first = min(load_sweep(root / "s.yaml").cells, key=lambda c: c["config"]["seed"])  # the one the page shows
        result = store.cell_dir(first["id"]) / "result.json"
        record = json.loads(result.read_text())
        if case == "absolute-files-path":
            record["files"] = {"samples.png": str(root / "outside/samples.png")}
        elif case == "training-id-leads-out":
            record["training_id"] = "../../../../outside"
        else:
            (store.cell_dir(first["id"]) / "samples.png").unlink()
            (store.cell_dir(first["id"]) / "samples.png").symlink_to(root / "outside/samples.png")
        result.write_text(json.dumps(record))
        roots[case] = root
    runs = ganbench_batch([["report", root / "s.yaml", "--results", root / "results"] for root in roots.values()], cwd=tmp_path)
    for (case, root), run in zip(roots.items(), runs):
        assert run["rc"] == 0, (case, run["stderr"][-2000:])
        page = (root / "results/dmg/leaderboard.html").read_text()
        assert base64.b64encode(secret).decode()[:40] not in page, f"{case}: a file outside the results folder was embedded"
        if case == "absolute-files-path":
            assert "data:image/png;base64," in page  # the cell's own picture instead


def test_reading_commands_need_no_write_access(finished, tmp_path):
    """`status` and `plan` on a folder the reader cannot write (a teammate's group-shared
    folder, a read-only mount): before, opening an unfinished cell's lock for writing failed."""
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only folder cannot be simulated")
    wrapper = ("setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all") if os.geteuid() == 0 else ()
    root, store, (hurt, other) = _copy(finished, tmp_path)
    (store.cell_dir(hurt["id"]) / "result.json").unlink()  # unfinished: its lock is looked at
    assert (store.cell_dir(hurt["id"]) / "lock").exists()
    paths = sorted((root / "results").rglob("*"), key=lambda p: -len(p.parts))
    try:
        for path in [*paths, root / "results"]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        for command in (["status", "s.yaml", "--cells"], ["plan", "s.yaml"]):
            proc = _cli(command, root, wrapper)
            assert proc.returncode == 0 and "Permission denied" not in proc.stderr, (command, proc.stderr[-2000:])
        assert "pending" in proc.stdout or "pending" in _cli(["status", "s.yaml"], root, wrapper).stdout
    finally:
        for path in [root / "results", *reversed(paths)]:
            path.chmod(0o755 if path.is_dir() else 0o644)
