"""Network architectures chosen by name: `arch: {name: ..., z_dim: ..., width: ...}`.

| name | for | what |
|---|---|---|
| `mlp` | 2-D points | ReLU G, LeakyReLU D (the harness default for points) |
| `dcgan-small` | images | two stride-2 stages from s0 in 3..7, no BN in D (the harness default for images, CPU budgets) |
| `dcgan` | images | Radford et al. 2016: BN in G and D, ReLU / LeakyReLU 0.2, N(0, 0.02) init |
| `sn-dcgan` | images | Miyato et al. 2018 "standard CNN" (Table 3), channels as compare_gan / chainer-gan-lib |
| `resnet-sngan` | images | Miyato et al. 2018 ResNet (Table 4), as mimicry's `sngan_32` |

Every discriminator is `Discriminator(features, head)` with D(x) =
head(features(x)), features(x) a flat (N, feature_dim) vector: feature
regularizers (AdaptiveMix), samplers (DRS), input or feature augmentation
(PA) and the projection heads of contrastive methods (ContraD, built by
`Method.d_heads` on `D.feature_dim`) rely on the split.

Sizes: `dcgan`, `sn-dcgan` and `resnet-sngan` size every stage by halving
the data resolution and rounding up (TensorFlow "SAME" arithmetic, as
compare_gan, whose SN-DCGAN ran the PA-GAN paper's 28x28 Fashion-MNIST):
32 -> 16 -> 8 -> 4 as in the papers, 28 -> 14 -> 7 -> 4 without padding or
cropping the data, 48 -> 24 -> 12 -> 6 (Miyato et al.'s STL-10 layout). The
stage sizes go into each result (`method_info.arch.sizes`).

Batch norm in D breaks a per-sample gradient penalty (the penalty assumes
D(x) depends on x alone). A method that needs a per-sample D declares
`per_sample_d`; architectures with BN in D then use layer normalization
there instead (GroupNorm with one group), the replacement Gulrajani et al.
2017 recommend. Spectral normalization is the method's (`spectral_norm`),
applied to every Linear/Conv layer of D whatever the architecture.

Third-party architectures register in `ARCHS` from a plugin file.
"""

from __future__ import annotations

import copy
import math
from typing import ClassVar

import torch
from torch import nn

from bench.registry import Registry

ARCHS = Registry("architecture", "ganbench.archs")
DEFAULT_ARCH_NAME = {"points": "mlp", "images": "dcgan-small"}
PAPER = "paper"  # `arch: {name: paper}`: the method's own `paper_arch`


class Discriminator(nn.Module):
    def __init__(self, features: nn.Module, head: nn.Linear):
        super().__init__()
        self.features = features
        self.head = head
        self.feature_dim = head.in_features  # the width of features(x), which further heads build on

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)


class Arch:
    """An architecture: defaults for `z_dim` and `width`, and a builder of (G, D)."""

    name: ClassVar[str]  # set by the registry
    kind: ClassVar[str] = "images"
    paper: ClassVar[str] = ""
    defaults: ClassVar[dict] = {}
    halvings: ClassVar[int | None] = None  # stride-2 stages sized by ceil-halving; None: the arch sizes itself

    @classmethod
    def problem(cls, info: dict) -> str | None:
        """Why this architecture cannot serve a dataset with these declarations, or None."""
        if info["kind"] != cls.kind:
            other = DEFAULT_ARCH_NAME[info["kind"]]
            return f"architecture {cls.name!r} is for {cls.kind}, the dataset has {info['kind']} (use {other!r})"
        if cls.halvings is not None and info["resolution"] < 2**cls.halvings:
            return f"architecture {cls.name!r} halves the image {cls.halvings} times and needs >= {2**cls.halvings} px, got {info['resolution']}"
        return None

    @classmethod
    def sizes(cls, info: dict) -> list[int]:
        """Spatial size of each stage, data resolution first."""
        if cls.kind != "images" or cls.halvings is None:
            return []
        return ceil_halvings(info["resolution"], cls.halvings)

    @classmethod
    def build(cls, arch: dict, info: dict, d_norm: str) -> tuple[nn.Module, Discriminator]:
        raise NotImplementedError


