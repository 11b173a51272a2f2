"""Each loss and add-on on hand-computed inputs."""

import math

import pytest
import torch
from torch import nn

from bench.registry import plugin_module, REPO_ROOT
from test_methods import make_method


def plugin(name):
    return plugin_module(REPO_ROOT / "methods" / f"{name}.py")


# -- wgan / sngan / cn-lsgan ---------------------------------------------------
def test_wgan_critic_loss_and_weight_clip():
    method, _ = make_method("wgan")
    real_out, fake_out = torch.tensor([1.0, 3.0]), torch.tensor([0.0, 2.0])
    assert method.d_loss(real_out, fake_out).item() == pytest.approx(1.0 - 2.0)
    assert method.g_loss(fake_out).item() == pytest.approx(-1.0)
    with torch.no_grad():
        for i, p in enumerate(method.D.parameters()):
            p.fill_(0.5 if i % 2 else -3.0)
    method.after_d_step()
    values = torch.cat([p.flatten() for p in method.D.parameters()])
    assert torch.allclose(values.abs(), torch.full_like(values, 0.01))  # -3 -> -0.01, 0.5 -> 0.01
    assert method.config["optimizer"] == {"name": "rmsprop", "lr_g": 5e-5, "lr_d": 5e-5, "betas": [0.5, 0.999], "d_steps": 5}
    assert isinstance(method.opt_d, torch.optim.RMSprop)


def test_wgan_trains_five_critic_steps_per_generator_step():
    method, next_batch = make_method("wgan")
    calls = []
    method.after_d_step = lambda: calls.append(1)
    method.train_step(next_batch)
    assert len(calls) == 5


