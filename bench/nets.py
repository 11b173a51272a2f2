"""Shared network architectures, chosen by the dataset's kind and size.

- `mlp`: for 2-D points, a ReLU generator and a LeakyReLU discriminator.
- `dcgan`: for images, sized by resolution: a start size s0 in 3..7 and k
  stride-2 stages with s0 * 2**k == resolution (8 -> 4·2, 28 -> 7·4,
  32 -> 4·8, 64 -> 4·16). The discriminator has no batch norm so that
  gradient penalties and critics (WGAN) stay valid.

Every discriminator is `head(features(x))`: methods that need D's features
(AdaptiveMix, contrastive heads) use the split; spectral normalization wraps
every D layer when asked.
"""

from __future__ import annotations

import torch
from torch import nn


class Discriminator(nn.Module):
    def __init__(self, features: nn.Module, head: nn.Module):
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)


def mlp_pair(z_dim: int, width: int, out_dim: int = 2, depth: int = 3) -> tuple[nn.Module, Discriminator]:
    g_layers: list[nn.Module] = []
    d_layers: list[nn.Module] = []
    g_in, d_in = z_dim, out_dim
    for _ in range(depth):
        g_layers += [nn.Linear(g_in, width), nn.ReLU()]
        d_layers += [nn.Linear(d_in, width), nn.LeakyReLU(0.2)]
        g_in = d_in = width
    g_layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*g_layers), Discriminator(nn.Sequential(*d_layers), nn.Linear(width, 1))


def _stages(resolution: int) -> tuple[int, int]:
    k = 0
    s = resolution
    while s > 7 and s % 2 == 0:
        s //= 2
        k += 1
    if s < 3 or k == 0:
        raise ValueError(f"dcgan supports resolutions s0 * 2**k with s0 in 3..7 and k >= 1, got {resolution}")
    return s, k


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int, width: int, resolution: int, channels: int):
        super().__init__()
        s0, k = _stages(resolution)
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


def dcgan_pair(z_dim: int, width: int, resolution: int, channels: int) -> tuple[nn.Module, Discriminator]:
    s0, k = _stages(resolution)
    layers: list[nn.Module] = []
    c_in = channels
    for i in range(k):
        c_out = width * 2**i
        layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2)]
        c_in = c_out
    layers.append(nn.Flatten())
    features = nn.Sequential(*layers)
    return DCGANGenerator(z_dim, width, resolution, channels), Discriminator(features, nn.Linear(c_in * s0 * s0, 1))


def spectral_normalize(module: nn.Module) -> nn.Module:
    """Wrap every Linear/Conv layer of `module` in spectral normalization."""
    for name, child in module.named_children():
        if isinstance(child, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            spectral_normalize(child)
    return module


def build_pair(arch: dict, info: dict) -> tuple[nn.Module, Discriminator]:
    """(G, D) for a resolved `arch` section and a dataset's `info()`."""
    if arch["name"] == "mlp":
        return mlp_pair(arch["z_dim"], arch["width"], out_dim=info["dim"])
    if arch["name"] == "dcgan":
        return dcgan_pair(arch["z_dim"], arch["width"], info["resolution"], info["channels"])
    raise ValueError(f"unknown architecture {arch['name']!r}")


DEFAULT_ARCH = {
    "points": {"name": "mlp", "z_dim": 8, "width": 128},
    "images": {"name": "dcgan", "z_dim": 64, "width": 32},
}
