"""Each loss and add-on on hand-computed inputs."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from bench.registry import plugin_module, REPO_ROOT
from metrics_threads import one_thread  # noqa: F401  (the fixture)
from test_methods import make_method

pytestmark = pytest.mark.usefixtures("one_thread")  # two threads per process oversubscribe the shared cores


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


def test_wgan_critic_schedule_is_the_reference_codes():
    # main.py: Diters = 100 if gen_iterations < 25 or gen_iterations % 500 == 0 else 5
    method, _ = make_method("wgan", hp={"critic_burst": 100})
    assert method.hp["burst_first"] == 25 and method.hp["burst_every"] == 500  # on by default
    counts = {step: method.d_steps_at(step) for step in (1, 2, 25, 26, 27, 500, 501, 502, 1000, 1001, 1501)}
    assert counts == {1: 100, 2: 100, 25: 100, 26: 5, 27: 5, 500: 5, 501: 100, 502: 5, 1000: 5, 1001: 100, 1501: 100}


def test_wgan_trains_the_scheduled_critic_steps_and_counts_them():
    method, next_batch = make_method("wgan", hp={"critic_burst": 7, "burst_first": 2, "burst_every": 4})
    calls = []
    method.after_d_step = lambda: calls.append(method.step)
    for _ in range(6):
        method.train_step(next_batch)
    # steps 1, 2 (first two) and 5 (t = 4, a multiple of 4) get 7 critic steps, the others 5
    assert [calls.count(step) for step in range(1, 7)] == [7, 7, 5, 5, 7, 5]
    assert method.record()["d_updates"] == 36 and method.record()["g_updates"] == 6
    off, next_batch = make_method("wgan", hp={"critic_burst": 0})
    off.train_step(next_batch)
    assert off.d_updates == 5


def test_sngan_hinge_loss_and_spectral_norm_on_every_d_layer():
    method, _ = make_method("sngan", "digits")
    real_out, fake_out = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # relu(1 - 2) = 0, relu(1 - 0.5) = 0.5 -> 0.25;  relu(1 - 2) = 0, relu(1 + 0) = 1 -> 0.5
    assert method.d_loss(real_out, fake_out).item() == pytest.approx(0.75)
    assert method.g_loss(fake_out).item() == pytest.approx(1.0)
    layers = [m for m in method.D.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert layers and all(nn.utils.parametrize.is_parametrized(m, "weight") for m in layers)
    assert not any(nn.utils.parametrize.is_parametrized(m) for m in method.G.modules())



def test_sngan_nonsat_loss_is_contrads_baseline_objective():
    method, _ = make_method("sngan", "digits", hp={"sngan_loss": "nonsat"})
    real_out, fake_out = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    # D: mean softplus(-real) + mean softplus(fake); G: mean softplus(-fake)
    d = (softplus(-2.0) + softplus(-0.5)) / 2 + (softplus(-2.0) + softplus(0.0)) / 2
    assert method.d_loss(real_out, fake_out).item() == pytest.approx(d)
    assert method.g_loss(fake_out).item() == pytest.approx((softplus(2.0) + softplus(0.0)) / 2)
    assert any(nn.utils.parametrize.is_parametrized(m, "weight") for m in method.D.modules())

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
    from bench.augment import AUGMENTS

    flip_and_translate = AUGMENTS.get("flip-translate")
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
class Tilted(nn.Module):
    """The exact log density ratio of p_data(x) ∝ exp(a.x) on [-1, 1]^2 to the uniform p_g there."""

    def __init__(self, a):
        super().__init__()
        self.a = torch.tensor(a)
        z = torch.prod(2 * torch.sinh(self.a) / self.a)
        self.c = math.log(4) - math.log(z)

    def forward(self, x):
        return x @ self.a + self.c


class Uniform(nn.Module):
    """G(z) uniform on [-1, 1]^2 for z ~ N(0, I): the normal CDF of the first two coordinates."""

    def forward(self, z):
        return torch.erf(z[:, :2] / math.sqrt(2))
def test_drs_scores_and_acceptance_on_known_logits():
    drs = plugin("drs")
    logits = torch.tensor([0.0, -1.0, -10.0])
    f = drs.drs_scores(logits, max_logit=0.0, eps=1e-6)
    assert f[0].item() == pytest.approx(-math.log(1 - math.exp(-1e-6)), rel=1e-6)  # ~13.8155
    assert f[1].item() == pytest.approx(-1 - math.log(1 - math.exp(-1 - 1e-6)), rel=1e-6)  # ~-0.5413
    assert f[2].item() == pytest.approx(-10 - math.log(1 - math.exp(-10 - 1e-6)), rel=1e-6)
    # gamma = F(-1): acceptance = sigmoid(F - F(-1))
    gen = torch.Generator().manual_seed(0)
    accepted = torch.stack([drs.drs_accept(f, f[1], gen) for _ in range(4000)]).double().mean(0)
    expected = torch.sigmoid(f - f[1])
    assert torch.allclose(accepted, expected, atol=0.03)
    assert expected[0] > 0.999 and expected[1] == 0.5 and expected[2] < 1e-3
    # gamma = 0: sigmoid(F) = r / (1 + r (1 - e^-eps)), r = exp(D~ - D~*_M): rejection sampling's exp(D~ - M)
    r = torch.exp(logits.double())
    assert torch.allclose(torch.sigmoid(f), r / (1 + r * (1 - math.exp(-1e-6))), rtol=1e-9)


@pytest.mark.parametrize("update", ["per-candidate", "per-batch"])
def test_drs_scores_each_candidate_against_the_running_max_in_its_order(update, monkeypatch):
    """The authors' sampler (metropolis-hastings-gans `mh.py`, rejection_sample):
    D~*_M = max(log M, np.maximum.accumulate(D~)) per candidate, F from it, gamma the 95th
    percentile of those F. `per-batch` is the legacy order (the batch's max first)."""
    drs = plugin("drs")
    burn, cands = torch.tensor([0.0, -1.0, -2.0, 0.5, -3.0]), torch.tensor([-1.0, 2.0, 0.0, 3.0, 1.0])
    method, _ = make_method("gan+drs", hp={"drs_burnin": 5, "drs_max_update": update})
    method.drs_D = nn.Identity()  # calibrated; the logits below stand in for its outputs
    feeds = iter([burn, cands])
    method._candidate_logits = lambda n, generator: (torch.zeros(n, 2), next(feeds)[:n])
    seen = []

    def accept_all(f, gamma, generator=None):
        seen.append((f.clone(), float(gamma)))
        return torch.ones(len(f), dtype=torch.bool)

    monkeypatch.setattr(drs, "drs_accept", accept_all)
    method.sample(5, seed=0, batch_size=5)
    d, eps = cands.double().numpy(), 1e-6
    max_logit = np.maximum(0.5, np.maximum.accumulate(d)) if update == "per-candidate" else np.full(5, 3.0)
    delta = d - max_logit  # candidates 1 and 2 (2.0, 0.0): against 2, not yet the batch's 3
    expected = delta - np.log(1 - np.exp(delta - eps))
    f, gamma = seen[0]
    assert f.numpy() == pytest.approx(expected, rel=1e-9)
    assert gamma == pytest.approx(np.percentile(expected, 95.0), rel=1e-9)
    assert method.record()["drs_max_logit"] == 3.0  # carried on to the next batch either way


def test_drs_with_the_exact_log_density_ratio_accepts_by_the_closed_form():
    """p_g uniform on [-1, 1]^2, p_data ∝ exp(a.x) there, D~ = log p_data / p_g exactly and gamma = 0:
    a candidate is accepted with probability exp(D~(x) - M), so the acceptance rate is
    E_pg[p_data / (p_g e^M)] = e^-M and the accepted points follow p_data (mean coth(a) - 1/a)."""
    method, _ = make_method("gan+drs", hp={"drs_shift": "none", "drs_burnin": 10000})
    a = [1.5, -0.5]
    method.G, method.drs_D = Uniform(), Tilted(a)
    out = method.sample(20000, seed=0, batch_size=5000)
    info = method.record()
    true_max = sum(abs(v) for v in a) + method.drs_D.c  # D~ at the corner (1, -1)
    assert true_max - 0.02 < info["drs_max_logit"] <= true_max
    assert info["drs_acceptance_rate"] == pytest.approx(math.exp(-true_max), abs=0.006)  # e^-1.609 = 0.200
    expected_mean = [1 / math.tanh(v) - 1 / v for v in a]  # 0.438, -0.164
    assert out.mean(0).tolist() == pytest.approx(expected_mean, abs=0.02)


def test_drs_sampler_keeps_a_running_max_and_records_the_acceptance_rate():
    method, next_batch = make_method("gan+drs", hp={"drs_burnin": 100}, steps=1)
    method.train_step(next_batch)
    out = method.sample(50, seed=0, batch_size=25)
    info = method.record()
    assert out.shape == (50, 2)
    assert info["drs_candidates"] >= 50 and 0 < info["drs_acceptance_rate"] <= 1
    with torch.no_grad():
        burn = method.drs_D.eval()(method.G.eval()(method.latent(100, torch.Generator().manual_seed(0))))
    assert info["drs_max_logit"] >= burn.max().item() - 1e-6
    # the running max only grows: a checkpointed larger max survives into the next sampling
    other, _ = make_method("gan+drs", hp={"drs_burnin": 100}, steps=1)
    other.load_state_dict({**method.state_dict(), "drs": {**method.state_dict()["drs"], "max": 1e3}})
    other.sample(10, seed=0)
    assert other.record()["drs_max_logit"] == 1e3


def test_drs_calibrates_a_copy_of_d_with_the_logistic_loss_after_the_last_step(monkeypatch):
    drs = plugin("drs")
    seen = {}

    def watched(D, *args):
        seen["D"] = copy.deepcopy(D.state_dict())
        return keep_training(D, *args)

    keep_training = drs.keep_training
    monkeypatch.setattr(drs, "keep_training", watched)
    method, next_batch = make_method("wgan+drs", hp={"drs_calib_steps": 300, "critic_burst": 0}, steps=20)
    for _ in range(19):
        method.train_step(next_batch)
    assert method.drs_D is None
    with pytest.raises(RuntimeError, match="calibrated D"):
        method.sample(10, seed=0)
    g_calls = []
    original = method.g_step
    method.g_step = lambda *a: g_calls.append(1) or original(*a)
    logs = method.train_step(next_batch)  # step 20 = the budget: train, then KeepTraining on a copy
    assert len(g_calls) == 1 and "drs_calib_loss" in logs
    info = method.record()
    assert info["drs_calib_steps"] == 300 and info["d_updates"] == 20 * 5  # calibration steps are not D updates
    # a critic's output is no logit: its logistic loss drops when the copy is calibrated
    assert info["drs_calib_loss_after"] < info["drs_calib_loss_before"]
    assert all(torch.equal(v, method.D.state_dict()[k]) for k, v in seen["D"].items())  # the trained D is unchanged
    assert not all(torch.equal(a, b) for a, b in zip(method.D.parameters(), method.drs_D.parameters()))


# -- pa ------------------------------------------------------------------------
def _d_with_bits(method, x, bits):
    slot = method.bits_input()
    slot.bits = bits
    try:
        return method.D(x)
    finally:
        slot.bits = None


def test_pa_target_flip_follows_the_parity_of_active_bits():
    for name, flip in (("gan+pa", lambda o: -o), ("lsgan+pa", lambda o: 1 - o)):
        method, _ = make_method(name)
        method.pa_level = 3
        bits = torch.tensor([[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0]]).float()
        bits = torch.cat([bits, torch.zeros(5, method.hp["pa_max_level"] - 4)], dim=1)
        method.random_bits = lambda n: bits
        x = torch.randn(5, 2)
        clean = _d_with_bits(method, x, bits)
        out = method.discriminate(x)
        odd = torch.tensor([False, True, False, True, False])
        assert torch.allclose(out[~odd], clean[~odd]) and torch.allclose(out[odd], flip(clean[odd]))


@pytest.mark.parametrize("place", [0, 3])
def test_pa_bits_beyond_the_level_are_zero_and_bit_weights_start_at_zero(place):
    method, _ = make_method("sngan+pa", "digits", hp={"pa_place": place, "pa_max_level": 4}, arch="sn-dcgan", width=4)
    assert method.random_bits(64).abs().sum() == 0  # level 0: no augmentation
    method.pa_level = 2
    bits = method.random_bits(256)
    assert bits[:, 2:].abs().sum() == 0 and 0 < bits[:, :2].mean() < 1
    slot = method.bits_input()
    conv = [m for m in method.D.features.modules() if isinstance(m, nn.Conv2d)][place]
    assert slot.layer is conv  # the chosen layer: 0 = D's input, 3 = its fourth convolution
    original = conv.parametrizations.weight.original
    assert original.shape[1] == (1 if place == 0 else 8) + 4 and original[:, -4:].abs().sum() == 0
    x = torch.rand(3, 1, 8, 8)
    method.D.eval()  # spectral norm's power iteration is frozen in eval mode
    assert torch.allclose(_d_with_bits(method, x, torch.ones(3, 4)), method.D(x))  # zero weights: bits have no effect yet
    assert torch.equal(method.D(x), _d_with_bits(method, x, torch.zeros(3, 4)))  # outside PA's passes: all bits 0


def test_pa_place_beyond_d_is_refused_by_the_spec(tmp_path):
    from bench.errors import UserError
    from bench.spec import load_sweep

    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmatrix: {method: [gan+pa], dataset: [digits], imbalance: [1], seed: [0]}\n"
                    "defaults: {arch: {name: sn-dcgan}}\noverrides: {method: {gan+pa: {hp: {pa_place: 7}}}}\n")  # fmt: skip
    with pytest.raises(UserError, match=r"overrides.method.gan\+pa.hp.pa_place: must be below 7, the number of "
                                        r"convolution/linear layers in 'sn-dcgan'"):  # fmt: skip
        load_sweep(path)


