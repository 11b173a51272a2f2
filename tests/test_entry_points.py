"""A method shipped by another installed package, through the `ganbench.methods` entry-point group."""

import os

from conftest import ganbench

MODULE = '''
from bench.method import Method


class Hinge(Method):
    paper = "entry-point test method"

    def d_loss(self, real_out, fake_out):
        return (1 - real_out).clamp(min=0).mean() + (1 + fake_out).clamp(min=0).mean()

    def g_loss(self, fake_out):
        return -fake_out.mean()
'''


def test_entry_point_method_is_listed_and_runs(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "ganbench_extra.py").write_text(MODULE)
    dist = site / "ganbench_extra-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ganbench-extra\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ganbench.methods]\nhinge-ep = ganbench_extra:Hinge\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}

    assert "hinge-ep" in ganbench("list", "methods", env=env, check=0).stdout
    (tmp_path / "s.yaml").write_text(
        "name: ep\nmatrix: {method: [hinge-ep], dataset: [ring], imbalance: [1], seed: [0]}\n"
        "defaults: {budget: {steps: 5, batch_size: 8, eval_samples: 50}}\nexecutor: {name: debug}\n"
    )
    ganbench("sweep", "s.yaml", cwd=tmp_path, env=env, check=0)
    assert "| hinge-ep |" in (tmp_path / "results/ep/leaderboard.md").read_text()
