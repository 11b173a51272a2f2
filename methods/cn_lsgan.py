"""CN-LSGAN: least-squares GAN with a gradient penalty on D and a real-batch
term for G, as defined for the MNIST study this benchmark reproduces (issue 6).

D minimises the LSGAN loss (Mao et al. 2017, 0-1 coding) plus
lambda1 * E[(||grad D(x_hat)||_2 - 1)^2] on real/fake interpolates
(the penalty of Gulrajani et al. 2017, bench.penalties.gradient_penalty);
G minimises the LSGAN loss plus lambda2 * E[(G(z) - x)^2] against the real
batch of the same step. lambda1 = 0.01, lambda2 = 0.001; Adam lr 4e-4 for
both networks.

Choices left open: betas (0.5, 0.999) as for LSGAN; the G term pairs the
i-th generated sample with the i-th real sample of the batch (no matching)
and averages over samples and pixels; one D step per G step. The gradient
penalty needs a per-sample D (`per_sample_d`: layer norm instead of batch
norm in D where an architecture has BN).
"""

from pathlib import Path

from bench.penalties import gradient_penalty
from bench.registry import METHODS, plugin_module

LSGAN = plugin_module(Path(__file__).with_name("lsgan.py")).LSGAN


@METHODS.register("cn-lsgan")
class CNLSGAN(LSGAN):
    paper = "LSGAN (Mao et al. 2017) + gradient penalty (Gulrajani et al. 2017) + real-batch L2 term for G"
    optimizer = {"name": "adam", "lr_g": 4e-4, "lr_d": 4e-4, "betas": [0.5, 0.999], "d_steps": 1}
    hp = {"gp_weight": 0.01, "real_weight": 0.001}
    per_sample_d = True

    def d_terms(self, real, fake, real_out, fake_out):
        terms = super().d_terms(real, fake, real_out, fake_out)
        terms["gp"] = self.hp["gp_weight"] * gradient_penalty(self.discriminate, real, fake)
        return terms

    def g_terms(self, z, fake, fake_out, real):
        terms = super().g_terms(z, fake, fake_out, real)
        terms["real_l2"] = self.hp["real_weight"] * ((fake - real) ** 2).mean()
        return terms