def ceil_halvings(resolution: int, n: int) -> list[int]:
    """[r, ceil(r/2), ceil(r/4), ...], n halvings."""
    sizes = [resolution]
    for _ in range(n):
        sizes.append(math.ceil(sizes[-1] / 2))
    return sizes


def d_norm_layer(kind: str, channels: int) -> nn.Module:
    """The normalization a D stage uses: batch norm, or layer norm where a per-sample D is needed."""
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.GroupNorm(1, channels)


class BranchNorm(nn.Module):
    """One copy of a normalization layer per branch of a network that runs in
    two modes (SDCLR's dual batch norm: the dense and the pruned network share
    weights, each keeps its own statistics and affine parameters); `branch`
    picks the copy the next forward pass uses."""

    def __init__(self, norm: nn.Module, branches: int = 2):
        super().__init__()
        self.copies = nn.ModuleList([norm] + [copy.deepcopy(norm) for _ in range(branches - 1)])
        self.branch = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.copies[self.branch](x)


def branch_norms(module: nn.Module, branches: int = 2) -> list[BranchNorm]:
    """Replace every normalization layer under `module` by a BranchNorm; returns them."""
    found = []
    for name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            setattr(module, name, BranchNorm(child, branches))
            found.append(getattr(module, name))
        else:
            found.extend(branch_norms(child, branches))
    return found


def resolve_arch(arch: dict, kind: str, paper_arch: str | None) -> tuple[dict | None, str | None]:
    """(resolved arch section, None) or (None, problem): the name (defaulting
    by the dataset kind; `paper` meaning `paper_arch`), the architecture's
    default z_dim and width, then the given values."""
    name = arch.get("name", DEFAULT_ARCH_NAME[kind])
    if name == PAPER:
        if kind == "points":
            name = DEFAULT_ARCH_NAME["points"]
        elif paper_arch is None:
            return None, f"`{PAPER}` asks for the method's paper architecture, but it declares none (paper_arch); name one of {', '.join(ARCHS.names())}"
        else:
            name = paper_arch
    if not isinstance(name, str) or name not in ARCHS:
        return None, ARCHS.unknown_message(name) + f" (or {PAPER!r})"
    return {"name": name, **ARCHS.get(name).defaults, **{k: v for k, v in arch.items() if k != "name"}}, None


def build_pair(arch: dict, info: dict, per_sample_d: bool = False) -> tuple[nn.Module, Discriminator]:
    """(G, D) for a resolved `arch` section and a dataset's `info()`."""
    cls = ARCHS.get(arch["name"])
    problem = cls.problem(info)
    if problem:
        raise ValueError(problem)
    return cls.build(arch, info, "layer" if per_sample_d else "batch")


def arch_facts(arch: dict, info: dict) -> dict:
    """What a result records about its networks."""
    cls = ARCHS.get(arch["name"])
    facts = {**arch}
    sizes = cls.sizes(info)
    if sizes:
        facts["sizes"] = sizes
        facts["rule"] = "stage sizes by ceil-halving the data resolution (TensorFlow 'SAME')"
    return facts


def spectral_normalize(module: nn.Module) -> nn.Module:
    """Wrap every Linear/Conv layer of `module` in spectral normalization."""
    for name, child in module.named_children():
        if isinstance(child, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            spectral_normalize(child)
    return module


def weight_layers(module: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """(parent, attribute, layer) for each Linear/Conv2d under `module`, in registration order."""
    found = []
    for name, child in module.named_children():
        if isinstance(child, (nn.Linear, nn.Conv2d)):
            found.append((module, name, child))
        else:
            found.extend(weight_layers(child))
    return found


from bench.archs import dcgan, resnet, small, sndcgan  # noqa: E402,F401  (they register themselves)
