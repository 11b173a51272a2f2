"""Packing (add-on `pacgan`). Lin et al. 2018, "PacGAN: The power of two
samples in generative adversarial networks" (NeurIPS; arXiv 1712.04086).

D judges m samples at once: m real points (or m generated ones) are
concatenated into one input of m times the width, and D says whether the
pack is real. Nothing else changes: the base method's losses, G, the prior
and the optimizer are as they were. `pacgan_m` = m, 2 by default ("PacGAN2",
the paper's first row; 3 and 4 are its other rows).

As the authors' code does it (fjxmlzn/PacGAN synthetic_data_experiments,
PacGAN/pacgan/bricks.py `compute_losses`, datasets.py
`GaussianPackingMixture`): the m members of a real pack are independent
draws from the training set, those of a fake pack m independent generator
samples, concatenated along the features (points: 2m numbers; images: m C
channels, as its image experiments stack them); D's first layer is widened
to the packed input.

Choices the paper leaves open, or where the harness differs:
- The budget's `batch_size` counts single samples: D sees batch_size / m
  packs of each kind per step. The authors' batch is 100 packs, so their
  PacGAN2 protocol is batch_size 200 here (sweeps/2d-mode-collapse.yaml sets
  it per row); batch_size must be a multiple of m.
- Packs are consecutive samples of the batch the base method drew; the
  batch is drawn at random, so they are independent draws as in the code.
- Samplers that score single samples with D (`drs`) are refused: D scores packs.
Applies to every unconditional base method.
"""

from __future__ import annotations

from bench.method import AddOn
from bench.registry import ADDONS


@ADDONS.register("pacgan")
class PacGAN(AddOn):
    paper = "Lin et al. 2018, PacGAN: The power of two samples in GANs"
    hp = {"pacgan_m": 2}
    hp_min = {"pacgan_m": 1}
    hp_max = {"pacgan_m": 64}
    conflicts = {"drs": "DRS scores single samples with D, which judges packs of m under pacgan"}

    def __init__(self, config, data_info, device, dataset=None):
        m, batch = self.packing(config), config["budget"]["batch_size"]
        if batch % m:
            raise ValueError(f"pacgan: budget.batch_size {batch} is not a multiple of pacgan_m {m} (D sees packs of m samples)")
        super().__init__(config, data_info, device, dataset)

    @classmethod
    def packing(cls, config: dict) -> int:
        return int({**cls.hp, **config["hp"]}["pacgan_m"])

    def build_pair(self, arch, data_info):
        m = self.hp["pacgan_m"]
        if data_info["kind"] == "points":
            wide = {**data_info, "dim": data_info["dim"] * m}
        else:
            wide = {**data_info, "channels": data_info["channels"] * m}
        G, _ = super().build_pair(arch, data_info)
        _, D = super().build_pair(arch, wide)
        return G, D

    def d_forward(self, x):
        m = self.hp["pacgan_m"]
        # (N, d) -> (N/m, m d), or (N, C, H, W) -> (N/m, m C, H, W): consecutive samples form a pack.
        return super().d_forward(x.reshape(len(x) // m, m * x.shape[1], *x.shape[2:]))

    def record(self):
        return {**super().record(), "pacgan_packs_per_batch": self.config["budget"]["batch_size"] // self.hp["pacgan_m"]}
