"""Conditional networks for CPU budgets: G(z, c) with conditional batch norm,
D(x, c) with a projection head.

c is a conditional method's encoding of a label, a vector of width
`cond_dim`: a one-hot class (cgan) or a label embedding (CcGAN).

- Conditional batch norm (de Vries et al. 2017; Miyato & Koyama 2018 in G):
  batch norm without its own affine parameters, then
  gamma(c) * x + beta(c) with gamma(c) = 1 + W_g c and beta(c) = W_b c,
  W_g and W_b zero at the start. With one-hot c this is Miyato & Koyama's
  per-class scale and shift, initialised to 1 and 0.
- Projection discriminator (Miyato & Koyama 2018, "cGANs with Projection
  Discriminator", Eq. 3): D(x, c) = head(phi(x)) + <V c, phi(x)>, phi the
  feature trunk (`features`), V a linear map without bias (with one-hot c:
  the class embedding). `head(features(x))` is the unconditional part.

`cond-mlp` is `mlp` with these two changes; `cond-dcgan-small` is
`dcgan-small` with them (the same stage sizes).
"""

from __future__ import annotations

import torch
from torch import nn

from bench.archs import ARCHS, Arch
from bench.archs.small import DCGANSmall, small_d_trunk, small_stages


class ConditionalBatchNorm(nn.Module):
    """Batch norm whose scale and shift are linear in c (1 and 0 at the start)."""

    def __init__(self, num_features: int, cond_dim: int, spatial: bool):
        super().__init__()
        self.bn = (nn.BatchNorm2d if spatial else nn.BatchNorm1d)(num_features, affine=False)
        self.gamma = nn.Linear(cond_dim, num_features, bias=False)
        self.beta = nn.Linear(cond_dim, num_features, bias=False)
        nn.init.zeros_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shape = (len(x), -1) + (1,) * (x.dim() - 2)
        return self.bn(x) * (1 + self.gamma(c).view(shape)) + self.beta(c).view(shape)


class ConditionalSequential(nn.Sequential):
    """A Sequential whose conditional batch norms also receive c."""

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, c) if isinstance(layer, ConditionalBatchNorm) else layer(x)
        return x


class ConditionalDiscriminator(nn.Module):
    """D(x, c) = head(features(x)) + <embed(c), features(x)> (the projection)."""

    def __init__(self, features: nn.Module, head: nn.Module, embed: nn.Module):
        super().__init__()
        self.features = features
        self.head = head
        self.embed = embed
        self.feature_dim = head.in_features  # the width of features(x), which further heads build on

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        phi = self.features(x)
        return self.head(phi).squeeze(1) + (self.embed(c) * phi).sum(dim=1)


class ConditionalGenerator(nn.Module):
    """G(z, c) = body(z, c) reshaped into (C, s, s) images by `tail` (or points when tail is None)."""

    def __init__(self, body: ConditionalSequential, tail: ConditionalSequential | None = None, shape: tuple | None = None):
        super().__init__()
        self.body, self.tail, self.shape = body, tail, shape

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.body(z, c)
        return h if self.tail is None else self.tail(h.view(len(h), *self.shape), c)


@ARCHS.register("cond-mlp")
class ConditionalMLP(Arch):
    kind = "points"
    conditional = True
    paper = "harness (mlp with conditional BN in G and a projection D)"
    defaults = {"z_dim": 8, "width": 128}
    cpu_threads = 1  # tests/perf/bench_threads.py

    @classmethod
    def build(cls, arch, info, d_norm, cond_dim, depth: int = 3):
        width, out_dim = arch["width"], info["dim"]
        g_layers: list[nn.Module] = []
        d_layers: list[nn.Module] = []
        g_in, d_in = arch["z_dim"], out_dim
        for _ in range(depth):
            g_layers += [nn.Linear(g_in, width), ConditionalBatchNorm(width, cond_dim, spatial=False), nn.ReLU()]
            d_layers += [nn.Linear(d_in, width), nn.LeakyReLU(0.2)]
            g_in = d_in = width
        g_layers.append(nn.Linear(width, out_dim))
        G = ConditionalGenerator(ConditionalSequential(*g_layers))
        D = ConditionalDiscriminator(nn.Sequential(*d_layers), nn.Linear(width, 1), nn.Linear(cond_dim, width, bias=False))
        return G, D


@ARCHS.register("cond-dcgan-small")
class ConditionalDCGANSmall(DCGANSmall):
    """dcgan-small's stages, defaults and resolution rule, with a conditional G and a projection D."""

    conditional = True
    paper = "harness (dcgan-small with conditional BN in G and a projection D)"

    @classmethod
    def build(cls, arch, info, d_norm, cond_dim):
        z_dim, width, channels = arch["z_dim"], arch["width"], info["channels"]
        s0, k = small_stages(info["resolution"])
        d_layers, c_in = small_d_trunk(channels, width, k)
        chs = [width * 2 ** (k - i) for i in range(k + 1)]
        body = ConditionalSequential(nn.Linear(z_dim, chs[0] * s0 * s0),
                                     ConditionalBatchNorm(chs[0] * s0 * s0, cond_dim, spatial=False), nn.ReLU())  # fmt: skip
        tail: list[nn.Module] = []
        for ch_in, ch_out in zip(chs[:-1], chs[1:]):
            tail += [nn.ConvTranspose2d(ch_in, ch_out, 4, 2, 1), ConditionalBatchNorm(ch_out, cond_dim, spatial=True), nn.ReLU()]
        tail += [nn.Conv2d(chs[-1], channels, 3, 1, 1), nn.Tanh()]
        G = ConditionalGenerator(body, ConditionalSequential(*tail), (chs[0], s0, s0))
        feat = c_in * s0 * s0
        D = ConditionalDiscriminator(nn.Sequential(*d_layers), nn.Linear(feat, 1), nn.Linear(cond_dim, feat, bias=False))
        return G, D