def test_sngan_hinge_loss_and_spectral_norm_on_every_d_layer():
    method, _ = make_method("sngan", "digits")
    real_out, fake_out = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # relu(1 - 2) = 0, relu(1 - 0.5) = 0.5 -> 0.25;  relu(1 - 2) = 0, relu(1 + 0) = 1 -> 0.5
    assert method.d_loss(real_out, fake_out).item() == pytest.approx(0.75)
    assert method.g_loss(fake_out).item() == pytest.approx(1.0)
    layers = [m for m in method.D.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert layers and all(nn.utils.parametrize.is_parametrized(m, "weight") for m in layers)
    assert not any(nn.utils.parametrize.is_parametrized(m) for m in method.G.modules())


class LinearD(nn.Module):
    """D(x) = w . x with a known gradient norm ||w||."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x):
        return x @ self.w


def test_cn_lsgan_gradient_penalty_and_real_term():
    method, _ = make_method("cn-lsgan")
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    method.D = LinearD([3.0, 4.0])  # ||grad|| = 5 everywhere: penalty (5 - 1)^2 = 16
    terms = method.d_terms(real, fake, method.D(real), method.D(fake))
    assert terms["gp"].item() == pytest.approx(0.01 * 16)
    g_terms = method.g_terms(None, torch.ones(4, 2), None, torch.zeros(4, 2))
    assert g_terms["real_l2"].item() == pytest.approx(0.001)
    assert method.config["optimizer"]["lr_g"] == method.config["optimizer"]["lr_d"] == 4e-4
    # the LSGAN loss is inherited: 1/2 (1 - 1)^2 + 1/2 0^2 = 0
    assert method.d_loss(torch.ones(3), torch.zeros(3)).item() == 0.0


# -- gm ------------------------------------------------------------------------
def test_gm_circle_and_uniform_means():
    circle = plugin("gm").mixture_means({"gm_layout": "circle", "gm_k": 8, "gm_radius": 2.0}, 5, seed=0)
    assert circle.shape == (8, 5)
    assert torch.allclose(circle[:, :2].norm(dim=1), torch.full((8,), 2.0))
    assert torch.allclose(circle[0], torch.tensor([2.0, 0, 0, 0, 0])) and (circle[:, 2:] == 0).all()
    assert torch.allclose(circle[2, :2], torch.tensor([0.0, 2.0]), atol=1e-6)
    hp = {"gm_layout": "uniform", "gm_k": 10, "gm_c": 0.5}
    a, b, c = (plugin("gm").mixture_means(hp, 4, seed=s) for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c) and a.abs().max() <= 0.5


def test_gm_prior_is_used_for_training_and_evaluation_and_survives_resume():
    method, _ = make_method("gm-gan", hp={"gm_sigma": 0.01})
    z = method.latent(4000)
    nearest = torch.cdist(z, method.gm_means).min(dim=1)
    assert nearest.values.max() < 0.1  # every z sits at one of the 8 means
    assert len(nearest.indices.unique()) == 8
    gen = torch.Generator().manual_seed(3)
    expected = method.G.eval()(method.latent(10, gen))
    method.G.train()
    assert torch.allclose(method.sample(10, seed=3), expected)
    other, _ = make_method("gm-gan", hp={"gm_layout": "uniform"})
    other.load_state_dict(method.state_dict())
    assert torch.equal(other.gm_means, method.gm_means)


# -- icr -----------------------------------------------------------------------
def test_flip_and_translate_moves_whole_images():
    flip_and_translate = plugin("icr").flip_and_translate
    x = torch.arange(64.0).view(1, 1, 8, 8).repeat(50, 1, 1, 1)
    out = flip_and_translate(x, torch.Generator().manual_seed(0))
    padded = [nn.functional.pad(v, (1, 1, 1, 1), mode="reflect") for v in (x[:1], x[:1].flip(3))]
    crops = [p[0, 0, dy : dy + 8, dx : dx + 8] for p in padded for dy in range(3) for dx in range(3)]
    for image in out[:, 0]:
        assert any(torch.equal(image, c) for c in crops)
    assert len({tuple(i.flatten().tolist()) for i in out[:, 0]}) > 5  # random per image
    assert torch.equal(flip_and_translate(torch.ones(3, 2, 8, 8)), torch.ones(3, 2, 8, 8))


def test_icr_terms_on_images_and_points():
    method, _ = make_method("lsgan+icr", "digits")
    real, fake = torch.rand(6, 1, 8, 8) * 2 - 1, torch.rand(6, 1, 8, 8) * 2 - 1
    method.D = nn.Sequential(nn.Flatten(), nn.Identity())
    method.D.forward = lambda x: x.mean(dim=(1, 2, 3)) * 0 + 1.5  # a constant D: every consistency term is 0
    terms = method.d_terms(real, fake, method.D(real), method.D(fake))
    assert {k: v.item() for k, v in terms.items()} == {"bcr_real": 0.0, "bcr_fake": 0.0, "zcr_dis": 0.0}
    points, _ = make_method("lsgan+icr", "ring", hp={"icr_sigma": 0.0})
    x = torch.randn(4, 2)
    terms = points.d_terms(x, x, points.D(x), points.D(x))
    assert set(terms) == {"zcr_dis"}  # T is a no-op on 2-D points: no bCR
    assert terms["zcr_dis"].item() == 0.0  # sigma = 0: G(z + dz) = G(z)
    z = points.latent(4)
    assert points.g_terms(z, points.G(z), None, x)["zcr_gen"].item() == 0.0
    assert points.record()["icr_bcr"].startswith("off")


def test_icr_generator_term_rewards_sensitivity():
    method, _ = make_method("lsgan+icr", "ring", hp={"icr_sigma": 1.0, "icr_gen": 2.0})
    method.G = nn.Linear(method.z_dim, 2, bias=False)
    with torch.no_grad():
        method.G.weight.zero_()
        method.G.weight[0, 0] = 1.0
    torch.manual_seed(0)
    z = torch.zeros(20000, method.z_dim)
    term = method.g_terms(z, method.G(z), None, None)["zcr_gen"].item()
    # G(z) - G(z + dz) = (dz_0, 0), dz_0 ~ N(0, 1): mean over 2 coordinates of the square -> 1/2
    assert term == pytest.approx(-2.0 * 0.5, rel=0.05)


# -- drs -----------------------------------------------------------------------
def test_drs_scores_and_acceptance_on_known_logits():
    drs = plugin("drs")
    logits = torch.tensor([0.0, -1.0, -10.0])
    f = drs.drs_scores(logits, max_logit=0.0, eps=1e-6)
    assert f[0].item() == pytest.approx(-math.log(1 - math.exp(-1e-6)), rel=1e-6)  # ~13.8155
    assert f[1].item() == pytest.approx(-1 - math.log(1 - math.exp(-1 - 1e-6)), rel=1e-6)  # ~-0.5413
    assert f[2].item() == pytest.approx(-10 - math.log(1 - math.exp(-10 - 1e-6)), rel=1e-6)
    # gamma = the median (50th percentile) = F(-1): acceptance = sigmoid(F - F(-1))
    gen = torch.Generator().manual_seed(0)
    accepted = torch.stack([drs.drs_accept(logits, 0.0, 1e-6, 50, gen) for _ in range(4000)]).double().mean(0)
    expected = torch.sigmoid(f - f[1])
    assert torch.allclose(accepted, expected, atol=0.03)
    assert expected[0] > 0.999 and expected[1] == 0.5 and expected[2] < 1e-3


def test_drs_sampler_keeps_a_running_max_and_records_the_acceptance_rate():
    method, next_batch = make_method("gan+drs", hp={"drs_burnin": 100})
    method.train_step(next_batch)
    out = method.sample(50, seed=0, batch_size=25)
    info = method.record()
    assert out.shape == (50, 2)
    assert info["drs_candidates"] >= 50 and info["drs_acceptance_rate"] == pytest.approx(50 / info["drs_candidates"], abs=0.5)
    assert 0 < info["drs_acceptance_rate"] <= 1
    with torch.no_grad():
        burn = method.d_score(method.G(method.latent(100, torch.Generator().manual_seed(0))))
    assert info["drs_max_logit"] >= burn.max().item() - 1e-6
    # the running max only grows: a checkpointed larger max survives into the next sampling
    other, _ = make_method("gan+drs", hp={"drs_burnin": 100})
    other.load_state_dict({**method.state_dict(), "drs_max": 1e3})
    other.sample(10, seed=0)
    assert other.record()["drs_max_logit"] == 1e3


def test_drs_optional_d_steps_run_after_the_last_step_with_g_frozen():
    method, next_batch = make_method("gan+drs", hp={"drs_d_steps": 3}, steps=2)
    method.train_step(next_batch)
    g_before = [p.clone() for p in method.G.parameters()]
    d_calls = []
    original = method.d_step
    method.d_step = lambda *a: d_calls.append(1) or original(*a)
    method.g_step = lambda *a: {"g_loss": 0.0}  # isolate: the last regular G step is not under test
    logs = method.train_step(next_batch)  # step 2 = the budget: 1 regular D step + 3 more
    assert len(d_calls) == 4 and "drs_d_loss" in logs
    assert all(torch.equal(a, b) for a, b in zip(g_before, method.G.parameters()))


# -- pa ------------------------------------------------------------------------
def test_pa_target_flip_follows_the_parity_of_active_bits():
    for name, flip in (("gan+pa", lambda o: -o), ("lsgan+pa", lambda o: 1 - o)):
        method, _ = make_method(name)
        method.pa_level = 3
        bits = torch.tensor([[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0]]).float()
        method.random_bits = lambda n: bits
        x = torch.randn(5, 2)
        clean = method.D(plugin("pa").with_bits(x, bits))
        out = method.discriminate(x)
        odd = torch.tensor([False, True, False, True, False])
        assert torch.allclose(out[~odd], clean[~odd]) and torch.allclose(out[odd], flip(clean[odd]))


def test_pa_bits_beyond_the_level_are_zero_and_bit_weights_start_at_zero():
    method, _ = make_method("sngan+pa", "digits")
    assert method.random_bits(64).abs().sum() == 0  # level 0: no augmentation
    method.pa_level = 2
    bits = method.random_bits(256)
    assert bits[:, 2:].abs().sum() == 0 and 0 < bits[:, :2].mean() < 1
    conv = method.D.features[0]
    assert conv.in_channels == 1 + 4
    assert conv.parametrizations.weight.original[:, 1:].abs().sum() == 0
    x = torch.rand(3, 1, 8, 8)
    with_bits = plugin("pa").with_bits
    method.D.eval()  # spectral norm's power iteration is frozen in eval mode
    assert torch.allclose(method.D(with_bits(x, torch.ones(3, 4))), method.D(with_bits(x, torch.zeros(3, 4))))


def test_pa_level_grows_after_patience_checks_and_is_checkpointed():
    method, _ = make_method("gan+pa", hp={"pa_patience": 2, "pa_max_level": 2})
    for step, score in enumerate([5.0, 4.0, 4.5, 4.6, 3.0, 3.5, 3.2, 3.1, 3.3, 3.4], start=1):
        method.step = step * 10
        method.check_progress(score)
    # no new best at 30, 40 -> level 1 at 40; at 60, 70 -> level 2 at 70; capped at 2 afterwards
    assert method.pa_level == 2 and method.pa_level_steps == [40, 70]
    assert method.record()["pa_level_steps"] == [40, 70]
    other, _ = make_method("gan+pa", hp={"pa_patience": 2, "pa_max_level": 2})
    other.load_state_dict(method.state_dict())
    assert (other.pa_level, other.pa_level_steps, other.pa_best) == (2, [40, 70], 3.0)


def test_pa_holds_out_a_real_batch_from_next_batch_and_kid_is_unbiased():
    method, next_batch = make_method("gan+pa", hp={"pa_holdout": 40, "pa_every": 2})
    method.train_step(next_batch)
    assert method.pa_holdout.shape == (40, 2) and method.pa_proxy == []
    method.train_step(next_batch)
    assert [s for s, _ in method.pa_proxy] == [2]
    kid = plugin("pa").kid
    x = torch.randn(400, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.randn(400, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert abs(kid(x, y)) < 0.05 < kid(x, y + 2.0)


# -- adaptivemix ---------------------------------------------------------------
def test_adaptivemix_loss_is_zero_for_a_linear_feature_extractor():
    loss = plugin("adaptivemix").adaptivemix_loss
    linear = nn.Linear(5, 3)
    x = torch.randn(16, 5)
    for norm in ("l2", "l1"):
        assert loss(linear, x, norm).item() == pytest.approx(0.0, abs=1e-5)
    # a nonlinear F: F(x) = x^2 on two points 0 and 2, a swap: F(mix) = (2(1 - lam))^2
    x2 = torch.tensor([[0.0], [2.0]])
    gen = torch.Generator().manual_seed(0)
    value = loss(lambda t: t**2, x2, "l1", gen).item()
    gen = torch.Generator().manual_seed(0)
    j = torch.randperm(2, generator=gen)
    lam = torch.rand(2, generator=gen)
    mix = lam * x2[:, 0] + (1 - lam) * x2[j, 0]
    expected = (lam * x2[:, 0] ** 2 + (1 - lam) * x2[j, 0] ** 2 - mix**2).abs().mean().item()
    assert value == pytest.approx(expected) and (value > 0) == (j.tolist() == [1, 0])


def test_adaptivemix_adds_real_and_fake_terms_on_clean_features():
    method, _ = make_method("sngan+pa+adaptivemix")
    method.pa_level = 4
    x = torch.randn(8, 2)
    terms = method.d_terms(x, x, None, None)
    assert set(terms) == {"amix_real", "amix_fake"} and all(t.item() >= 0 for t in terms.values())
    # features see all bits 0, whatever the PA level
    method.D.eval()  # spectral norm's power iteration is frozen in eval mode
    assert torch.equal(method.d_features(x), method.D.features(plugin("pa").with_bits(x, torch.zeros(8, 4))))
