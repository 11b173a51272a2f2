"""Test-only rows for cells that depend on other cells (tests/test_dependencies.py, tests/test_slurm.py).

Sweeps name this folder by its absolute path (test_dependencies.NEEDS_PLUGINS),
so a test process registers these rows once, whichever test loads them first.
"""

import json
import os

import torch
import torch.nn.functional as F

from bench.method import Method
from bench.registry import METHODS


@METHODS.register("base-test")
class BaseTest(Method):
    paper = "an upstream row (test plugin): a GAN that fails on request"
    hp = {"fail": 0}
    hp_max = {"fail": 1}

    def d_loss(self, real_out, fake_out):
        return F.softplus(-real_out).mean() + F.softplus(fake_out).mean()

    def g_loss(self, fake_out):
        # $BASE_TEST_FAILS: fail without a change of id, so that a --retry-failed sweep can succeed.
        if self.config["hp"]["fail"] or os.environ.get("BASE_TEST_FAILS") == "1":
            raise RuntimeError("base-test fails on purpose")
        return F.softplus(-fake_out).mean()


@METHODS.register("needs-test")
class NeedsTest(BaseTest):
    """Starts from base-test's generator, trained for `base_steps` steps, as
    Dual-NDA starts from its CcGAN baseline."""

    paper = "a dependent row (test plugin)"
    hp = {"fail": 0, "base_steps": 30, "base_fails": 0}
    hp_max = {"fail": 1, "base_fails": 1}

    @classmethod
    def needs(cls, config):
        return {"base": {"method": "base-test", "config": {
            "budget": {"steps": config["hp"]["base_steps"]}, "hp": {"fail": config["hp"]["base_fails"]}}}}

    def __init__(self, config, data_info, device, dataset=None):
        super().__init__(config, data_info, device, dataset=dataset)
        folder = self.upstream_dir("base")
        state = torch.load(folder / "generator.pt", map_location="cpu", weights_only=True)
        self.G.load_state_dict(state["method"]["G"])
        self.base = {"folder": str(folder), "g_updates": state["method"]["step"],
                     "status": json.loads((folder / "train.json").read_text())["status"]}

    def record(self):
        return {**super().record(), "base": self.base}


@METHODS.register("loop-a-test")
class LoopA(BaseTest):
    @classmethod
    def needs(cls, config):
        return {"b": {"method": "loop-b-test"}}


@METHODS.register("loop-b-test")
class LoopB(BaseTest):
    @classmethod
    def needs(cls, config):
        return {"a": {"method": "loop-a-test"}}


@METHODS.register("bad-needs-test")
class BadNeeds(BaseTest):
    @classmethod
    def needs(cls, config):
        return {"base": {"method": "no-such-row"}}
