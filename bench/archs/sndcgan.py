"""`sn-dcgan`: the "standard CNN" of Miyato et al. 2018, "Spectral
Normalization for Generative Adversarial Networks", Appendix B.4, Table 3.

G: z -> dense to (s/8)^2 x 8w, BN, ReLU -> three 4x4 stride-2 transposed
convolutions to 4w, 2w, w channels, each with BN and ReLU -> 3x3 stride-1
convolution to the image channels, Tanh.
D: seven convolutions, 3x3 stride 1 and 4x4 stride 2 alternating, each
followed by LeakyReLU(0.1), channels w, 2w, 2w, 4w, 4w, 8w, 8w -> dense to 1.
w = 64 and z_dim = 128 give the paper's 512-channel bottleneck.

Choices where the sources differ or are silent:
- D's channels follow the public implementations, chainer-gan-lib's
  `DCGANDiscriminator` (Preferred Networks, Miyato's lab) and compare_gan's
  `sndcgan.py` (whose SN-DCGAN produced the PA-GAN paper's Fashion-MNIST
  numbers): 64, 128, 128, 256, 256, 512, 512. The paper's Table 3 lists
  64, 64, 128, 128, 256, 256, 512.
- G's dense layer is followed by BN and ReLU as in both implementations
  (the table shows only "dense").
- N(0, 0.02) initialization of every weight (chainer-gan-lib's wscale).
- Stage sizes by ceil-halving (TensorFlow "SAME", see bench.archs.layers):
  32 -> 4 (CIFAR-10), 48 -> 6 (STL-10, the paper's M_g = 6), 28 -> 4
  (compare_gan on Fashion-MNIST).
- No spectral normalization here: the method adds it (sngan does).
"""

from __future__ import annotations

from torch import nn

from bench.archs import ARCHS, Arch, Discriminator
from bench.archs.layers import down4, normal_init, up4


@ARCHS.register("sn-dcgan")
class SNDCGAN(Arch):
    paper = "Miyato et al. 2018, Table 3 (standard CNN)"
    defaults = {"z_dim": 128, "width": 64}
    halvings = 3

    @classmethod
    def build(cls, arch, info, d_norm):
        w, channels = arch["width"], info["channels"]
        s0, s1, s2, s3 = cls.sizes(info)
        G = nn.Sequential(
            nn.Linear(arch["z_dim"], s3 * s3 * 8 * w), nn.BatchNorm1d(s3 * s3 * 8 * w), nn.ReLU(),
            nn.Unflatten(1, (8 * w, s3, s3)),
            up4(8 * w, 4 * w, s2), nn.BatchNorm2d(4 * w), nn.ReLU(),
            up4(4 * w, 2 * w, s1), nn.BatchNorm2d(2 * w), nn.ReLU(),
            up4(2 * w, w, s0), nn.BatchNorm2d(w), nn.ReLU(),
            nn.Conv2d(w, channels, 3, 1, 1), nn.Tanh(),
        )  # fmt: skip
        lrelu = lambda: nn.LeakyReLU(0.1)  # noqa: E731
        features = nn.Sequential(
            nn.Conv2d(channels, w, 3, 1, 1), lrelu(),
            down4(w, 2 * w, s0), lrelu(),
            nn.Conv2d(2 * w, 2 * w, 3, 1, 1), lrelu(),
            down4(2 * w, 4 * w, s1), lrelu(),
            nn.Conv2d(4 * w, 4 * w, 3, 1, 1), lrelu(),
            down4(4 * w, 8 * w, s2), lrelu(),
            nn.Conv2d(8 * w, 8 * w, 3, 1, 1), lrelu(),
            nn.Flatten(),
        )  # fmt: skip
        D = Discriminator(features, nn.Linear(s3 * s3 * 8 * w, 1))
        normal_init(G)
        normal_init(D)
        return G, D
