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


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Evaluation networks and statistics go to a per-run cache, never ~/.cache."""
    os.environ["GANBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.pop("GANBENCH_PLUGIN_PATH", None)


def ganbench(*args, cwd=None, check=None, env=None, timeout=600):
    """Run the real CLI in a fresh process; returns the CompletedProcess."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cli", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )  # fmt: skip
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
