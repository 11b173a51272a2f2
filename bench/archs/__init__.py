"""Network architectures chosen by name: `arch: {name: ..., z_dim: ..., width: ...}`.

| name | for | what |
|---|---|---|
| `mlp` | 2-D points | ReLU G, LeakyReLU D (the harness default for points) |
| `dcgan-small` | images | two stride-2 stages from s0 in 3..7, no BN in D (the harness default for images, CPU budgets) |
| `dcgan` | images | Radford et al. 2016: BN in G and D, ReLU / LeakyReLU 0.2, N(0, 0.02) init |
| `sn-dcgan` | images | Miyato et al. 2018 "standard CNN" (Table 3), channels as compare_gan / chainer-gan-lib |
| `resnet-sngan` | images | Miyato et al. 2018 ResNet (Table 4), as mimicry's `sngan_32` |

Conditional networks (for methods with `conditional = True`: G(z, c), D(x, c),
c a vector of the method's `label_dim`), in `conditional.py` and `ccgan.py`:

| name | for | what |
|---|---|---|
| `cond-mlp` | 2-D points | `mlp` with conditional BN in G and a projection D (the conditional default for points) |
| `cond-dcgan-small` | images | `dcgan-small` with conditional BN in G and a projection D (the conditional default for images) |
| `ccgan-mlp` | 2-D points | CcGAN's simulation MLPs (width 100, c concatenated to the inputs) |
| `ccgan-sngan` | 64x64 images | the SNGAN-style ResNet of CcGAN / Dual-NDA: conditional BN in G, projection D, SN inside |

Every discriminator is `Discriminator(features, head)` with D(x) =
head(features(x)), features(x) a flat (N, feature_dim) vector: feature
regularizers (AdaptiveMix), samplers (DRS), input or feature augmentation
(PA) and the projection heads of contrastive methods (ContraD, built by
`Method.d_heads` on `D.feature_dim`) rely on the split. Conditional
discriminators take (x, c); add-ons refuse conditional rows
(`bench.method.AddOn.refuses`).

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
DEFAULT_CONDITIONAL_ARCH_NAME = {"points": "cond-mlp", "images": "cond-dcgan-small"}
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
    conditional: ClassVar[bool] = False  # G(z, c) and D(x, c), built with the method's label width
    # The intra-op threads that train it fastest on a CPU (tests/perf/bench_threads.py); None:
    # as many as the cell's share of the cores (bench.threads.cell_threads).
    cpu_threads: ClassVar[int | None] = None

    @classmethod
    def problem(cls, info: dict) -> str | None:
        """Why this architecture cannot serve a dataset with these declarations, or None."""
        if info["kind"] != cls.kind:
            defaults = DEFAULT_CONDITIONAL_ARCH_NAME if cls.conditional else DEFAULT_ARCH_NAME
            return f"architecture {cls.name!r} is for {cls.kind}, the dataset has {info['kind']} (use {defaults[info['kind']]!r})"
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


def resolve_arch(arch: dict, kind: str, paper_arch: str | dict | None, conditional: bool = False) -> tuple[dict | None, str | None]:
    """(resolved arch section, None) or (None, problem): the name (defaulting
    by the dataset kind and whether the method is conditional; `paper`
    meaning `paper_arch`, a name for images or a name per kind), the
    architecture's default z_dim and width, then the given values."""
    defaults = DEFAULT_CONDITIONAL_ARCH_NAME if conditional else DEFAULT_ARCH_NAME
    name = arch.get("name", defaults[kind])
    if name == PAPER:
        paper = paper_arch.get(kind) if isinstance(paper_arch, dict) else paper_arch if kind == "images" else None
        if paper is None:  # on any kind of data (docs/ARCHITECTURE.md): never a silent default
            return None, (f"`{PAPER}` asks for the method's paper architecture, but it declares none for {kind} "
                          f"(paper_arch); name one of {', '.join(ARCHS.names())}")  # fmt: skip
        name = paper
    if not isinstance(name, str) or name not in ARCHS:
        return None, ARCHS.unknown_message(name) + f" (or {PAPER!r})"
    return {"name": name, **ARCHS.get(name).defaults, **{k: v for k, v in arch.items() if k != "name"}}, None


def arch_problem(name: str, info: dict, conditional: bool = False) -> str | None:
    """Why architecture `name` cannot serve this dataset for a conditional
    method (or an unconditional one), or None."""
    cls = ARCHS.get(name)
    if cls.conditional != conditional:
        defaults = DEFAULT_CONDITIONAL_ARCH_NAME if conditional else DEFAULT_ARCH_NAME
        want = "a conditional method needs G(z, c) and D(x, c)" if conditional else "an unconditional method has no labels to give it"
        return f"architecture {name!r} is {'' if cls.conditional else 'un'}conditional; {want} (use {defaults[info['kind']]!r})"
    return cls.problem(info)


def build_pair(arch: dict, info: dict, per_sample_d: bool = False, cond_dim: int | None = None) -> tuple[nn.Module, nn.Module]:
    """(G, D) for a resolved `arch` section and a dataset's `info()`; with
    `cond_dim` (a conditional method's label width) a conditional pair."""
    cls = ARCHS.get(arch["name"])
    problem = arch_problem(arch["name"], info, conditional=cond_dim is not None)
    if problem:
        raise ValueError(problem)
    if cond_dim is not None:
        return cls.build(arch, info, "layer" if per_sample_d else "batch", cond_dim=cond_dim)
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
    """Wrap every Linear/Conv layer of `module` in spectral normalization
    (once: a layer an architecture normalized already is left as it is)."""
    for name, child in module.named_children():
        if isinstance(child, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            if not nn.utils.parametrize.is_parametrized(child, "weight"):
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


from bench.archs import ccgan, conditional, dcgan, pacgan, resnet, small, sndcgan  # noqa: E402,F401  (they register themselves)
