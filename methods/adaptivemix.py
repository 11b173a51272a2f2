"""AdaptiveMix (add-on `adaptivemix`). Liu et al. 2023, "AdaptiveMix:
Improving GAN Training via Feature Space Shrinkage" (CVPR).

D = head(F(x)). For pairs (x_i, x_j) within a batch (real with real, fake
with fake; j a random permutation of i) and lambda ~ U(0, 1) per pair, D
also minimises
  lambda_ada * mean_i || lambda F(x_i) + (1 - lambda) F(x_j) - F(lambda x_i + (1 - lambda) x_j) ||^2
(`adaptivemix_norm: l1` uses the L1 norm instead), lambda_ada = 1.

Choices the paper leaves open:
- The target lambda F(x_i) + (1 - lambda) F(x_j) is detached, so the term
  pulls the mixed (hard) sample's features towards the mixture of the easy
  ones, as the authors' StyleGAN2 code does with its mixed-feature target
  (that code uses a cosine similarity; we use the paper's distance).
- ||.||^2 is summed over feature dimensions and averaged over pairs.
- F is D's feature extractor on clean inputs (`Method.d_features`: with
  `pa`, all bits 0).
Applies to every base method whose D has the shared `features`/`head` split
(all shared architectures).
"""

import torch

from bench.method import AddOn
from bench.registry import ADDONS


@ADDONS.register("adaptivemix")
class AdaptiveMix(AddOn):
    paper = "Liu et al. 2023, AdaptiveMix: Improving GAN Training via Feature Space Shrinkage"
    hp = {"adaptivemix_weight": 1.0, "adaptivemix_norm": "l2"}
    hp_choices = {"adaptivemix_norm": ("l2", "l1")}

    def d_terms(self, real, fake, real_out, fake_out):
        terms = super().d_terms(real, fake, real_out, fake_out)
        w, norm = self.hp["adaptivemix_weight"], self.hp["adaptivemix_norm"]
        terms["amix_real"] = w * adaptivemix_loss(self.d_features, real, norm)
        terms["amix_fake"] = w * adaptivemix_loss(self.d_features, fake.detach(), norm)
        return terms


def adaptivemix_loss(features, x: torch.Tensor, norm: str = "l2", generator: torch.Generator | None = None) -> torch.Tensor:
    """mean_i ||lam F(x_i) + (1 - lam) F(x_j) - F(lam x_i + (1 - lam) x_j)|| (squared for l2), j = a permutation."""
    n = len(x)
    j = torch.randperm(n, device=x.device, generator=generator)
    lam = torch.rand(n, device=x.device, generator=generator)
    lam_x = lam.view(-1, *([1] * (x.dim() - 1)))
    f = features(x).flatten(1)
    target = (lam[:, None] * f + (1 - lam[:, None]) * f[j]).detach()
    diff = target - features(lam_x * x + (1 - lam_x) * x[j]).flatten(1)
    return (diff**2).sum(1).mean() if norm == "l2" else diff.abs().sum(1).mean()
