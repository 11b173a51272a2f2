"""`pacgan-mlp`: the 2-D networks of PacGAN's synthetic experiments (Lin et
al. 2018, after VEEGAN's and ALI's toy setting), as fjxmlzn/PacGAN
synthetic_data_experiments/2DRing_GAN&PacGAN/pacgan_task.py builds them
(`create_model_brick`) with the sizes of its config.py:

- G: z (2-D, N(0, I)) -> four Linear(width) layers without bias, each with
  BN and ReLU -> Linear(2) with bias (width 400).
- D: three maxout layers of width/2 units with 5 pieces each (Blocks'
  LinearMaxout: a Linear to units x pieces, then the max over the pieces)
  -> Linear(1) (width/2 = 200). No normalization, no dropout (the task
  builds its models `with_dropout=False`).
- Every weight N(0, 0.02), every bias 0 (`weights_init_std`, `biases_init`);
  BN scale 1, shift 0 (Blocks' defaults).

D's input is 2 numbers per point; the `pacgan` add-on widens it to 2m.
"""

from __future__ import annotations

import torch
from torch import nn

from bench.archs import ARCHS, Arch, Discriminator

MAXOUT_PIECES = 5


class Maxout(nn.Module):
    def __init__(self, d_in: int, units: int, pieces: int = MAXOUT_PIECES):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(d_in, units * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Blocks' Maxout groups the linear outputs as (units, pieces), pieces varying fastest.
        return self.linear(x).view(-1, self.units, self.pieces).amax(dim=2)


@ARCHS.register("pacgan-mlp")
class PacGANMLP(Arch):
    kind = "points"
    paper = "Lin et al. 2018 (PacGAN), synthetic experiments (fjxmlzn/PacGAN pacgan_task.py)"
    defaults = {"z_dim": 2, "width": 400}
    cpu_threads = 1  # tests/perf/bench_threads.py

    @classmethod
    def build(cls, arch, info, d_norm):
        width, dim = arch["width"], info["dim"]
        g_layers: list[nn.Module] = []
        g_in = arch["z_dim"]
        for _ in range(4):
            g_layers += [nn.Linear(g_in, width, bias=False), nn.BatchNorm1d(width), nn.ReLU()]
            g_in = width
        G = nn.Sequential(*g_layers, nn.Linear(width, dim))
        units = width // 2
        D = Discriminator(nn.Sequential(Maxout(dim, units), Maxout(units, units), Maxout(units, units)), nn.Linear(units, 1))
        for m in (*G.modules(), *D.modules()):
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        return G, D
