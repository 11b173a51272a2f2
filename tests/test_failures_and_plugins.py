"""A plugin folder's methods appear everywhere; failures and divergence are recorded and the sweep goes on."""

import json
import textwrap
from pathlib import Path

from conftest import ganbench

PLUGIN = '''
import torch.nn.functional as F

from bench.method import Method
from bench.registry import METHODS


@METHODS.register("hinge-test")
class HingeTest(Method):
    paper = "Lim & Ye 2017 (test plugin)"

    def d_loss(self, real_out, fake_out):
        return F.relu(1 - real_out).mean() + F.relu(1 + fake_out).mean()

    def g_loss(self, fake_out):
        return -fake_out.mean()


@METHODS.register("exploding-test")
class Exploding(HingeTest):
    """Its D loss becomes infinite at the 7th D step."""
    calls = 0

    def d_loss(self, real_out, fake_out):
        type(self).calls += 1
        return super().d_loss(real_out, fake_out) * (float("inf") if type(self).calls >= 7 else 1.0)


@METHODS.register("crashing-test")
class Crashing(HingeTest):
    def g_loss(self, fake_out):
        raise RuntimeError("crashing-test always fails in g_loss")
'''

SWEEP = """
name: plugged
plugins: [plugins]
matrix: {method: [hinge-test, exploding-test, crashing-test], dataset: [ring], imbalance: [1], seed: [0]}
defaults: {budget: {steps: 20, batch_size: 16, eval_samples: 100}, log_every: 5, checkpoint_every: 10}
executor: {name: debug}
"""


