"""The augmentation registry, ContraD's losses and heads, and Damage GAN's
self-damaging branch, on hand-computed inputs."""

import copy
import json
import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from bench.archs import BranchNorm
from bench.augment import AUGMENTS
from bench.registry import plugin_module, REPO_ROOT
from metrics_threads import one_thread  # noqa: F401  (the fixture)
from test_methods import cifar_root, make_method  # noqa: F401  (cifar_root: a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

contrad = plugin_module(REPO_ROOT / "methods" / "contrad.py")
damage = plugin_module(REPO_ROOT / "methods" / "damage_gan.py")


# -- augmentations ---------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", AUGMENTS.names())
def test_augmentations_are_batched_seeded_in_range_and_differentiable(name, channels):
    x = (torch.rand(6, channels, 16, 16) * 2 - 1).requires_grad_()
    fn = AUGMENTS.get(name)
    a = fn(x, torch.Generator().manual_seed(3))
    b = fn(x, torch.Generator().manual_seed(3))
    c = fn(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    if name != "diffaug":  # DiffAugment's brightness shift leaves [-1, 1], as in the authors' code
        assert a.min() >= -1 - 1e-5 and a.max() <= 1 + 1e-5
    (a * torch.randn_like(a)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()


def test_simclr_crop_of_the_full_frame_is_the_image_or_its_mirror():
    from bench.augment import resized_crop_and_flip

    x = torch.rand(16, 3, 8, 8)
    out = resized_crop_and_flip(x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    flipped = torch.isclose(out, x.flip(3), atol=1e-5).flatten(1).all(1)
    same = torch.isclose(out, x, atol=1e-5).flatten(1).all(1)
    assert (flipped | same).all() and flipped.any() and same.any()


def test_simclr_leaves_grey_images_grey_and_hsv_round_trips_on_the_hexcone_corners():
    from bench.augment import hsv_to_rgb, rgb_to_hsv

    # ContraD's atan2 hue equals the hexcone hue at the six corners (elsewhere it is its approximation)
    corners = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1.0]]) * 0.7
    rgb = corners.view(6, 3, 1, 1)
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(rgb)), rgb, atol=1e-5)
    grey = (torch.rand(8, 1, 16, 16) * 2 - 1).expand(8, 3, 16, 16)
    out = AUGMENTS.get("simclr")(grey, torch.Generator().manual_seed(1))
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-5) and torch.allclose(out[:, 1], out[:, 2], atol=1e-5)


# -- ContraD's losses -------------------------------------------------------------
def _unit(n, d=5, seed=0):
    return nn.functional.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_nt_xent_against_the_direct_formula_on_four_samples():
    a, b, t = _unit(2, seed=1), _unit(2, seed=2), 0.1
    z = torch.cat([a, b])
    total = 0.0
    for i in range(4):
        pair = (i + 2) % 4
        others = sum(math.exp(z[i] @ z[k] / t) for k in range(4) if k != i)
        total += -math.log(math.exp(z[i] @ z[pair] / t) / others)
    assert contrad.nt_xent(a, b, t).item() == pytest.approx(total / 4, rel=1e-5)


@pytest.mark.parametrize("n", [2, 3])
def test_supervised_fake_term_against_the_direct_formula(n):
    real1, real2, fake, t = _unit(n, seed=1), _unit(n, seed=2), _unit(n, seed=3), 0.1
    z = torch.cat([real1, real2, fake])
    total = 0.0
    for i in range(2 * n, 3 * n):  # anchors: the fakes
        denominator = sum(math.exp(z[i] @ z[k] / t) for k in range(3 * n) if k != i)
        positives = [k for k in range(2 * n, 3 * n) if k != i]
        total += -sum(math.log(math.exp(z[i] @ z[p] / t) / denominator) for p in positives) / len(positives)
    assert contrad.supcon_fake(real1, real2, fake, t).item() == pytest.approx(total / n, rel=1e-5)


