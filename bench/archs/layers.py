"""Strided 4x4 (de)convolutions with TensorFlow "SAME" output sizes.

A stride-2 convolution maps n to ceil(n/2) and a stride-2 transposed
convolution maps ceil(n/2) back to n, for any n: TensorFlow pads
max((out - 1) * 2 + 4 - in, 0) pixels, one fewer before than after when the
total is odd. For even sizes this is PyTorch's padding 1; for odd ones the
convolution pads (1, 2) and the transposed convolution keeps the first n
rows and columns of its 2 * ceil(n/2) outputs.
"""

from __future__ import annotations

import torch
from torch import nn


class Crop(nn.Module):
    """Keep the first `size` rows and columns (TensorFlow's 'SAME' transposed convolution)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : self.size, : self.size]

    def extra_repr(self) -> str:
        return f"size={self.size}"


def down4(c_in: int, c_out: int, size_in: int) -> nn.Module:
    """4x4 stride-2 convolution from size_in to ceil(size_in / 2)."""
    if size_in % 2 == 0:
        return nn.Conv2d(c_in, c_out, 4, 2, 1)
    return nn.Sequential(nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(c_in, c_out, 4, 2, 0))


def up4(c_in: int, c_out: int, size_out: int) -> nn.Module:
    """4x4 stride-2 transposed convolution from ceil(size_out / 2) to size_out."""
    deconv = nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)
    return deconv if size_out % 2 == 0 else nn.Sequential(deconv, Crop(size_out))


def normal_init(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) weights and zero biases for every Linear/Conv layer; BN scale N(1, std)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
