"""The architecture registry: each network's layers as its paper states them,
the stage sizes for 28/32/48-pixel data, normalization for per-sample
penalties, and `arch:` in a sweep (name, defaults, `paper`, refusals)."""

import re

import pytest
import torch
from torch import nn

from bench.archs import ARCHS, build_pair, resolve_arch
from bench.errors import UserError
from metrics_threads import one_thread  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

CIFAR = {"kind": "images", "resolution": 32, "channels": 3, "dim": None}
FMNIST = {"kind": "images", "resolution": 28, "channels": 1, "dim": None}
STL = {"kind": "images", "resolution": 48, "channels": 3, "dim": None}


def pair(name, info, per_sample_d=False, **arch):
    resolved, problem = resolve_arch({"name": name, **arch}, info["kind"], None)
    assert problem is None
    with torch.device("meta"):  # full-size networks without allocating them
        return build_pair(resolved, info, per_sample_d)


def convs(module, kind=nn.Conv2d):
    return [m for m in module.modules() if type(m) is kind]


def test_sn_dcgan_is_miyatos_standard_cnn():
    G, D = pair("sn-dcgan", CIFAR)
    layers = convs(D.features)
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0]) for c in layers] == [
        (3, 64, 3, 1), (64, 128, 4, 2), (128, 128, 3, 1), (128, 256, 4, 2),
        (256, 256, 3, 1), (256, 512, 4, 2), (512, 512, 3, 1)]  # fmt: skip
    assert {m.negative_slope for m in D.features.modules() if isinstance(m, nn.LeakyReLU)} == {0.1}
    assert D.head.in_features == 4 * 4 * 512 and D.head.out_features == 1
    assert G[0].in_features == 128 and G[0].out_features == 4 * 4 * 512
    deconvs = convs(G, nn.ConvTranspose2d)
    assert [(d.in_channels, d.out_channels, d.kernel_size[0], d.stride[0]) for d in deconvs] == [
        (512, 256, 4, 2), (256, 128, 4, 2), (128, 64, 4, 2)]  # fmt: skip
    last = convs(G)[-1]
    assert (last.in_channels, last.out_channels, last.kernel_size[0]) == (64, 3, 3) and isinstance(G[-1], nn.Tanh)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in D.modules())


@pytest.mark.parametrize("name", ["sn-dcgan", "dcgan", "resnet-sngan"])
@pytest.mark.parametrize("info, sizes", [(FMNIST, [28, 14, 7, 4]), (CIFAR, [32, 16, 8, 4]), (STL, [48, 24, 12, 6])])
def test_stage_sizes_by_ceil_halving_serve_28_32_and_48_pixels(name, info, sizes):
    G, D = build_pair({"name": name, **ARCHS.get(name).defaults, "width": 4, "z_dim": 8}, info)
    x = G(torch.randn(3, 8))
    assert x.shape == (3, info["channels"], info["resolution"], info["resolution"])
    assert D(x).shape == (3,)
    if name != "dcgan" or info is not STL:  # dcgan halves 48 down to 3
        assert ARCHS.get(name).sizes(info) == sizes


def test_dcgan_has_batch_norm_in_g_and_d_and_layer_norm_for_per_sample_penalties():
    G, D = pair("dcgan", CIFAR)
    assert len(convs(D.features)) == 3 and D.head.in_features == 4 * 4 * 256  # 64 -> 128 -> 256 at 4x4
    assert len([m for m in D.features.modules() if isinstance(m, nn.BatchNorm2d)]) == 2  # not after the first conv
    assert {m.negative_slope for m in D.features.modules() if isinstance(m, nn.LeakyReLU)} == {0.2}
    assert len([m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]) == 3 and isinstance(G[-1], nn.Tanh)
    real_G, real_D = build_pair({"name": "dcgan", "z_dim": 100, "width": 64}, CIFAR)
    weights = torch.cat([c.weight.flatten() for c in convs(real_D.features)])
    assert weights.std().item() == pytest.approx(0.02, rel=0.05)  # N(0, 0.02)
    _, D_gp = build_pair({"name": "dcgan", "z_dim": 8, "width": 4}, CIFAR, per_sample_d=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D_gp.modules())
    assert len([m for m in D_gp.modules() if isinstance(m, nn.GroupNorm) and m.num_groups == 1]) == 2
    x = torch.randn(6, 3, 32, 32)
    assert torch.allclose(D_gp(x)[:1], D_gp(x[:1]), atol=1e-6)  # D(x_i) does not depend on the rest of the batch


