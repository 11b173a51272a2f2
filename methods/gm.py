"""Gaussian-mixture latent prior (add-on `gm`). Ben-Yosef & Weinshall 2018,
"Gaussian Mixture Generative Adversarial Networks for Diverse Datasets, and
the Unsupervised Clustering of Images" (static GM-GAN).

z ~ (1/K) sum_k N(mu_k, sigma^2 I) with means fixed at the start of training:
- `circle` (default): K = 8 means evenly spaced on a circle of radius 2 in
  the first two latent dimensions, the other dimensions 0; sigma = 1;
- `uniform`: means drawn uniformly from [-c, c]^d with a generator seeded by
  the cell seed (c = 1 by default: a choice; the paper tunes c per dataset).
The same prior feeds training and the evaluation samples (`sample` draws
through `latent`). The means are saved in checkpoints, so a resumed run uses
the means it started with.

Applies to every base method (it only replaces the prior). Rows `gm-gan` and
`gm-wgan` are aliases of `gan+gm` and `wgan+gm`.
"""

import math

import torch

from bench.method import AddOn
from bench.registry import ADDONS, METHODS


@ADDONS.register("gm")
class GaussianMixturePrior(AddOn):
    paper = "Ben-Yosef & Weinshall 2018, Gaussian Mixture GANs (static)"
    hp = {"gm_layout": "circle", "gm_k": 8, "gm_sigma": 1.0, "gm_radius": 2.0, "gm_c": 1.0}
    hp_choices = {"gm_layout": ("circle", "uniform")}
    hp_min = {"gm_k": 1}
    hp_max = {"gm_k": 10_000}  # K x z_dim means are held in memory

    def __init__(self, config, data_info, device, dataset=None):
        super().__init__(config, data_info, device, dataset)
        self.gm_means = mixture_means(self.hp, self.z_dim, config["seed"]).to(device)

    def latent(self, n, generator=None):
        k = torch.randint(len(self.gm_means), (n,), device=self.device, generator=generator)
        noise = torch.randn(n, self.z_dim, device=self.device, generator=generator)
        return self.gm_means[k] + self.hp["gm_sigma"] * noise

    def state_dict(self):
        return {**super().state_dict(), "gm_means": self.gm_means.clone()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.gm_means = state["gm_means"].to(self.device)


def mixture_means(hp: dict, z_dim: int, seed: int) -> torch.Tensor:
    """(K, z_dim) component means for the layout in `hp`."""
    k = hp["gm_k"]
    if hp["gm_layout"] == "circle":
        if z_dim < 2:
            raise ValueError(f"the circle layout needs z_dim >= 2, got {z_dim}")
        angles = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
        means = torch.zeros(k, z_dim, dtype=torch.float64)
        means[:, 0], means[:, 1] = hp["gm_radius"] * torch.cos(angles), hp["gm_radius"] * torch.sin(angles)
        return means.float()
    generator = torch.Generator().manual_seed(seed)
    return (2 * torch.rand(k, z_dim, generator=generator) - 1) * hp["gm_c"]


METHODS.alias("gm-gan", "gan+gm")
METHODS.alias("gm-wgan", "wgan+gm")
