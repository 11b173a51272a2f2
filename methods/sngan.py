"""SNGAN. Miyato et al. 2018, "Spectral Normalization for Generative Adversarial Networks".

Hinge loss (Sec. 4, following Lim & Ye 2017 and Tran et al. 2017):
D minimises E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]; G minimises -E[D(G(z))].
Spectral normalization (one power iteration per forward pass, PyTorch's
`spectral_norm` parametrization) on every Linear/Conv layer of D.
Adam(2e-4, betas 0.5, 0.999), one D step per G step: setting C of the
paper's Table 1 (the DCGAN setting of Radford et al. 2016, used with the
standard CNN). The ResNet experiments (Appendix B.2) use lr 2e-4, betas
(0, 0.9) and 5 D steps, which a sweep can set.

`paper_arch` is `sn-dcgan` (Table 3, the standard CNN of the paper's main
comparisons). D's output is a hinge margin, not a logit: `drs` calibrates a
copy of D with the logistic loss before sampling.

`sngan_loss` (default `hinge`) picks the objective. The paper trains SN
with both: the hinge loss above and the standard non-saturating loss
(Table 2, "Standard" vs "hinge"). `nonsat` is the second one:
softplus(-D(x)) + softplus(D(G(z))) for D, softplus(-D(G(z))) for G. It is
also ContraD's own SN-DCGAN baseline (Jeong & Shin 2021): jh-jeong/ContraD
trains it with `options.loss = "nonsat"` (configs/gan/cifar10/c10_b512.gin),
so sweeps/damage-gan.yaml runs `sngan` with `sngan_loss: nonsat`.
"""

import torch.nn.functional as F

from bench.method import Method
from bench.registry import METHODS

LOSSES = ("hinge", "nonsat")


@METHODS.register("sngan")
class SNGAN(Method):
    paper = "Miyato et al. 2018, Spectral Normalization for Generative Adversarial Networks"
    optimizer = {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999], "d_steps": 1}
    paper_arch = "sn-dcgan"
    spectral_norm = True
    target_flip = "negate"
    hp = {"sngan_loss": "hinge"}
    hp_choices = {"sngan_loss": LOSSES}
    hp_kept_out_of_id = ("sngan_loss",)  # hinge rows keep the ids they had before the choice existed

    def d_loss(self, real_out, fake_out):
        if self.hp["sngan_loss"] == "nonsat":
            return F.softplus(-real_out).mean() + F.softplus(fake_out).mean()
        return F.relu(1 - real_out).mean() + F.relu(1 + fake_out).mean()

    def g_loss(self, fake_out):
        if self.hp["sngan_loss"] == "nonsat":
            return F.softplus(-fake_out).mean()
        return -fake_out.mean()