def test_resnet_sngan_is_mimicrys_sngan_32():
    G, D = pair("resnet-sngan", CIFAR)
    blocks = list(D.features)[:4]
    assert [type(b).__name__ for b in blocks] == ["DBlock"] * 4
    assert [(b.downsample, b.optimized, b.c_sc is not None) for b in blocks] == [
        (True, True, True), (True, False, True), (False, False, False), (False, False, False)]  # fmt: skip
    assert blocks[0].c1.in_channels == 3 and all(b.c2.out_channels == 128 for b in blocks)
    assert D.head.in_features == 128  # global sum pooling, then dense
    assert G[0].out_features == 4 * 4 * 256 and [type(m).__name__ for m in G[2:5]] == ["GBlock"] * 3
    counts = sum(p.numel() for p in D.parameters())
    # mimicry's ResNetDiscriminator32 (ndf 128): 3584 + 147584 + 512 + 2 * 147584 + 16512 + 4 * 147584 + 129
    assert counts == 3584 + 147584 + 512 + 2 * 147584 + 16512 + 4 * 147584 + 129


@pytest.mark.parametrize("name", ["sn-dcgan", "dcgan", "resnet-sngan", "dcgan-small"])
def test_spectral_norm_wraps_every_d_layer_of_each_architecture(name):
    from test_methods import make_method

    method, next_batch = make_method("sngan", "digits", arch=name, width=4, batch_size=8)
    layers = [m for m in method.D.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert layers and all(nn.utils.parametrize.is_parametrized(m, "weight") for m in layers)
    method.train_step(next_batch)


SWEEP = """
name: archs
matrix: {method: [gan, sngan], dataset: [DATASET], imbalance: [1], seed: [0]}
defaults: {arch: ARCH}
"""


def _cells(tmp_path, arch, dataset="digits"):
    from bench.spec import load_sweep

    path = tmp_path / "s.yaml"
    path.write_text(SWEEP.replace("ARCH", arch).replace("DATASET", dataset))
    return {c["config"]["method"]: c for c in load_sweep(path).cells}


def test_arch_name_resolves_defaults_paper_and_enters_the_cell_id(tmp_path):
    default = _cells(tmp_path, "{}")
    assert default["gan"]["config"]["arch"] == {"name": "dcgan-small", "z_dim": 64, "width": 32}
    named = _cells(tmp_path, "{name: sn-dcgan, width: 16}")
    assert named["gan"]["config"]["arch"] == {"name": "sn-dcgan", "z_dim": 128, "width": 16}
    assert named["gan"]["id"] != _cells(tmp_path, "{name: dcgan, width: 16}")["gan"]["id"]
    with pytest.raises(UserError, match=re.escape("arch: method 'gan' on dataset 'digits': `paper` asks for the "
                                                  "method's paper architecture, but it declares none")):  # fmt: skip
        _cells(tmp_path, "{name: paper}")
    from bench.spec import load_sweep

    path = tmp_path / "p.yaml"
    path.write_text(SWEEP.replace("[gan, sngan]", "[sngan, wgan]").replace("ARCH", "{name: paper}").replace("DATASET", "digits"))
    archs = {c["config"]["method"]: c["config"]["arch"]["name"] for c in load_sweep(path).cells}
    assert archs == {"sngan": "sn-dcgan", "wgan": "dcgan"}
    points = _cells(tmp_path, "{}", dataset="ring")
    assert points["gan"]["config"]["arch"]["name"] == "mlp"


@pytest.mark.parametrize("arch, dataset, message", [
    ("{name: sn-dcgn}", "digits", "defaults.arch.name: unknown architecture 'sn-dcgn'; did you mean 'sn-dcgan'"),
    ("{name: sn-dcgan}", "ring", "arch: method 'gan' on dataset 'ring': architecture 'sn-dcgan' is for images, "
                                 "the dataset has points (use 'mlp')"),
    ("{name: mlp}", "digits", "architecture 'mlp' is for points, the dataset has images (use 'dcgan-small')"),
    ("{name: sn-dcgan, depth: 3}", "digits", "defaults.arch.depth: unknown key 'depth'"),
])  # fmt: skip
def test_bad_arch_settings_are_refused_in_one_line(tmp_path, arch, dataset, message):
    with pytest.raises(UserError) as err:
        _cells(tmp_path, arch, dataset)
    assert message in str(err.value) and "\n" not in str(err.value)
