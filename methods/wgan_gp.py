"""WGAN with gradient penalty. Gulrajani et al. 2017, "Improved Training of Wasserstein GANs".

Critic minimises E[D(G(z))] - E[D(x)] + lambda E[(||grad D(x_hat)||_2 - 1)^2]
on random interpolates x_hat (Algorithm 1), lambda = 10, 5 critic steps per
generator step, Adam(1e-4, betas 0.5, 0.9). G minimises -E[D(G(z))].
The paper's critic has no batch norm (Sec. 4): `per_sample_d` makes
architectures with BN in D (`dcgan`) use layer normalization instead, the
replacement the paper recommends.
"""

from pathlib import Path

from bench.penalties import gradient_penalty
from bench.registry import METHODS, plugin_module

WassersteinLoss = plugin_module(Path(__file__).with_name("wgan.py")).WassersteinLoss


@METHODS.register("wgan-gp")
class WGANGP(WassersteinLoss):
    paper = "Gulrajani et al. 2017, Improved Training of Wasserstein GANs"
    optimizer = {"name": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.5, 0.9], "d_steps": 5}
    hp = {"gp_weight": 10.0}
    per_sample_d = True

    def d_terms(self, real, fake, real_out, fake_out):
        terms = super().d_terms(real, fake, real_out, fake_out)
        terms["gp"] = self.hp["gp_weight"] * gradient_penalty(self.discriminate, real, fake)
        return terms
