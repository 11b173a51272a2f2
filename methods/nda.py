"""Vanilla NDA on CcGAN: Sinha et al. 2021, "Negative Data Augmentation"
(ICLR 2021), as the Dual-NDA authors run it on CcGAN (UBCDingXin/Dual-NDA,
`UTKFace/UTKFace_64x64/CcGAN/NDA/train_ccgan.py` and `scripts/run_nda.sh`,
the `nda_b` branch).

Row `ccgan+nda` (= `ccgan-svdl+nda`, the SVDL baseline the Dual-NDA paper
compares with; `ccgan-hvdl+nda` works too). Each D step adds negatives:
the step's real vicinal images cut into 2 x 2 patches and shuffled by a
permutation that is not the identity (jigsaw, k = 2: Sinha et al.'s best
augmentation for GANs, and the authors' `jigsaw_k(..., k=2)`), fed to D
with the batch's targets t_j and weight 1:

    D loss = mean(w_r l+(real)) + a * mean(w_f l-(fake)) + b * mean(l-(jigsaw(real), t))

with the authors' a = 0.25 and b = 0.75 (`nda_fake_weight`,
`nda_jigsaw_weight`) from the first step (their `nda_start_iter=0`).
The arrangement follows the authors' code exactly. Their `jigsaw_k` draws
a uniform permutation of the 4 patches until it is not the identity, but it
cuts the patches row by row (top-left, top-right, bottom-left,
bottom-right) and puts them back column by column, so the identity
permutation would give the transposed grid. Their negatives are therefore
uniform over the 23 arrangements other than the transposed one, and the
unchanged image is one of them (1 in 23). We draw from the same 23
(`ARRANGEMENTS`). The images must have an even height and width (theirs
are 64x64; refused otherwise).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch

from bench.method import AddOn
from bench.registry import ADDONS, METHODS, plugin_module

CcGAN = plugin_module(Path(__file__).with_name("ccgan.py")).CcGAN

# Patch p = 2 * row + column. What the authors' jigsaw_k can produce: every order of the 4
# patches except the transposed grid (0, 2, 1, 3), the identity included (see the docstring).
TRANSPOSED = (0, 2, 1, 3)
ARRANGEMENTS = torch.tensor([p for p in itertools.permutations(range(4)) if p != TRANSPOSED])


def jigsaw(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Each image of (N, C, H, W) x cut into 2 x 2 patches, patch slot s
    filled with patch order[i, s] of image i."""
    n, c, h, w = x.shape
    patches = x.reshape(n, c, 2, h // 2, 2, w // 2).permute(0, 2, 4, 1, 3, 5).reshape(n, 4, c, h // 2, w // 2)
    shuffled = patches[torch.arange(n, device=x.device)[:, None], order]
    return shuffled.reshape(n, 2, 2, c, h // 2, w // 2).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)


def random_jigsaw(x: torch.Tensor) -> torch.Tensor:
    """jigsaw with an order drawn uniformly from ARRANGEMENTS for each image."""
    pick = torch.randint(len(ARRANGEMENTS), (len(x),), device=x.device)
    return jigsaw(x, ARRANGEMENTS.to(x.device)[pick])


def refuses_non_ccgan(addon: type[AddOn], base) -> str | None:
    """Both NDA add-ons extend CcGAN's vicinal D loss."""
    if not issubclass(base, CcGAN):
        return f"{addon.name!r} adds negatives to CcGAN's vicinal D loss; {base.name} is not a CcGAN row (use ccgan-svdl or ccgan-hvdl)"
    return None


@ADDONS.register("nda")
class NDA(AddOn):
    paper = "Sinha et al. 2021, Negative Data Augmentation (jigsaw k = 2), on CcGAN as in Dual-NDA's code"
    hp = {"nda_fake_weight": 0.25, "nda_jigsaw_weight": 0.75}
    conditional_ok = True
    conflicts = {"dual-nda": "Dual-NDA replaces vanilla NDA's negatives (the authors run them apart)"}

    @classmethod
    def refuses(cls, base):
        return super().refuses(base) or refuses_non_ccgan(cls, base)

    @classmethod
    def dataset_problem(cls, info):
        problem = super().dataset_problem(info)
        if problem is None and (info["kind"] != "images" or info["resolution"] % 2):
            return "NDA's jigsaw cuts images into 2 x 2 patches: it needs images of even size"
        return problem

    def fake_weight(self):
        return self.hp["nda_fake_weight"]

    def negative_terms(self, batch, c):
        terms = super().negative_terms(batch, c)
        terms["jigsaw"] = self.hp["nda_jigsaw_weight"] * self.fake_term(self.D(random_jigsaw(batch.real), c)).mean()
        return terms


METHODS.alias("ccgan+nda", "ccgan-svdl+nda")