def test_contrad_heads_sit_on_the_trunk_and_the_adversarial_loss_trains_only_the_head():
    method, next_batch = make_method("contrad", "digits", batch_size=4, width=4, arch="sn-dcgan")
    D = method.D
    assert set(D.heads) == {"simclr", "supcon"} and isinstance(D.head[0], nn.Linear)
    assert D.head[0].in_features == D.feature_dim and D.heads["simclr"][-1].out_features == 128
    assert all(parametrize.is_parametrized(m, "weight") for m in D.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    # the adversarial loss alone: no gradient reaches the trunk or the projections
    real = next_batch()[0]
    features = D.features(method.augment(torch.cat([real, real])))
    nn.functional.softplus(-D.head(features.detach())).mean().backward()
    assert all(p.grad is None for p in D.features.parameters())
    assert all(p.grad is None for p in D.heads.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in D.head.parameters())


def test_contrad_warms_the_learning_rates_up_linearly():
    method, next_batch = make_method("contrad", "digits", batch_size=4, width=4, arch="sn-dcgan", hp={"warmup": 10}, steps=4)
    seen = []
    for _ in range(3):
        method.train_step(next_batch)
        seen.append((method.opt_g.param_groups[0]["lr"], method.opt_d.param_groups[0]["lr"]))
    assert seen == [(pytest.approx(2e-4 * k / 10), pytest.approx(2e-4 * k / 10)) for k in (2, 3, 4)]  # the code's (t + 1) / warmup


def test_uniform_prior():
    method, _ = make_method("contrad", "digits", batch_size=4, width=4, arch="sn-dcgan")
    z = method.latent(2000)
    assert z.min() >= -1 and z.max() <= 1 and abs(z.mean().item()) < 0.02 and z.std().item() == pytest.approx(1 / math.sqrt(3), rel=0.05)


# -- Damage GAN / SDCLR ------------------------------------------------------------
def test_magnitude_masks_keep_exactly_the_largest_weights_globally():
    g = torch.Generator().manual_seed(0)
    weights = [torch.randn(4, 3, 3, 3, generator=g) * s for s in (1.0, 0.1, 3.0)]
    masks = damage.magnitude_masks(weights, 0.9)
    n = sum(w.numel() for w in weights)
    assert sum(m.sum().item() for m in masks) == n - math.ceil(0.9 * n)
    kept = torch.cat([w[m.bool()].abs() for w, m in zip(weights, masks)])
    dropped = torch.cat([w[~m.bool()].abs() for w, m in zip(weights, masks)])
    assert kept.min() > dropped.max()
    assert masks[2].mean() > masks[0].mean() > masks[1].mean()  # one global threshold, not one per layer


def _damage_gan(root, arch="dcgan", **hp):
    """Damage GAN on 32x32 images: the `dcgan` D has several convolutions and batch norms there."""
    return make_method("damage-gan", "cifar10", batch_size=8, width=4, arch=arch, hp={"prune_every": 2, **hp}, steps=4,
                       options={"root": root})  # fmt: skip


def test_the_pruned_forward_is_the_dense_forward_with_masked_weights(cifar_root):
    method, next_batch = _damage_gan(cifar_root)
    method.train_step(next_batch)  # masks made, both branches' statistics moved
    method.D.eval()
    x = next_batch()[0]
    with torch.no_grad(), method.pruned_branch():
        pruned = method.D.features(x)
    # a plain copy: each convolution's weight fixed to its normalized value times its mask,
    # each normalization layer the pruned branch's copy
    # (a deep copy, whose parametrized layers are replaced, not un-parametrized: the copies share
    # their parametrized class with the original, which removing a parametrization would change)
    reference = copy.deepcopy(method.D.features)
    originals = dict(method.D.features.named_modules())
    for parent in list(reference.modules()):
        for name, child in parent.named_children():
            if isinstance(child, BranchNorm):
                setattr(parent, name, child.copies[1])
            elif isinstance(child, nn.Conv2d):
                source = originals[next(k for k, v in reference.named_modules() if v is child)]
                plain = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride, child.padding,
                                  bias=child.bias is not None)  # fmt: skip
                mask = next(p for p in source.parametrizations.weight if isinstance(p, damage.PruneMask)).mask
                with torch.no_grad():
                    plain.weight.copy_(source.weight * mask)  # eval mode: W / sigma(W), no power-iteration step
                    if child.bias is not None:
                        plain.bias.copy_(source.bias)
                setattr(parent, name, plain)
    assert sum(isinstance(m, nn.Conv2d) for m in reference.modules()) >= 3
    with torch.no_grad():
        assert torch.allclose(reference(x), pruned, atol=1e-5)
        dense = method.D.features(x)
    assert not torch.allclose(dense, pruned, atol=1e-3)
    kept = method.record()["prune_kept"]
    assert 0.09 <= kept <= 0.11  # p = 0.9


