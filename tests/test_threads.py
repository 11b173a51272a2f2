"""Each local worker keeps torch, OpenMP and BLAS to its share of the cores;
a small network's cell keeps to one thread (bench.threads.cell_threads)."""

import json

from bench.threads import THREAD_VARIABLES, cell_threads, share
from conftest import ganbench

PROBE = '''
import os

import torch
import torch.nn.functional as F

from bench.method import Method
from bench.registry import METHODS


@METHODS.register("threads-probe")
class ThreadsProbe(Method):
    """A GAN whose record() says what the worker's thread pools are."""

    def d_loss(self, real_out, fake_out):
        return F.softplus(-real_out).mean() + F.softplus(fake_out).mean()

    def g_loss(self, fake_out):
        return F.softplus(-fake_out).mean()

    def record(self):
        import scipy.linalg  # noqa: F401  (SciPy's own BLAS, loaded after the limits were set)
        from threadpoolctl import threadpool_info

        return {"pools": [[p["internal_api"], p["filepath"], p["num_threads"]] for p in threadpool_info()],
                "torch": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
                "env": {k: os.environ.get(k) for k in VARIABLES}}
'''

SWEEP = """
name: threads
plugins: [plugins]
matrix: {method: [threads-probe], dataset: [ring], imbalance: [1], seed: [0, 1]}
defaults: {budget: {steps: 2, batch_size: 16, eval_samples: 50}, log_every: 1, checkpoint_every: 2}
executor: {name: local, workers: 2, cells_per_job: 1}
"""


def test_local_workers_limit_every_thread_pool(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins/probe.py").write_text(PROBE.replace("VARIABLES", repr(THREAD_VARIABLES)))
    (tmp_path / "s.yaml").write_text(SWEEP)
    ganbench("sweep", "s.yaml", "--no-report", cwd=tmp_path, check=0)
    expected = min(share(2), 1)  # ring's cells train `mlp`, which trains fastest on one thread
    records = [json.loads(p.read_text()) for p in (tmp_path / "results/runs/threads").glob("*/result.json")]
    assert len(records) == 2
    for record in records:
        info = record["method_info"]
        assert info["torch"] == expected and info["interop"] == expected
        assert info["env"] == dict.fromkeys(THREAD_VARIABLES, str(expected))
        assert info["pools"], "threadpoolctl found no BLAS or OpenMP library"
        assert all(n == expected for _, _, n in info["pools"]), info["pools"]
        assert record["environment"]["threads"] == expected
        assert record["environment"]["threads_rule"].startswith(f"{expected} ")


def test_debug_executor_gives_a_small_network_one_thread(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins/probe.py").write_text(PROBE.replace("VARIABLES", repr(THREAD_VARIABLES)))
    (tmp_path / "s.yaml").write_text(SWEEP.replace("seed: [0, 1]", "seed: [0]"))
    ganbench("sweep", "s.yaml", "--no-report", "--executor", "debug", cwd=tmp_path, check=0)
    (path,) = (tmp_path / "results/runs/threads").glob("*/result.json")
    record = json.loads(path.read_text())
    assert record["method_info"]["torch"] == 1 and record["environment"]["threads"] == 1
    assert "'mlp' trains fastest on 1" in record["environment"]["threads_rule"] or share(1) == 1


def test_cell_threads_caps_small_networks_only():
    assert cell_threads({"arch": {"name": "mlp"}}, 8, "x") == (1, "1 of 8 (x): 'mlp' trains fastest on 1 (Arch.cpu_threads)")
    assert cell_threads({"arch": {"name": "dcgan-small"}}, 8, "x")[0] == 1
    assert cell_threads({"arch": {"name": "sn-dcgan"}}, 8, "x") == (8, "8 (x)")
    assert cell_threads({"arch": {"name": "mlp"}}, 1, "x") == (1, "1 (x)")
