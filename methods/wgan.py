"""Wasserstein GAN with weight clipping. Arjovsky et al. 2017, "Wasserstein GAN".

Critic minimises E[D(G(z))] - E[D(x)]; G minimises -E[D(G(z))]
(Algorithm 1). After every critic update all critic weights and biases are
clipped to [-c, c], c = 0.01; RMSProp with lr 5e-5 for both networks.

Critic steps per generator step, as the reference code runs them
(martinarjovsky/WassersteinGAN, main.py): 100 critic steps for each of the
first 25 generator steps and for every 500th generator step, 5 otherwise
(`n_critic` in Algorithm 1). `critic_burst` (100; 0 turns the schedule off
and leaves the optimizer's `d_steps` throughout), `burst_first` (25) and
`burst_every` (500) set it; the schedule is on by default. Generator step
t (1-based) gets the burst when t - 1 < burst_first or (t - 1) %
burst_every == 0, the reference's `gen_iterations` test. The result's
`method_info.d_updates` counts every critic step.

Choices the paper leaves open or that we simplify:
- Clipping after each critic update, as Algorithm 1 writes it (the
  reference code clamps before each critic update instead, so its
  generator step sees the last update unclipped).
- RMSProp with PyTorch's defaults (alpha 0.99, eps 1e-8, no momentum).
- `paper_arch` is `dcgan`: the reference code's critic is a DCGAN with
  batch norm, and clipping covers the BN parameters too.
"""

import torch

from bench.method import Method
from bench.registry import METHODS


class WassersteinLoss(Method):
    """The critic loss shared by wgan and wgan-gp (not a row by itself)."""

    target_flip = "negate"

    def d_loss(self, real_out, fake_out):
        return fake_out.mean() - real_out.mean()

    def g_loss(self, fake_out):
        return -fake_out.mean()


@METHODS.register("wgan")
class WGAN(WassersteinLoss):
    paper = "Arjovsky et al. 2017, Wasserstein GAN"
    paper_arch = "dcgan"
    # betas are unused by RMSProp; kept so an override to adam has them.
    optimizer = {"name": "rmsprop", "lr_g": 5e-5, "lr_d": 5e-5, "betas": [0.5, 0.999], "d_steps": 5}
    hp = {"clip": 0.01, "critic_burst": 100, "burst_first": 25, "burst_every": 500}
    hp_min = {"burst_every": 1}

    def d_steps_at(self, step):
        burst, t = self.hp["critic_burst"], step - 1  # t: the reference's gen_iterations
        if burst and (t < self.hp["burst_first"] or t % self.hp["burst_every"] == 0):
            return burst
        return super().d_steps_at(step)

    @torch.no_grad()
    def after_d_step(self):
        super().after_d_step()
        c = self.hp["clip"]
        for p in self.D.parameters():
            p.clamp_(-c, c)