def test_the_pruned_branch_keeps_its_own_normalization_statistics(cifar_root):
    method, next_batch = _damage_gan(cifar_root)
    norms = method.branch_norms
    assert norms and all(isinstance(n.copies[0], nn.BatchNorm2d) for n in norms)
    method.train_step(next_batch)
    dense, pruned = norms[0].copies
    assert not torch.allclose(dense.running_mean, pruned.running_mean)
    assert all(n.branch == 0 for n in norms)  # the context restores the dense branch


def test_sdclr_gradients_respect_the_stop_gradients():
    dense, pruned, t = _unit(3, seed=1).requires_grad_(), _unit(3, seed=2).requires_grad_(), 0.1
    damage.sdclr_loss(dense, pruned, t).backward()
    d_ref, p_ref = dense.detach().clone().requires_grad_(), pruned.detach().clone().requires_grad_()
    contrad.nt_xent(d_ref, pruned.detach(), t).backward()  # the dense branch's term
    contrad.nt_xent(dense.detach(), p_ref, t).backward()  # the pruned branch's term
    assert torch.allclose(dense.grad, d_ref.grad) and torch.allclose(pruned.grad, p_ref.grad)
    # each term alone moves only its branch
    a, b = dense.detach().clone().requires_grad_(), pruned.detach().clone().requires_grad_()
    contrad.nt_xent(a, b.detach(), t).backward()
    assert b.grad is None and a.grad.abs().sum() > 0


def test_masks_are_recomputed_every_k_generator_steps_and_live_in_the_checkpoint(cifar_root):
    method, next_batch = _damage_gan(cifar_root)
    for _ in range(3):
        method.train_step(next_batch)
    assert method.record()["prune_masks_made"] == 2 and method.record()["prune_mask_step"] == 3
    masks = {k: v for k, v in method.D.state_dict().items() if k.endswith(".mask")}
    assert masks and all(0 < v.mean() < 1 for v in masks.values())
    rebuilt, _ = _damage_gan(cifar_root)
    rebuilt.load_state_dict(method.state_dict())
    assert all(torch.equal(rebuilt.D.state_dict()[k], v) for k, v in masks.items())
    assert rebuilt.record()["prune_masks_made"] == 2


def test_damage_gan_ranks_the_spectrally_normalized_weights_without_a_power_iteration_step(cifar_root):
    method, next_batch = _damage_gan(cifar_root, arch="sn-dcgan")
    method.train_step(next_batch)
    vectors = [t.clone() for k, t in method.D.state_dict().items() if k.endswith("_u")]
    method.update_masks()
    assert all(torch.equal(a, b) for a, b in zip(vectors, [t for k, t in method.D.state_dict().items() if k.endswith("_u")]))
    method.D.eval()
    weights = [layer.weight.detach().clone() for layer, _ in method.pruned_layers]  # W / sigma(W), the mask off
    expected = damage.magnitude_masks(weights, 0.9)
    assert all(torch.equal(mask.mask, e) for (_, mask), e in zip(method.pruned_layers, expected))
    raw = damage.magnitude_masks([layer.parametrizations.weight.original.detach() for layer, _ in method.pruned_layers], 0.9)
    assert any(not torch.equal(r, e) for r, e in zip(raw, expected))  # ranking raw weights would differ


def test_prune_every_zero_is_one_epoch_of_the_cells_training_set(cifar_root):
    method, _ = _damage_gan(cifar_root, prune_every=0)
    n_train = len(method.dataset.train_set(1, 0).x)
    assert method.prune_every == math.ceil(n_train / 8) and method.record()["prune_every_steps"] == method.prune_every


@pytest.mark.parametrize("arch, pruned", [
    ("sn-dcgan", ["0", "2", "4", "6", "8", "10", "12"]),
    ("dcgan", ["0", "2", "5"]),
    ("dcgan-small", ["0", "2", "4"]),
    ("resnet-sngan", ["0.c1", "0.c2", "0.c_sc", "1.c1", "1.c2", "1.c_sc", "2.c1", "2.c2", "3.c1", "3.c2"]),
])  # fmt: skip
def test_damage_gan_prunes_every_convolution_of_the_trunk_shortcuts_included(cifar_root, arch, pruned):
    """The list in methods/damage_gan.py: SDCLR's res18 masks its 1x1 shortcuts (prune_conv2d) too;
    no Linear layer (D's heads) is pruned."""
    method, _ = _damage_gan(cifar_root, arch=arch)
    names = {id(m): n for n, m in method.D.features.named_modules()}
    assert [names[id(layer)] for layer, _ in method.pruned_layers] == pruned
    masked = [m for m in method.D.modules() if parametrize.is_parametrized(m, "weight")
              and any(isinstance(p, damage.PruneMask) for p in m.parametrizations.weight)]  # fmt: skip
    assert len(masked) == len(pruned) and all(isinstance(m, nn.Conv2d) for m in masked)