def _scripted(method, kids, every=10):
    for i, kid in enumerate(kids, start=1):
        method.step = i * every
        method.check_progress(kid)


def test_pa_schedule_on_a_scripted_kid_sequence():
    """A level is added when the KID is not 5% below the mean of the two previous checks at the same level."""
    method, _ = make_method("gan+pa", hp={"pa_window": 2, "pa_margin": 0.05, "pa_max_level": 2})
    # level 0: 10, 8 (too few checks), 6 < 0.95 * 9, 5.9 < 0.95 * 7, then 5.8 > 0.95 * 5.95 -> level 1 at step 50
    # level 1: 5, 4, 3.9 < 0.95 * 4.5, then 3.8 > 0.95 * 3.95 -> level 2 at step 90; then capped at 2
    _scripted(method, [10, 8, 6, 5.9, 5.8, 5, 4, 3.9, 3.8, 3.8, 3.8, 3.8])
    assert method.pa_level == 2 and method.pa_level_steps == [50, 90]
    assert [c[1] for c in method.pa_kid] == [0] * 5 + [1] * 4 + [2] * 3  # the level each check was made at
    assert method.record()["pa_kid"][4] == [50, 0, 5.8]
    other, _ = make_method("gan+pa", hp={"pa_window": 2, "pa_max_level": 2})
    other.load_state_dict(method.state_dict())
    assert (other.pa_level, other.pa_level_steps, other.pa_kid) == (2, [50, 90], method.pa_kid)


