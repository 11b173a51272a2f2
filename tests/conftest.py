import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    """The warning filters of pyproject.toml hold in the processes the tests start too."""
    os.environ["PYTHONWARNINGS"] = ",".join(config.getini("filterwarnings"))


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
