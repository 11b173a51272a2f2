"""Wasserstein GAN with weight clipping. Arjovsky et al. 2017, "Wasserstein GAN".

Critic minimises E[D(G(z))] - E[D(x)]; G minimises -E[D(G(z))]
(Algorithm 1). After every critic update all critic weights and biases are
clipped to [-c, c], c = 0.01; 5 critic steps per generator step; RMSProp
with lr 5e-5 for both networks.

Choices the paper leaves open or that we simplify:
- Algorithm 1 only; the reference code's schedule of 100 critic steps for
  the first 25 generator steps (and every 500th) is not used: always 5.
- RMSProp with PyTorch's defaults (alpha 0.99, eps 1e-8, no momentum).
- The critic has no batch norm (shared architectures), so clipping bounds
  every layer; its output is a critic, not a logit: rejection sampling
  (`drs`) refuses it.
"""

import torch

from bench.method import Method
from bench.registry import METHODS


class WassersteinLoss(Method):
    """The critic loss shared by wgan and wgan-gp (not a row by itself)."""

    d_output = "critic"
    target_flip = "negate"

    def d_loss(self, real_out, fake_out):
        return fake_out.mean() - real_out.mean()

    def g_loss(self, fake_out):
        return -fake_out.mean()


@METHODS.register("wgan")
class WGAN(WassersteinLoss):
    paper = "Arjovsky et al. 2017, Wasserstein GAN"
    # betas are unused by RMSProp; kept so an override to adam has them.
    optimizer = {"name": "rmsprop", "lr_g": 5e-5, "lr_d": 5e-5, "betas": [0.5, 0.999], "d_steps": 5}
    hp = {"clip": 0.01}

    @torch.no_grad()
    def after_d_step(self):
        super().after_d_step()
        c = self.hp["clip"]
        for p in self.D.parameters():
            p.clamp_(-c, c)
