"""A plugin folder's methods appear everywhere; failures and divergence are recorded and the sweep goes on."""

import json
import textwrap

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
