"""The CcGAN authors' own conditional networks.

`ccgan-mlp`: improved_CcGAN `Simulation/models/cont_cond_GAN.py`, the
circle benchmark's networks. c (the method's label encoding: (sin 2 pi y,
cos 2 pi y) of the normalised angle y) is concatenated to the input of
both. G: [z, c] -> 6 x (Linear without bias, BatchNorm1d, ReLU), width 100
-> Linear without bias to the 2-D point. D: [x, c] -> 5 x (Linear without
bias, ReLU) -> Linear without bias to one logit (the authors end in a
Sigmoid and take log(D + 1e-20); the method's loss takes the logit, see
methods/ccgan.py). z has 2 dimensions (their DIM_GAN=2). PyTorch's default
initialisation, as theirs.

`ccgan-sngan`: Dual-NDA `UTKFace/UTKFace_64x64/CcGAN/NDA/models/sngan.py`
(the same network as improved_CcGAN's 64x64 `CcGAN_SNGAN`), for 64x64
images and c a label embedding (128-d in the authors' runs).
G: z -> Linear to 4 x 4 x 16w -> 4 residual up-blocks (16w -> 8w -> 4w ->
2w -> w; each: conditional BN, ReLU, nearest 2x upsampling, 3x3 conv,
conditional BN, ReLU, 3x3 conv; bypass: upsampling, 1x1 conv) -> BN, ReLU,
3x3 conv, Tanh. The conditional BN is theirs: BN without affine parameters,
then out + out * gamma(c) + beta(c), gamma and beta Linear maps of c
without bias (PyTorch's default initialisation).
D: an optimized first block (64 -> 32) and residual down-blocks to
32 -> 16 -> 8 -> 4 (w, 2w, 4w, 8w channels), a stride-1 block to 16w,
ReLU, flattened (16w x 4 x 4, no sum pooling) -> Linear to one output, plus
the projection <V c, features> with V a Linear map without bias.
Spectral normalization on every convolution and Linear layer of D, as in
their code (so the method does not add it); Xavier-uniform initialisation
with gain sqrt(2) for the residual 3x3 convolutions and 1 for the others,
as theirs. w = 64 and z_dim = 256 are their settings (DIM_GAN=256,
gen_ch = disc_ch = 64).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bench.archs import ARCHS, Arch, spectral_normalize
from bench.archs.conditional import ConditionalDiscriminator


class ConcatMLP(nn.Module):
    """net([input, c]) for the simulation's G and D."""

    def __init__(self, net: nn.Module, squeeze: bool):
        super().__init__()
        self.net, self.squeeze = net, squeeze

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        out = self.net(torch.cat([x, c], dim=1))
        return out.squeeze(1) if self.squeeze else out


@ARCHS.register("ccgan-mlp")
class CcGANMLP(Arch):
    kind = "points"
    conditional = True
    paper = "Ding et al. 2021 (CcGAN), Simulation/models/cont_cond_GAN.py"
    defaults = {"z_dim": 2, "width": 100}
    cpu_threads = 1  # tests/perf/bench_threads.py

    @classmethod
    def build(cls, arch, info, d_norm, cond_dim):
        width, out_dim = arch["width"], info["dim"]
        g_layers: list[nn.Module] = []
        g_in = arch["z_dim"] + cond_dim
        for _ in range(6):
            g_layers += [nn.Linear(g_in, width, bias=False), nn.BatchNorm1d(width), nn.ReLU()]
            g_in = width
        g_layers.append(nn.Linear(width, out_dim, bias=False))
        d_layers: list[nn.Module] = []
        d_in = out_dim + cond_dim
        for _ in range(5):
            d_layers += [nn.Linear(d_in, width, bias=False), nn.ReLU()]
            d_in = width
        d_layers.append(nn.Linear(width, 1, bias=False))
        return ConcatMLP(nn.Sequential(*g_layers), squeeze=False), ConcatMLP(nn.Sequential(*d_layers), squeeze=True)


def _xavier(layer: nn.Module, gain: float) -> nn.Module:
    nn.init.xavier_uniform_(layer.weight, gain)
    return layer


