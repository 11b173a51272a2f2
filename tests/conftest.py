import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    """The warning filters of pyproject.toml hold in the processes the tests start too."""
    os.environ["PYTHONWARNINGS"] = ",".join(config.getini("filterwarnings"))
    # No test downloads data: a data set whose files are missing fails with its one-line message instead
    # of reaching torchvision's download (bench/datafiles.py); tests write the small files they read.
    os.environ["GANBENCH_DOWNLOAD"] = "0"


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (pyproject.toml): one worker per core, at least 2 and at most 4. Most tests wait on
    the processes they start (a sweep, pdflatex, a browser), so 2 workers pay on 1 core too, and more
    than 4 would hold more PyTorch processes in memory than they save time."""
    return min(4, max(2, os.cpu_count() or 1))


# The longest groups, longest first (seconds on an idle 2-core machine, `--durations`): the default
# run's files, then the `e2e` run's (the paper profiles' protocol runs take 10-25 minutes).
LONGEST_FIRST = ["test_slurm", "test_kill_drill", "test_dependencies", "test_resume", "test_damage", "test_cli_sweep",
                 "test_protocols:dual-nda-steering-paper", "test_protocols:dual-nda-paper", "test_every_row",
                 "test_protocols:rot-fmnist-conditional-base", "test_protocols:pa-adaptivemix-paper"]  # fmt: skip


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups (`--dist loadgroup`)
def pytest_collection_modifyitems(config, items):
    """A test file is one group, run by one worker, so its module fixtures run once. A file that sets
    `XDIST_GROUP_BY_PARAM = True` is one group per parameter set: its module fixture is parametrized
    (tests/test_protocols.py: one smoke run per protocol), and the runs can go side by side.
    The longest groups start first, so that the run's tail is a short one: the workers take groups
    in the order of the items (pyproject passes --no-loadscope-reorder, which would otherwise order
    them by their number of tests)."""
    groups = {}
    for item in items:
        group = item.module.__name__
        if getattr(item.module, "XDIST_GROUP_BY_PARAM", False) and hasattr(item, "callspec"):
            group += ":" + item.callspec.id.replace("]", ")")  # xdist reads a group only after the last "]"
        item.add_marker(pytest.mark.xdist_group(group))
        groups[item.nodeid] = group
    rank = {group: i for i, group in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(groups[item.nodeid], len(rank)))


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Evaluation networks and statistics go to a per-run cache, never ~/.cache."""
    os.environ["GANBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.pop("GANBENCH_PLUGIN_PATH", None)


def ganbench(*args, cwd=None, check=None, env=None, timeout=600):
    """Run the real CLI in a fresh process; returns the CompletedProcess. On a timeout the whole
    process group goes (the sweep's local workers too, which would otherwise outlive the test)."""
    import signal

    with subprocess.Popen([sys.executable, "-m", "bench.cli", *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
                          start_new_session=True) as child:  # fmt: skip
        try:
            stdout, stderr = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            raise
    proc = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
    if check is not None and proc.returncode != check:
        raise AssertionError(f"ganbench {' '.join(map(str, args))} exited {proc.returncode}, expected {check}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")  # fmt: skip
    return proc


BATCH = """
import contextlib, io, json, sys, traceback
from bench.cli import main
runs = []
for argv in json.load(sys.stdin):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse's own errors
            rc = exc.code
        except BaseException:
            traceback.print_exc()
            rc = 1
    runs.append({"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()})
sys.stdout.write("\\n" + json.dumps(runs))  # the last line: a C library may write to fd 1 too
"""


def ganbench_batch(argvs, cwd=None, timeout=600):
    """Run `bench.cli.main(argv)` for each argv in ONE fresh process (one torch
    import for all); returns [{"rc", "stdout", "stderr"}] in order. For many
    cheap calls that fail before any work, e.g. malformed sweep files."""
    proc = subprocess.run([sys.executable, "-c", BATCH], input=json.dumps([list(map(str, a)) for a in argvs]),
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(f"the batch process exited {proc.returncode}\nstderr:\n{proc.stderr}")
    return json.loads(proc.stdout.splitlines()[-1])


def apt_install(packages: list[str], done=lambda: False, recommends: bool = True) -> str:
    """Install Debian packages for a test (as root); returns "" or why it failed. Test workers run
    side by side, so one installs while the others wait on a lock and then find it `done`."""
    import fcntl

    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open("/tmp/ganbench-tests-apt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done():
            return ""
        apt = ["apt-get", "-qq", "-o", "DPkg::Lock::Timeout=600"]  # an apt-get outside the tests may hold it
        for cmd in (apt + ["update"], apt + ["install", "-y", *([] if recommends else ["--no-install-recommends"]), *packages]):
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
            if proc.returncode != 0:
                tail = " | ".join(proc.stderr.strip().splitlines()[-2:])
                return f"`{' '.join(cmd)}` failed ({proc.returncode}): {tail}"
    return ""


@pytest.fixture(scope="session")
def pdflatex():
    """The pdflatex command, installed from Debian's texlive-latex-recommended (booktabs) when missing
    and the tests run as root, as the SLURM tests install their cluster; skipped with the reason otherwise."""
    import shutil

    def found():
        return shutil.which("pdflatex") and subprocess.run(["kpsewhich", "booktabs.sty"], capture_output=True,
                                                           text=True).stdout.strip()  # fmt: skip

    if not found() and os.geteuid() == 0 and shutil.which("apt-get"):
        apt_install(["texlive-latex-recommended"], done=found, recommends=False)
    if not found():
        pytest.skip("pdflatex with booktabs is not installed (apt-get install texlive-latex-recommended, as root)")
    return shutil.which("pdflatex")


def compile_latex(pdflatex, tex_file: Path, workdir: Path) -> str:
    """Compile `tex_file` as the body of a standalone article with booktabs; returns pdflatex's log.
    Fails on any LaTeX error and on any overfull line (a table wider than the page)."""
    doc = workdir / f"{tex_file.stem}-doc.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                   f"\\input{{{tex_file.resolve().as_posix()}}}\n\\end{{document}}\n")  # fmt: skip
    proc = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=workdir,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    log = (workdir / f"{doc.stem}.log").read_text(errors="replace")
    assert proc.returncode == 0, f"pdflatex failed on {tex_file}:\n{proc.stdout[-3000:]}"
    overfull = [line for line in log.splitlines() if line.startswith("Overfull")]
    assert not overfull, f"{tex_file}: {overfull}"
    return log
