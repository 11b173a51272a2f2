"""Least-squares GAN. Mao et al. 2017, "Least Squares Generative Adversarial Networks".

The 0-1 coding of eq. 2 (a = 0, b = c = 1):
D minimises 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2];
G minimises 1/2 E[(D(G(z)) - 1)^2].
Adam(2e-4, betas 0.5, 0.999); the paper's 1e-3 was for LSUN at 112x112.
"""

from bench.method import Method
from bench.registry import METHODS


@METHODS.register("lsgan")
class LSGAN(Method):
    paper = "Mao et al. 2017, Least Squares Generative Adversarial Networks"
    target_flip = "one_minus"

    def d_loss(self, real_out, fake_out):
        return 0.5 * ((real_out - 1) ** 2).mean() + 0.5 * (fake_out**2).mean()

    def g_loss(self, fake_out):
        return 0.5 * ((fake_out - 1) ** 2).mean()