@pytest.mark.parametrize("row, reason", [
    ("contrad+adaptivemix", "add-on 'adaptivemix' does not apply to 'contrad': ContraD's steps call D's feature trunk"),
    ("damage-gan+adaptivemix", "add-on 'adaptivemix' does not apply to 'damage-gan'"),
    ("damage-gan+pa", "add-on 'pa' does not apply to 'damage-gan': damage-gan does not declare how to flip D's target"),
])  # fmt: skip
def test_add_ons_whose_hooks_the_contrastive_steps_bypass_are_refused_in_one_line(row, reason):
    from bench.errors import UserError
    from bench.registry import METHODS

    with pytest.raises(UserError) as err:
        METHODS.get(row)
    assert reason in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("file, dataset, profile", [("damage-gan", "cifar10", "paper"), ("damage-gan-fmnist", "fashion-mnist", "gpu")])
def test_damage_gan_protocol_sweeps_hold_the_three_training_sets(file, dataset, profile):
    from bench.spec import load_sweep

    base = load_sweep(REPO_ROOT / "sweeps" / f"{file}.yaml")
    long = load_sweep(REPO_ROOT / "sweeps" / f"{file}.yaml", budget=profile)
    for sweep in (base, long):
        sets = {(c["config"]["dataset"], c["config"]["imbalance"]) for c in sweep.cells}
        assert sets == {(dataset, 1), (dataset, 100), (f"{dataset}-partial", 100)}
        assert {c["config"]["method"] for c in sweep.cells} == {"dcgan", "sngan", "contrad", "damage-gan"}
        assert len(sweep.cells) == 36
        # ContraD's own SN-DCGAN baseline: spectral norm with the non-saturating loss, as its code trains it
        assert {c["config"]["hp"]["sngan_loss"] for c in sweep.cells if c["config"]["method"] == "sngan"} == {"nonsat"}
    arch = {c["config"]["method"]: c["config"]["arch"]["name"] for c in long.cells}
    assert arch == {"dcgan": "dcgan", "sngan": "sn-dcgan", "contrad": "sn-dcgan", "damage-gan": "sn-dcgan"}
    assert all(c["config"]["budget"]["batch_size"] == 512 for c in long.cells)
    assert not {c["id"] for c in base.cells} & {c["id"] for c in long.cells}


def test_damage_gan_at_its_default_prune_every_is_scored_from_its_generator_file(cifar_root, tmp_path):
    """Issue 20: evaluation builds the method afresh from generator.pt; at `prune_every: 0` the
    method counts an epoch of the training set while it is built, so it needs the dataset then too."""
    from bench.metrics.base import Metric
    from bench.registry import METRICS
    from bench.runner import run_cell
    from bench.spec import load_sweep

    @METRICS.register("count-test")
    class Count(Metric):
        label, direction = "count", "higher"

        def compute(self, ctx):
            return float(len(ctx.fake))

    path = tmp_path / "s.yaml"
    path.write_text(f"""name: dg
matrix: {{method: [damage-gan], dataset: [cifar10], imbalance: [1], seed: [0]}}
defaults: {{budget: {{steps: 2, batch_size: 8, eval_samples: 8}}, arch: {{width: 4}}, metrics: [count-test]}}
overrides: {{dataset: {{cifar10: {{options: {{root: {cifar_root}}}}}}}}}
""")
    (cell,) = load_sweep(path).cells
    assert cell["config"]["hp"]["prune_every"] == 0
    cell["runtime"]["results_root"] = str(tmp_path / "results")
    assert run_cell(cell) == "done"
    record = json.loads(next((tmp_path / "results").rglob(f"{cell['id']}/result.json")).read_text())
    assert record["metrics"] == {"count-test": 8.0}
    assert record["method_info"]["prune_every_steps"] == math.ceil(record["data"]["n_train"] / 8)