def test_pa_levels_keep_a_minimum_spacing_and_handle_negative_kid():
    flat, _ = make_method("gan+pa", hp={"pa_window": 2, "pa_max_level": 7})
    _scripted(flat, [1.0] * 10)  # never improving: a level every window + 1 = 3 checks of its own
    assert flat.pa_level_steps == [30, 60, 90]
    noisy, _ = make_method("gan+pa", hp={"pa_window": 1, "pa_max_level": 7})
    # KID estimates near 0 can be negative: -0.0005 is worse than -0.001 (level 1 at step 20); at level 1,
    # -0.0025 is 25% better than -0.002, -0.00249 is not 5% of |-0.0025| better (level 2 at step 50)
    _scripted(noisy, [-0.001, -0.0005, -0.002, -0.0025, -0.00249])
    assert noisy.pa_level_steps == [20, 50]


def test_pa_progress_kid_uses_classifier_features_and_a_fixed_training_draw():
    from bench.metrics.evalnet import get_classifier

    method, next_batch = make_method("gan+pa", "digits", hp={"pa_kid_samples": 64, "pa_every": 2})
    method.train_step(next_batch)
    assert method.pa_kid == []
    method.train_step(next_batch)
    assert [c[0] for c in method.pa_kid] == [2] and method.record()["pa_kid_features"] == "classifier"
    real = method.real_draw()
    assert real.shape == (64, 1, 8, 8) and torch.equal(real, method.real_draw())  # a fixed draw from the training set
    feats = method.progress_features(real)
    assert feats.shape == (64, 128)  # the classifier's penultimate layer, not 64 pixels
    assert np.allclose(feats, get_classifier(method.dataset).features_and_logits(real)[0].double().numpy())