def test_plugin_method_failure_and_divergence(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins/hinge_test.py").write_text(PLUGIN)
    (tmp_path / "s.yaml").write_text(SWEEP)

    listed = ganbench("list", "methods", "--plugins", tmp_path / "plugins", check=0).stdout
    assert "hinge-test" in listed and "Lim & Ye 2017" in listed
    assert "hinge-test" in ganbench("list", "methods", env={"GANBENCH_PLUGIN_PATH": str(tmp_path / "plugins")}, check=0).stdout
    assert "hinge-test" not in ganbench("list", "methods", check=0).stdout

    proc = ganbench("sweep", "s.yaml", cwd=tmp_path, check=1)
    assert "1 cells failed" in proc.stderr and "Traceback" not in proc.stderr
    records = {json.loads(p.read_text())["config"]["method"]: json.loads(p.read_text())
               for p in (tmp_path / "results/runs/plugged").glob("*/result.json")}  # fmt: skip
    assert records["hinge-test"]["status"] == "done"
    assert records["exploding-test"]["status"] == "diverged"
    assert records["exploding-test"]["diverged_at_step"] == 7
    assert records["crashing-test"]["status"] == "failed"
    assert "crashing-test always fails in g_loss" in records["crashing-test"]["error"]

    status = ganbench("status", "s.yaml", "--cells", cwd=tmp_path, check=0).stdout
    assert "RuntimeError: crashing-test always fails in g_loss" in status
    assert "done 1, diverged 1, failed 1" in status

    md = (tmp_path / "results/plugged/leaderboard.md").read_text()
    assert "| hinge-test |" in md
    assert "3 cells: 1 done, 1 diverged, 1 failed, 0 missing" in md

    # the failed cell reruns only with --retry-failed, and fails again the same way
    assert "0 to run" in ganbench("sweep", "s.yaml", cwd=tmp_path, check=1).stderr
    retry = ganbench("sweep", "s.yaml", "--retry-failed", cwd=tmp_path, check=1)
    assert "1 to run" in retry.stderr


# -- hostile plugins (issue 23) --------------------------------------------------------

EXITING = '''
import os
import sys

from bench.method import Method
from bench.registry import METHODS


@METHODS.register("os-exit-test")
class OsExit(Method):
    paper = "none (test plugin)"

    def train_step(self, next_batch):
        os._exit(3)


@METHODS.register("sys-exit-test")
class SysExit(Method):
    paper = "none (test plugin)"

    def train_step(self, next_batch):
        sys.exit(4)


@METHODS.register("needs-raises-test")
class NeedsRaises(Method):
    paper = "none (test plugin)"

    @classmethod
    def needs(cls, config):
        raise ValueError("needs cannot decide")
'''
TINY = "defaults: {budget: {steps: 4, batch_size: 8, eval_samples: 50}, log_every: 2, checkpoint_every: 2}\n"


def test_exits_inside_train_step_fail_the_cell_with_what_happened(tmp_path):
    """os._exit and sys.exit in a method's train_step, in a local worker: each cell is
    `failed` with an error that says so (before: only a submitit log line, no record)."""
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins/exiting.py").write_text(EXITING)
    (tmp_path / "s.yaml").write_text("name: exits\nplugins: [plugins]\n"
                                     "matrix: {method: [os-exit-test, sys-exit-test], dataset: [ring], imbalance: [1], seed: [0]}\n"
                                     + TINY + "executor: {name: local, workers: 1, cells_per_job: 2}\n")  # fmt: skip
    proc = ganbench("sweep", "s.yaml", "--no-report", cwd=tmp_path, check=1, timeout=300)
    assert "2 cells failed" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    errors = {r["config"]["method"]: r["error"] for r in map(json.loads, map(Path.read_text, (tmp_path / "results/runs/exits").glob("*/result.json")))}
    assert "SystemExit: the method's code called os._exit(3)" in errors["os-exit-test"]
    assert "SystemExit: the method's code called sys.exit(4)" in errors["sys-exit-test"]


def test_a_needs_that_raises_is_one_line(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins/exiting.py").write_text(EXITING)
    (tmp_path / "s.yaml").write_text("name: n\nplugins: [plugins]\n"
                                     "matrix: {method: [needs-raises-test], dataset: [ring], imbalance: [1], seed: [0]}\n")  # fmt: skip
    proc = ganbench("plan", "s.yaml", cwd=tmp_path, check=2)
    assert proc.stderr == ("ganbench: error: s.yaml: method 'needs-raises-test': needs() raised "
                           "ValueError: needs cannot decide\n")  # fmt: skip


THREADS = '''
import os
import threading
import time

def forever():
    while True:
        time.sleep(1)

threading.Thread(target=forever, name="forever").start()  # not a daemon: Python would wait for it at exit
if os.environ.get("EXIT_FROM_THREAD"):
    threading.Thread(target=lambda: (time.sleep(float(os.environ["EXIT_FROM_THREAD"])), os._exit(0)), name="quitter").start()
'''


def test_plugin_threads_neither_hang_ganbench_nor_end_it_silently(tmp_path):
    """A thread started at import that never ends kept `list`, `plan` and `sweep` from
    exiting; a thread calling os._exit(0) made `sweep` exit 0 with cells pending, saying nothing."""
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins/threads.py").write_text(THREADS)
    (tmp_path / "s.yaml").write_text("name: t\nplugins: [plugins]\n"
                                     "matrix: {method: [gan], dataset: [ring], imbalance: [1], seed: [0, 1, 2, 3]}\n"
                                     + TINY + "executor: {name: debug}\n")  # fmt: skip
    assert "gan" in ganbench("list", "methods", "--plugins", "plugins", cwd=tmp_path, check=0, timeout=120).stdout
    assert "4 cells" in ganbench("plan", "s.yaml", cwd=tmp_path, check=0, timeout=120).stdout
    proc = ganbench("sweep", "s.yaml", cwd=tmp_path, check=0, timeout=300)
    assert "Traceback" not in proc.stderr
    proc = ganbench("sweep", "s.yaml", "--results", "quit", cwd=tmp_path, env={"EXIT_FROM_THREAD": "0.5"}, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "ganbench: error: thread 'quitter' (plugin code) called os._exit(0)" in proc.stderr
