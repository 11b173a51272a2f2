"""The `gan` step written plainly, for the perf scripts' reference runs.

Not a pytest module. The networks come from the harness's architecture
registry (bench.archs.build_pair), so a bare loop and a harness cell of the
same `arch` train the same (G, D); the losses are `gan`'s (non-saturating,
softplus form), the optimizer `gan`'s (fused Adam 2e-4, betas 0.5, 0.999, one D
step per G step). No logging, no checkpoint, batches drawn by index from a
tensor already on the device (indices and latents drawn there): the fastest
plain loop, which the harness is held to.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.archs import ARCHS, build_pair  # noqa: E402


def resolved_arch(name: str, **overrides) -> dict:
    """An `arch` section as a cell resolves it: the architecture's defaults, then `overrides`."""
    return {"name": name, **ARCHS.get(name).defaults, **overrides}


def points_info() -> dict:
    return {"kind": "points", "label_type": "class", "num_classes": 8, "resolution": None, "channels": None, "dim": 2}


def image_info(resolution: int, channels: int = 1) -> dict:
    return {"kind": "images", "label_type": "class", "num_classes": 10, "resolution": resolution, "channels": channels, "dim": None}


def fake_data(info: dict, n: int = 10_000) -> torch.Tensor:
    """Random inputs of the data's shape (a step's cost does not depend on the values)."""
    g = torch.Generator().manual_seed(0)
    shape = (n, info["dim"]) if info["kind"] == "points" else (n, info["channels"], info["resolution"], info["resolution"])
    return torch.rand(shape, generator=g) * 2 - 1


class BareGAN:
    """`steps` plain `gan` steps per `run` call on (G, D) of `arch`."""

    def __init__(self, arch: dict, info: dict, x: torch.Tensor, batch: int, device: torch.device | None = None):
        torch.manual_seed(0)
        self.device = device or x.device
        self.G, self.D = (m.to(self.device) for m in build_pair(arch, info))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999), fused=True)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999), fused=True)
        self.x, self.batch, self.z_dim = x.to(self.device), batch, arch["z_dim"]

    def step(self) -> None:
        real = self.x[torch.randint(len(self.x), (self.batch,), device=self.device)]
        with torch.no_grad():
            fake = self.G(torch.randn(self.batch, self.z_dim, device=self.device))
        d_loss = F.softplus(-self.D(real)).mean() + F.softplus(self.D(fake)).mean()
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        g_loss = F.softplus(-self.D(self.G(torch.randn(self.batch, self.z_dim, device=self.device)))).mean()
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.step()
