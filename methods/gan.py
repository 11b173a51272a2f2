"""Non-saturating GAN. Goodfellow et al. 2014, "Generative Adversarial Nets".

D maximises log D(x) + log(1 - D(G(z))); G maximises log D(G(z)) (the
non-saturating variant of Sec. 3), both as binary cross-entropy on logits.
Adam(2e-4, betas 0.5, 0.999) as in DCGAN (Radford et al. 2016).
"""

import torch.nn.functional as F

from bench.method import Method
from bench.registry import METHODS


@METHODS.register("gan")
class GAN(Method):
    paper = "Goodfellow et al. 2014, Generative Adversarial Nets"
    target_flip = "negate"

    def d_loss(self, real_out, fake_out):
        # -log sigmoid(D(x)) - log(1 - sigmoid(D(G(z))))
        return F.softplus(-real_out).mean() + F.softplus(fake_out).mean()

    def g_loss(self, fake_out):
        # -log sigmoid(D(G(z)))
        return F.softplus(-fake_out).mean()