def test_pa_kid_is_clean_fids_kernel_distance():
    from cleanfid.fid import kernel_distance

    kid = plugin("pa").kid
    x = np.random.default_rng(0).normal(size=(400, 3))
    y = np.random.default_rng(1).normal(size=(400, 3))
    # with all 400 samples in each of clean-fid's subsets, every subset gives the one unbiased estimate
    assert kid(x, y) == pytest.approx(kernel_distance(x, y, num_subsets=2), rel=1e-9)
    assert abs(kid(x, y)) < 0.1 * kid(x, y + 2.0)


# -- adaptivemix ---------------------------------------------------------------
def _mix_draws(x, alpha, seed):
    """The lam and permutation adaptive_mix draws after torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    lam = torch.distributions.Beta(torch.tensor(alpha), torch.tensor(alpha)).sample().item()
    return lam, torch.randperm(len(x))


def test_adaptivemix_on_a_linear_feature_extractor_the_cosine_term_is_minus_one():
    adaptive_mix = plugin("adaptivemix").adaptive_mix
    features, head = nn.Linear(5, 3), nn.Linear(3, 1)
    x = torch.randn(16, 5)
    torch.manual_seed(0)
    out, shrink = adaptive_mix(features, head, x, alpha=1.0, noise=0.0)
    # F linear: F(lam a + (1 - lam) b) = lam F(a) + (1 - lam) F(b), so the hard sample sits on its target
    assert shrink.item() == pytest.approx(-1.0, abs=1e-6)
    lam, perm = _mix_draws(x, 1.0, 0)
    mix = lam * x + (1 - lam) * x[perm]
    assert torch.allclose(out, 2 * head(features(mix)).squeeze(1), atol=1e-6)  # head(m) + head(F(mix))
    for distance in ("l2", "l1"):
        torch.manual_seed(0)
        assert adaptive_mix(features, head, x, noise=0.0, distance=distance)[1].item() == pytest.approx(0.0, abs=1e-5)
    torch.manual_seed(0)
    noisy = adaptive_mix(features, head, x, noise=0.05)[1].item()
    assert -1 < noisy < -0.9  # the noise on the target only loosens the match


def test_adaptivemix_terms_are_exact_for_a_nonlinear_feature_extractor():
    adaptive_mix = plugin("adaptivemix").adaptive_mix
    features = nn.Sequential(nn.Linear(4, 6), nn.Tanh())
    head = nn.Linear(6, 1)
    x = torch.randn(8, 4)
    for distance in ("cosine", "l2", "l1"):
        torch.manual_seed(3)
        out, shrink = adaptive_mix(features, head, x, alpha=0.7, noise=0.0, distance=distance)
        lam, perm = _mix_draws(x, 0.7, 3)
        f_mix = features(lam * x + (1 - lam) * x[perm])
        mixed = lam * features(x) + (1 - lam) * features(x[perm])
        assert torch.allclose(out, (head(mixed) + head(f_mix)).squeeze(1), atol=1e-6)
        expected = {"cosine": -nn.functional.cosine_similarity(f_mix, mixed, dim=1),
                    "l2": (f_mix - mixed).norm(dim=1), "l1": (f_mix - mixed).abs().sum(1)}[distance].mean()  # fmt: skip
        assert shrink.item() == pytest.approx(expected.item(), rel=1e-5)
        assert -1 < shrink.item() < 0 if distance == "cosine" else shrink.item() > 0


def test_adaptivemix_replaces_d_in_both_losses_and_adds_the_term_only_from_their_passes():
    method, next_batch = make_method("wgan-gp+adaptivemix", "digits")
    real = next_batch()[0]
    logs = method.d_step(real, None)
    assert set(logs) == {"d_loss", "d_gp", "d_amix"}  # one summed term from the real and fake passes
    assert -2 <= logs["d_amix"] <= 2  # two cosine terms, weight 1; the penalty's pass added none
    assert method.pass_terms is None
    logs = method.g_step(real, None)
    assert set(logs) == {"g_loss", "g_amix"} and -1 <= logs["g_amix"] <= 1
    method.discriminate(real)  # outside a step's loss passes: no term is collected
    assert method.pass_terms is None


def test_adaptivemix_with_pa_shares_one_draw_of_bits_across_its_three_passes():
    method, _ = make_method("sngan+pa+adaptivemix")
    method.pa_level = 4
    slot = method.bits_input()
    seen = []
    slot.register_forward_pre_hook(lambda module, args: seen.append(module.bits.clone()))
    method.discriminate(torch.randn(6, 2))
    assert len(seen) == 3 and all(torch.equal(b, seen[0]) for b in seen) and seen[0].abs().sum() > 0