class CcGANBatchNorm(nn.Module):
    """The authors' conditional BN: out + out * gamma(c) + beta(c) after an affine-free BN."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gamma = nn.Linear(cond_dim, channels, bias=False)
        self.beta = nn.Linear(cond_dim, channels, bias=False)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        out = self.bn(x)
        return out + out * self.gamma(c)[:, :, None, None] + self.beta(c)[:, :, None, None]


class UpBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, cond_dim: int):
        super().__init__()
        self.bn1, self.bn2 = CcGANBatchNorm(c_in, cond_dim), CcGANBatchNorm(c_out, cond_dim)
        self.conv1 = _xavier(nn.Conv2d(c_in, c_out, 3, 1, 1), math.sqrt(2))
        self.conv2 = _xavier(nn.Conv2d(c_out, c_out, 3, 1, 1), math.sqrt(2))
        self.bypass = _xavier(nn.Conv2d(c_in, c_out, 1, 1, 0), 1.0)
        self.up = nn.Upsample(scale_factor=2)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.up(self.relu(self.bn1(x, c))))
        out = self.conv2(self.relu(self.bn2(out, c)))
        return out + self.bypass(self.up(x))


class SNGANGenerator(nn.Module):
    def __init__(self, z_dim: int, cond_dim: int, w: int, channels: int):
        super().__init__()
        self.w = w
        self.dense = _xavier(nn.Linear(z_dim, 4 * 4 * 16 * w), 1.0)
        self.blocks = nn.ModuleList(UpBlock(16 * w // 2**i, 8 * w // 2**i, cond_dim) for i in range(4))
        self.final = nn.Sequential(nn.BatchNorm2d(w), nn.ReLU(), _xavier(nn.Conv2d(w, channels, 3, 1, 1), 1.0), nn.Tanh())

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        out = self.dense(z).view(-1, 16 * self.w, 4, 4)
        for block in self.blocks:
            out = block(out, c)
        return self.final(out)


class DownBlock(nn.Module):
    """A residual D block; `first` is the optimized block on the image (no ReLU before it)."""

    def __init__(self, c_in: int, c_out: int, down: bool, first: bool = False):
        super().__init__()
        conv1 = _xavier(nn.Conv2d(c_in, c_out, 3, 1, 1), math.sqrt(2))
        conv2 = _xavier(nn.Conv2d(c_out, c_out, 3, 1, 1), math.sqrt(2))
        bypass = _xavier(nn.Conv2d(c_in, c_out, 1, 1, 0), 1.0)
        pool = [nn.AvgPool2d(2)] if down else []
        main = [conv1, nn.ReLU(), conv2] if first else [nn.ReLU(), conv1, nn.ReLU(), conv2]
        self.main = nn.Sequential(*main, *pool)
        self.bypass = nn.Sequential(*pool, bypass) if first else nn.Sequential(bypass, *pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.bypass(x)


@ARCHS.register("ccgan-sngan")
class CcGANSNGAN(Arch):
    conditional = True
    paper = "Ding et al. 2023 (Dual-NDA) / improved CcGAN: SNGAN-style 64x64 ResNet, models/sngan.py"
    defaults = {"z_dim": 256, "width": 64}

    @classmethod
    def problem(cls, info):
        problem = super().problem(info)
        if problem is None and info["resolution"] != 64:
            return f"architecture {cls.name!r} is the authors' 64x64 network, the dataset has {info['resolution']}x{info['resolution']}"
        return problem

    @classmethod
    def sizes(cls, info):
        return [64, 32, 16, 8, 4]

    @classmethod
    def build(cls, arch, info, d_norm, cond_dim):
        w, channels = arch["width"], info["channels"]
        G = SNGANGenerator(arch["z_dim"], cond_dim, w, channels)
        features = nn.Sequential(
            DownBlock(channels, w, down=True, first=True),
            DownBlock(w, 2 * w, down=True),
            DownBlock(2 * w, 4 * w, down=True),
            DownBlock(4 * w, 8 * w, down=True),
            DownBlock(8 * w, 16 * w, down=False),
            nn.ReLU(),
            nn.Flatten(),
        )
        head = _xavier(nn.Linear(16 * w * 16, 1), 1.0)
        embed = _xavier(nn.Linear(cond_dim, 16 * w * 16, bias=False), 1.0)
        D = spectral_normalize(ConditionalDiscriminator(features, head, embed))
        return G, D
