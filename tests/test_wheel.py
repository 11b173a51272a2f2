"""The installed package, not the checkout: a wheel built from the tracked files,
installed into a target folder, runs from an empty folder."""

import os
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO


def _tracked_copy(dest):
    """The files a fresh clone has (untracked and ignored files left out)."""
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        src = REPO / name
        if src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(src.read_bytes())


def _pip(*args):
    # pip's own deprecation warnings are not ours to fail on (conftest makes them errors in child processes).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    proc = subprocess.run([sys.executable, "-m", "pip", *map(str, args)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"pip {args[0]} failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    if not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to know the tracked files")
    root = tmp_path_factory.mktemp("wheel")
    src, dist, target = root / "src", root / "dist", root / "site"
    _tracked_copy(src)
    # No build isolation: setuptools is installed here, and the build must not need the network.
    _pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, src)
    (wheel,) = dist.glob("ganbench-*.whl")
    _pip("install", "-q", "--no-deps", "--target", target, wheel)
    # PYTHONPATH comes before the editable install of the checkout: the wheel's copy is imported.
    env = {**os.environ, "PYTHONPATH": str(target)}
    return wheel, target, env


def _run(installed, cwd, *args):
    _, target, env = installed
    return subprocess.run([str(target / "bin" / "ganbench"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


def test_the_wheel_carries_every_subpackage_and_the_builtin_folders(installed):
    wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in sorted({p.parent for p in (REPO / "bench").rglob("__init__.py")}):
        assert f"{package.relative_to(REPO).as_posix()}/__init__.py" in names
    for folder, pattern in (("methods", "*.py"), ("datasets", "*.py"), ("slurm", "*.yaml")):
        for path in (REPO / folder).glob(pattern):
            assert f"bench/_builtin/{folder}/{path.name}" in names
    # Never a top-level `datasets` (or `methods`) package: it would shadow Hugging Face's.
    assert not {n.split("/")[0] for n in names} & {"datasets", "methods", "slurm"}


def test_the_installed_tool_lists_and_runs_a_sweep_from_an_empty_folder(installed, tmp_path):
    _, target, env = installed
    where = subprocess.run([sys.executable, "-c", "import bench; print(bench.__file__)"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert where.startswith(str(target)), where
    for kind, expected in (("methods", "damage-gan"), ("datasets", "steering-angle"), ("metrics", "fid"),
                           ("archs", "sn-dcgan")):  # fmt: skip
        proc = _run(installed, tmp_path, "list", kind)
        assert proc.returncode == 0 and expected in proc.stdout, proc.stderr
    profile = subprocess.run([sys.executable, "-c", "from bench.executors.profiles import profile_path as p; "
                              "print(p('example'))"], cwd=tmp_path, env=env, capture_output=True, text=True)  # fmt: skip
    assert profile.stdout.startswith(str(target / "bench/_builtin/slurm")), profile.stderr
    (tmp_path / "one.yaml").write_text(
        "name: one\nmatrix: {method: [gan], dataset: [ring], imbalance: [1], seed: [0]}\n"
        "defaults: {budget: {steps: 5, batch_size: 8, eval_samples: 50}}\nexecutor: {name: debug}\n"
    )
    proc = _run(installed, tmp_path, "sweep", "one.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| gan |" in (tmp_path / "results/one/leaderboard.md").read_text()
