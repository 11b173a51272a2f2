"""The harness's own small networks, for CPU budgets.

- `mlp`: 2-D points; a ReLU generator and a LeakyReLU(0.2) discriminator,
  `depth` hidden layers of `width` units.
- `dcgan-small`: images, sized by resolution: a start size s0 in 3..7 and k
  stride-2 stages with s0 * 2**k == resolution (8 -> 4·2, 28 -> 7·4,
  32 -> 4·8, 64 -> 4·16). G: a linear layer with BN to s0 x s0, k
  transposed convolutions with BN and ReLU, a 3x3 convolution and Tanh.
  D: k strided 4x4 convolutions with LeakyReLU(0.2) and no normalization,
  then a linear head. No paper's network: the quickstart and CPU smoke
  sweeps use it (it was `dcgan` before the architecture registry).
"""

from __future__ import annotations

import torch
from torch import nn

from bench.archs import ARCHS, Arch, Discriminator


@ARCHS.register("mlp")
class MLP(Arch):
    kind = "points"
    defaults = {"z_dim": 8, "width": 128}
    cpu_threads = 1  # tests/perf/bench_threads.py

    @classmethod
    def build(cls, arch, info, d_norm, depth: int = 3):
        width, out_dim = arch["width"], info["dim"]
        g_layers: list[nn.Module] = []
        d_layers: list[nn.Module] = []
        g_in, d_in = arch["z_dim"], out_dim
        for _ in range(depth):
            g_layers += [nn.Linear(g_in, width), nn.ReLU()]
            d_layers += [nn.Linear(d_in, width), nn.LeakyReLU(0.2)]
            g_in = d_in = width
        g_layers.append(nn.Linear(width, out_dim))
        return nn.Sequential(*g_layers), Discriminator(nn.Sequential(*d_layers), nn.Linear(width, 1))


def small_stages(resolution: int) -> tuple[int, int] | None:
    """(s0, k) with s0 * 2**k == resolution, s0 in 3..7, k >= 1; None if there is none."""
    k, s = 0, resolution
    while s > 7 and s % 2 == 0:
        s //= 2
        k += 1
    return None if s < 3 or k == 0 else (s, k)


@ARCHS.register("dcgan-small")
class DCGANSmall(Arch):
    defaults = {"z_dim": 64, "width": 32}
    cpu_threads = 1  # tests/perf/bench_threads.py

    @classmethod
    def problem(cls, info):
        problem = super().problem(info)
        if problem is None and small_stages(info["resolution"]) is None:
            return f"architecture {cls.name!r} needs a resolution s0 * 2**k with s0 in 3..7 and k >= 1, got {info['resolution']}"
        return problem

    @classmethod
    def sizes(cls, info):
        s0, k = small_stages(info["resolution"])
        return [s0 * 2**i for i in range(k, -1, -1)]

    @classmethod
    def build(cls, arch, info, d_norm):
        z_dim, width, resolution, channels = arch["z_dim"], arch["width"], info["resolution"], info["channels"]
        s0, k = small_stages(resolution)
        layers, c_in = small_d_trunk(channels, width, k)
        # Creation order (D's convolutions, G, D's head) fixes the initial weights of a seed:
        # kept as it was before the registry, so results stay comparable.
        G = SmallGenerator(z_dim, width, s0, k, channels)
        return G, Discriminator(nn.Sequential(*layers), nn.Linear(c_in * s0 * s0, 1))


def small_d_trunk(channels: int, width: int, k: int) -> tuple[list[nn.Module], int]:
    """D's feature trunk: k stride-2 4x4 convolutions (width, 2 width, ...) with LeakyReLU(0.2), then
    a flatten; and the channels of its last map. Shared by dcgan-small and cond-dcgan-small."""
    layers: list[nn.Module] = []
    c_in = channels
    for i in range(k):
        c_out = width * 2**i
        layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2)]
        c_in = c_out
    return [*layers, nn.Flatten()], c_in


class SmallGenerator(nn.Module):
    def __init__(self, z_dim: int, width: int, s0: int, k: int, channels: int):
        super().__init__()
        chs = [width * 2 ** (k - i) for i in range(k + 1)]
        self.s0, self.c0 = s0, chs[0]
        self.fc = nn.Sequential(nn.Linear(z_dim, chs[0] * s0 * s0), nn.BatchNorm1d(chs[0] * s0 * s0), nn.ReLU())
        blocks: list[nn.Module] = []
        for c_in, c_out in zip(chs[:-1], chs[1:]):
            blocks += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU()]
        blocks += [nn.Conv2d(chs[-1], channels, 3, 1, 1), nn.Tanh()]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.fc(z).view(-1, self.c0, self.s0, self.s0))
