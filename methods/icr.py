"""Improved consistency regularization (add-on `icr`). Zhao et al. 2021,
"Improved Consistency Regularization for GANs" (AAAI; arXiv 2002.04724).

Balanced CR (bCR): D also minimises
  lambda_real E[(D(x) - D(T(x)))^2] + lambda_fake E[(D(G(z)) - D(T(G(z))))^2];
latent CR (zCR), with dz ~ N(0, sigma^2 I):
  D minimises  lambda_dis E[(D(G(z)) - D(G(z + dz)))^2],
  G minimises -lambda_gen E[||G(z) - G(z + dz)||^2].
Defaults lambda_real = lambda_fake = 10, lambda_dis = 5, lambda_gen = 0.5,
sigma = 0.03 (the paper's CIFAR-10 values).

Choices the paper leaves open:
- T = a random horizontal flip (p = 1/2) and a random translation by up to
  res/8 pixels (at least 1) in each direction with reflection padding, drawn
  per image (the augmentation of Zhang et al. 2020's CR): the registry's
  `flip-translate` (bench.augment), named by `icr_transform`.
- For 2-D point data T is a no-op (there is no flip or translation of a
  point that keeps the data distribution): bCR is then identically zero and
  is skipped; zCR still applies. `record()` says which parts were active.
- The D-side zCR uses a fresh z from the method's prior (GM priors
  included) rather than the z of the D step's fake batch: the same
  expectation, and the D step's contract does not pass its z.
- ||.||^2 is averaged over samples and, for G, over pixels, so lambda_gen
  does not scale with resolution.
Applies to every base method. Not combinable with `pa`: PA draws new random
bits on every D call, so bCR/zCR would penalise D for reading its bits.
"""

import torch

from bench.augment import AUGMENTS
from bench.method import AddOn
from bench.registry import ADDONS


@ADDONS.register("icr")
class ICR(AddOn):
    paper = "Zhao et al. 2021, Improved Consistency Regularization for GANs"
    hp = {"icr_real": 10.0, "icr_fake": 10.0, "icr_dis": 5.0, "icr_gen": 0.5, "icr_sigma": 0.03}
    conflicts = {"pa": "PA draws fresh random bits on every D call, which consistency terms would penalise"}
    icr_transform = "flip-translate"  # T, from bench.augment (add-on attributes carry its name)

    def d_terms(self, real, fake, real_out, fake_out):
        terms = super().d_terms(real, fake, real_out, fake_out)
        if real.dim() == 4:
            transform = AUGMENTS.get(self.icr_transform)
            terms["bcr_real"] = self.hp["icr_real"] * ((real_out - self.discriminate(transform(real))) ** 2).mean()
            terms["bcr_fake"] = self.hp["icr_fake"] * ((fake_out - self.discriminate(transform(fake))) ** 2).mean()
        z = self.latent(len(real))
        with torch.no_grad():
            g, g_shifted = self.G(z), self.G(z + self.hp["icr_sigma"] * torch.randn_like(z))
        terms["zcr_dis"] = self.hp["icr_dis"] * ((self.discriminate(g) - self.discriminate(g_shifted)) ** 2).mean()
        return terms

    def g_terms(self, z, fake, fake_out, real):
        terms = super().g_terms(z, fake, fake_out, real)
        shifted = self.G(z + self.hp["icr_sigma"] * torch.randn_like(z))
        terms["zcr_gen"] = -self.hp["icr_gen"] * ((fake - shifted) ** 2).mean()
        return terms

    def record(self):
        bcr = "on" if self.data_info.get("kind") == "images" else "off (2-D points: T is a no-op)"
        return {**super().record(), "icr_bcr": bcr, "icr_zcr": "on"}

