"""`resnet-sngan`: the 32x32 ResNet of Miyato et al. 2018 (Table 4, after
Gulrajani et al. 2017), as kwotsin/mimicry's `sngan_32` builds it.

G: z -> dense to (s/8)^2 x 2w -> three up-sampling residual blocks (BN,
ReLU, 3x3 conv, BN, ReLU, 3x3 conv; a 1x1 conv on the up-sampled shortcut)
-> BN, ReLU, 3x3 conv to the image channels, Tanh.
D: an "optimized" first block (3x3 conv, ReLU, 3x3 conv, 2x2 average pool;
shortcut: pool then 1x1 conv), a down-sampling block, two plain blocks
(ReLU, 3x3 conv, ReLU, 3x3 conv; identity shortcut), ReLU, global sum
pooling -> dense to 1. w = 128 gives mimicry's ndf = 128, ngf = 256 (the
paper doubles G's feature maps relative to Gulrajani et al.).

Choices:
- Xavier-uniform initialization with gain sqrt(2) for the residual
  convolutions and 1 for shortcuts and dense layers (mimicry).
- Bilinear up-sampling (mimicry; Miyato's Chainer code uses nearest
  neighbour), to the ceil-halving stage sizes: 4 -> 8 -> 16 -> 32, and
  4 -> 7 -> 14 -> 28 for 28x28 data.
- D's blocks apply ReLU out of place: the shortcut sees the block's input,
  as in Miyato's Chainer code (mimicry's in-place ReLU also rectifies the
  identity shortcut of the plain blocks).
- No normalization in D (Miyato et al.'s Figure 8), so gradient penalties
  apply as they are; spectral normalization is the method's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bench.archs import ARCHS, Arch, Discriminator


def _xavier(layer: nn.Module, gain: float) -> nn.Module:
    nn.init.xavier_uniform_(layer.weight, gain)
    return layer


class GBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, size_out: int):
        super().__init__()
        self.size_out = size_out
        self.b1, self.b2 = nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)
        self.c1 = _xavier(nn.Conv2d(c_in, c_out, 3, 1, 1), math.sqrt(2))
        self.c2 = _xavier(nn.Conv2d(c_out, c_out, 3, 1, 1), math.sqrt(2))
        self.c_sc = _xavier(nn.Conv2d(c_in, c_out, 1, 1, 0), 1.0)

    def up(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=(self.size_out, self.size_out), mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c1(self.up(F.relu(self.b1(x))))
        h = self.c2(F.relu(self.b2(h)))
        return h + self.c_sc(self.up(x))


class DBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, downsample: bool, optimized: bool = False):
        super().__init__()
        self.downsample, self.optimized = downsample, optimized
        self.c1 = _xavier(nn.Conv2d(c_in, c_out, 3, 1, 1), math.sqrt(2))
        self.c2 = _xavier(nn.Conv2d(c_out, c_out, 3, 1, 1), math.sqrt(2))
        learnable = optimized or downsample or c_in != c_out
        self.c_sc = _xavier(nn.Conv2d(c_in, c_out, 1, 1, 0), 1.0) if learnable else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c1(x if self.optimized else F.relu(x))
        h = self.c2(F.relu(h))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        if self.optimized:  # pool, then the 1x1 convolution
            return h + self.c_sc(F.avg_pool2d(x, 2))
        if self.c_sc is None:
            return h + x
        s = self.c_sc(x)
        return h + (F.avg_pool2d(s, 2) if self.downsample else s)


class SumPool(nn.Module):
    """ReLU, then the sum over spatial positions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x).sum(dim=(2, 3))


@ARCHS.register("resnet-sngan")
class ResNetSNGAN(Arch):
    paper = "Miyato et al. 2018, Table 4 (ResNet), as mimicry's sngan_32"
    defaults = {"z_dim": 128, "width": 128}
    halvings = 3

    @classmethod
    def build(cls, arch, info, d_norm):
        w, channels = arch["width"], info["channels"]
        s0, s1, s2, s3 = cls.sizes(info)
        ngf = 2 * w
        G = nn.Sequential(
            _xavier(nn.Linear(arch["z_dim"], s3 * s3 * ngf), 1.0), nn.Unflatten(1, (ngf, s3, s3)),
            GBlock(ngf, ngf, s2), GBlock(ngf, ngf, s1), GBlock(ngf, ngf, s0),
            nn.BatchNorm2d(ngf), nn.ReLU(), _xavier(nn.Conv2d(ngf, channels, 3, 1, 1), 1.0), nn.Tanh(),
        )  # fmt: skip
        features = nn.Sequential(
            DBlock(channels, w, downsample=True, optimized=True), DBlock(w, w, downsample=True),
            DBlock(w, w, downsample=False), DBlock(w, w, downsample=False), SumPool(),
        )  # fmt: skip
        return G, Discriminator(features, _xavier(nn.Linear(w, 1), 1.0))
