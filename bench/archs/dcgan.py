"""`dcgan`: Radford et al. 2016, "Unsupervised Representation Learning with
Deep Convolutional Generative Adversarial Networks".

G: z -> projected and reshaped to 4x4 (a linear layer), then 4x4 stride-2
transposed convolutions halving the channels (8w, 4w, 2w, w for 64x64),
BN and ReLU after every layer but the last, Tanh on the output.
D: 4x4 stride-2 convolutions doubling the channels (w, 2w, ...), LeakyReLU
0.2 after each, BN after each but the first -> a linear head (the paper's
last 4x4 convolution to one output). Weights N(0, 0.02), BN scales
N(1, 0.02), as the paper and the PyTorch reference (also WGAN's `dcgan.py`).

Choices:
- The number of stride-2 stages is the number of ceil-halvings that bring
  the resolution to 4 or below: 64 -> 4 (the paper), 32 -> 4, 28 -> 4
  (28, 14, 7, 4; TensorFlow "SAME" sizes, see bench.archs.layers).
- With `per_sample_d` (gradient penalties: wgan-gp, cn-lsgan) D's BN
  becomes layer normalization, as Gulrajani et al. 2017 recommend; no
  paper ran a gradient penalty on this D.
- The paper uses 100-d uniform noise; the prior is the method's (N(0, I)).
"""

from __future__ import annotations

from torch import nn

from bench.archs import ARCHS, Arch, Discriminator, ceil_halvings, d_norm_layer
from bench.archs.layers import down4, normal_init, up4


@ARCHS.register("dcgan")
class DCGAN(Arch):
    paper = "Radford et al. 2016 (DCGAN)"
    defaults = {"z_dim": 100, "width": 64}

    @classmethod
    def problem(cls, info):
        problem = super().problem(info)
        if problem is None and info["resolution"] < 5:
            return f"architecture 'dcgan' needs a resolution >= 5, got {info['resolution']}"
        return problem

    @classmethod
    def sizes(cls, info):
        sizes = [info["resolution"]]
        while sizes[-1] > 4:
            sizes = ceil_halvings(info["resolution"], len(sizes))
        return sizes

    @classmethod
    def build(cls, arch, info, d_norm):
        w, channels = arch["width"], info["channels"]
        sizes = cls.sizes(info)
        k = len(sizes) - 1
        chs = [w * 2**i for i in range(k)]  # D's stage channels; G's in reverse
        s_k = sizes[-1]
        g_layers: list[nn.Module] = [
            nn.Linear(arch["z_dim"], s_k * s_k * chs[-1]), nn.Unflatten(1, (chs[-1], s_k, s_k)),
            nn.BatchNorm2d(chs[-1]), nn.ReLU(),
        ]  # fmt: skip
        for i in range(k - 1, 0, -1):
            g_layers += [up4(chs[i], chs[i - 1], sizes[i]), nn.BatchNorm2d(chs[i - 1]), nn.ReLU()]
        g_layers += [up4(chs[0], channels, sizes[0]), nn.Tanh()]
        d_layers: list[nn.Module] = [down4(channels, chs[0], sizes[0]), nn.LeakyReLU(0.2)]
        for i in range(1, k):
            d_layers += [down4(chs[i - 1], chs[i], sizes[i]), d_norm_layer(d_norm, chs[i]), nn.LeakyReLU(0.2)]
        d_layers.append(nn.Flatten())
        G = nn.Sequential(*g_layers)
        D = Discriminator(nn.Sequential(*d_layers), nn.Linear(s_k * s_k * chs[-1], 1))
        normal_init(G)
        normal_init(D)
        return G, D
