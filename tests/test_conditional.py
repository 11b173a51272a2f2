"""Conditional rows on hand-computed inputs: CcGAN's sigma and kappa rules,
vicinity selection and soft weights, cGAN's label binning, vanilla NDA's
jigsaw, Dual-NDA's Type I / Type II selection and loss terms; the
conditional contract (requested labels, the spec refusing label metrics on
unconditional rows); Dual-NDA reading its baseline's training folder."""

import math

import numpy as np
import pytest
import torch

from bench.data import Split
from bench.errors import UserError
from bench.registry import DATASETS, REPO_ROOT, plugin_module
from bench.train import CHECKPOINT
from conditional_data import TinyAngles
from metrics_threads import one_thread  # noqa: F401  (the fixture)
from test_methods import make_method

pytestmark = pytest.mark.usefixtures("one_thread")

ccgan = plugin_module(REPO_ROOT / "methods" / "ccgan.py")
cgan = plugin_module(REPO_ROOT / "methods" / "cgan.py")
nda = plugin_module(REPO_ROOT / "methods" / "nda.py")
dual = plugin_module(REPO_ROOT / "methods" / "dual_nda.py")


# -- CcGAN -------------------------------------------------------------------------
def test_sigma_and_kappa_rules():
    y = np.array([0.0, 0.1, 0.1, 0.4, 1.0])
    assert ccgan.rule_of_thumb_sigma(y) == pytest.approx(1.06 * np.std(y) * 5 ** (-0.2))
    assert ccgan.kappa_base(np.unique(y), 2.0) == pytest.approx(2 * 0.6)  # largest gap 0.4 -> 1.0
    assert ccgan.vicinity_radius("hard", 0.05, 1e-3) == (0.05, 0.0)
    radius, nu = ccgan.vicinity_radius("soft", 0.05, 1e-3)
    assert nu == pytest.approx(400.0) and radius == pytest.approx(math.sqrt(math.log(1e3) / 400))
    with pytest.raises(ValueError, match="two distinct"):
        ccgan.kappa_base(np.array([0.3]), 1.0)


def test_vicinity_window_and_soft_weights():
    sorted_y = torch.tensor([0.0, 0.125, 0.25, 0.25, 0.5, 0.875])  # binary fractions: no rounding at the edges
    lo, count = ccgan.in_window(sorted_y, torch.tensor([0.1875, 0.25, 0.75, 0.9375]), 0.0625)
    assert lo.tolist() == [1, 2, 5, 5] and count.tolist() == [3, 2, 0, 1]  # [0.125, 0.25] holds 0.125, 0.25, 0.25
    idx = ccgan.pick(lo[:2], count[:2])
    assert 1 <= idx[0] <= 3 and 2 <= idx[1] <= 3
    w = ccgan.soft_weights(torch.tensor([0.1, 0.3]), torch.tensor([0.2, 0.2]), 100.0)
    assert torch.allclose(w, torch.exp(torch.tensor([-1.0, -1.0])))
    assert torch.equal(ccgan.soft_weights(torch.tensor([0.1]), torch.tensor([0.9]), 0.0), torch.ones(1))


def test_vicinal_batch_draws_reals_and_fake_labels_in_the_vicinity():
    method, _ = make_method("ccgan-hvdl", "circle", batch_size=64, width=8, arch="ccgan-mlp", hp={"ccgan_kappa": 2.0})
    assert method.kappa_base == pytest.approx(2 / 120, rel=1e-5) and method.nu == 0.0  # circle's angles are float32
    assert method.sigma == pytest.approx(1.06 * np.std(np.arange(120) / 120) * 1200 ** (-0.2), rel=1e-3)
    batch = method.vicinal_batch(512)
    assert ((batch.real_labels - batch.target).abs() <= method.radius + 1e-6).all()
    assert ((batch.fake_labels - batch.target).abs() <= method.radius + 1e-6).all()
    assert (batch.target >= 0).all() and (batch.target <= 1).all()  # the periodic angle wraps
    soft, _ = make_method("ccgan-svdl", "circle", batch_size=64, width=8, arch="ccgan-mlp", hp={"ccgan_kappa": 2.0})
    assert soft.nu == pytest.approx(1 / (2 / 120) ** 2, rel=1e-5)
    assert soft.radius == pytest.approx(math.sqrt(-math.log(1e-3) / soft.nu))


def test_ccgan_encodes_the_circle_angle_as_sin_and_cos():
    method, _ = make_method("ccgan-svdl", "circle", width=8, arch="ccgan-mlp")
    c = method.label_input(torch.tensor([0.0, math.pi / 2]))
    assert torch.allclose(c, torch.tensor([[0.0, 1.0], [1.0, 0.0]]), atol=1e-6)


def test_rare_labels_are_replicated_to_the_authors_minimum():
    """improved_CcGAN UTKFace main.py:143-167: a label with n < 200 images gets 200 - n of its own
    images again, drawn with replacement; larger labels and `to` <= 1 are left as they are."""
    y = np.array([1.0] * 3 + [2.0] * 250 + [3.0] * 199 + [4.0])
    idx = ccgan.replicate_rare(y, 200, seed=0)
    assert idx[: len(y)].tolist() == list(range(len(y)))
    labels, counts = np.unique(y[idx], return_counts=True)
    assert labels.tolist() == [1, 2, 3, 4] and counts.tolist() == [200, 250, 200, 200]
    assert set(idx[len(y):][y[idx[len(y):]] == 1.0]) <= {0, 1, 2}
    assert np.array_equal(idx, ccgan.replicate_rare(y, 200, seed=0)) and not np.array_equal(idx, ccgan.replicate_rare(y, 200, seed=1))
    for to in (0, 1):
        assert ccgan.replicate_rare(y, to, seed=0).tolist() == list(range(len(y)))


class RareAngles(TinyAngles):
    name = "tiny-rare-angles"
    replicate_to = 3

    def train_set(self, imbalance, seed):
        split = super().train_set(imbalance, seed)
        return Split(split.x, split.y.round())  # integer angles: some repeated, most alone


def test_ccgan_replicates_rare_labels_before_sigma_and_kappa():
    method, _ = make_method("ccgan-svdl", RareAngles, batch_size=8, width=4)
    raw = RareAngles().train_set(1, 0).y.numpy()
    idx = ccgan.replicate_rare(raw, 3, seed=0)
    assert len(method.x) == len(idx) > len(raw)
    lo, hi = RareAngles.label_range
    assert method.sigma == pytest.approx(ccgan.rule_of_thumb_sigma((raw[idx] - lo) / (hi - lo)), rel=1e-6)
    assert method.record()["ccgan_replicated"] == {"to": 3, "added": len(idx) - len(raw)}


# -- cGAN ------------------------------------------------------------------------------
def test_cgan_bins_continuous_labels_like_ccgans_baseline():
    distinct = torch.tensor([5.0, 1.0, 2.0, 3.0, 4.0, 6.0, 7.0])
    cutoffs = cgan.class_cutoffs(distinct, 3)  # runs of 7 // 3 = 2: [1, 2], [3, 4], [5, 6, 7]
    assert cutoffs.tolist() == [1.0, 3.0, 5.0, 7.0]
    assert cgan.classes_of(torch.tensor([0.5, 1.0, 2.9, 3.0, 4.5, 7.0, 9.0]), cutoffs).tolist() == [0, 0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="exceeds the 7 distinct"):
        cgan.class_cutoffs(distinct, 8)


@pytest.mark.parametrize("dataset, arch", [("ring", "cond-mlp"), ("digits", "cond-dcgan-small")])
def test_cgan_spectrally_normalizes_every_layer_of_d(dataset, arch, tmp_path):
    """Miyato & Koyama's projection D (sngan_projection: SNConvolution2D, SNLinear, SNEmbedID) has
    sigma(W) = 1 in every layer, the class embedding included; a config from before `cgan_d_sn`
    (without the key) keeps the D it had, none."""
    from torch import nn
    from torch.nn.utils import parametrize

    from bench.spec import load_sweep

    method, _ = make_method("cgan", dataset, arch=arch, batch_size=8, width=4)
    layers = [m for m in method.D.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert method.D.embed in layers and method.D.head in layers
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    info = method.data_info
    x = torch.randn(4, info["dim"]) if info["kind"] == "points" else torch.randn(4, info["channels"], info["resolution"], info["resolution"])
    c = method.label_input(torch.zeros(4, dtype=torch.long))
    with torch.no_grad():
        for _ in range(200):  # the power iteration runs once per training-mode forward
            method.D(x, c)
    for m in layers:
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=1e-3)
    legacy = type(method)({**method.config, "hp": {k: v for k, v in method.config["hp"].items() if k != "cgan_d_sn"}},
                          method.data_info, method.device)  # fmt: skip
    assert not any(parametrize.is_parametrized(m, "weight") for m in legacy.D.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    # the spec writes the new default into new cells; the legacy value is what a config without the key means
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\nmatrix: {{method: [cgan], dataset: [{dataset}], imbalance: [1], seed: [0]}}\n"
                    f"defaults: {{budget: {{steps: 2}}, arch: {{name: {arch}}}}}\n")  # fmt: skip
    assert load_sweep(path).cells[0]["config"]["hp"]["cgan_d_sn"] is True
    path.write_text(path.read_text() + "overrides: {method: {cgan: {hp: {cgan_d_sn: false}}}}\n")
    assert "cgan_d_sn" not in load_sweep(path).cells[0]["config"]["hp"]


# -- vanilla NDA -----------------------------------------------------------------------------
def test_jigsaw_moves_whole_patches():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = nda.jigsaw(x, torch.tensor([[3, 2, 1, 0]]))  # slots top-left, top-right, bottom-left, bottom-right
    assert out[0, 0].tolist() == [[10, 11, 8, 9], [14, 15, 12, 13], [2, 3, 0, 1], [6, 7, 4, 5]]
    assert torch.equal(nda.jigsaw(x, torch.tensor([[0, 1, 2, 3]])), x)
    assert len(nda.ARRANGEMENTS) == 23 and nda.TRANSPOSED not in [tuple(p) for p in nda.ARRANGEMENTS.tolist()]


def test_nda_adds_the_jigsaw_term_with_the_authors_weights():
    method, batch = make_method("ccgan+nda", TinyAngles, batch_size=8, width=4)
    logs = method.train_step(batch)
    assert {"d_real", "d_fake", "d_jigsaw"} <= set(logs) and method.fake_weight() == 0.25
    assert method.hp["nda_jigsaw_weight"] == 0.75


# -- Dual-NDA ------------------------------------------------------------------------------
def test_type1_negatives_lie_beyond_the_quantile_of_label_distances():
    sorted_y = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    t = torch.tensor([0.0]).repeat(400)
    idx = dual.type1_indices(sorted_y, t, 0.7)
    # distances 0 .. 0.9; their 0.7-quantile (linear) is 0.63: labels 0.7, 0.8 and 0.9 qualify, uniformly
    assert set(idx.tolist()) == {7, 8, 9}
    idx = dual.type1_indices(sorted_y, torch.tensor([0.45]).repeat(400), 0.5)
    assert set(idx.tolist()) == {0, 1, 8, 9}  # distances 0.45, 0.35, 0.25, 0.15, 0.05 twice: median 0.25


def test_type2_radius_grows_by_five_percent_until_a_bank_label_is_in():
    bank = torch.tensor([0.1, 0.5])
    r = dual.type2_radius(bank, torch.tensor([0.12, 0.3, 0.5]), 0.05)
    assert r[0] == pytest.approx(0.05) and r[2] == pytest.approx(0.05)
    m = math.ceil(math.log(0.2 / 0.05) / math.log(1.05))  # 0.3 is 0.2 from both labels
    assert r[1] == pytest.approx(0.05 * 1.05**m, rel=1e-5) and 0.05 * 1.05 ** (m - 1) < 0.2 <= r[1] + 1e-9
    lo, count = ccgan.in_window(bank, torch.tensor([0.3]), r[1:2])
    assert count.item() >= 1


def test_keep_worst_keeps_scores_above_the_quantile():
    scores = np.array([1.0, 5.0, np.nan, 3.0, 9.0, 2.0])
    assert dual.keep_worst(scores, 0.6).tolist() == [False, True, False, False, True, False]


def _baseline(tmp_path, **hp):
    """A trained CcGAN baseline's folder (checkpoint.pt as bench.train writes it)."""
    from bench.store import atomic_write

    base, next_batch = make_method("ccgan-svdl", TinyAngles, batch_size=8, width=4, steps=3, hp=hp)
    for _ in range(3):
        base.train_step(next_batch)
    folder = tmp_path / "baseline"
    folder.mkdir()
    import io

    buffer = io.BytesIO()
    torch.save({"config": base.config, "step": 3, "method": base.state_dict(), "rng": {}, "log": []}, buffer)
    atomic_write(folder / CHECKPOINT, buffer.getvalue())
    return base, folder


DUAL_HP = {"dual_nda_bank_per_label": 4, "dual_nda_bank_step": 3, "dual_nda_q2": 0.5}


def _dual(folder, monkeypatch, **hp):
    model = {"mu": np.zeros(36), "cov": np.eye(36), "digest": "test", "protocol": dual.niqe.HARNESS}
    monkeypatch.setattr(dual.niqe, "pristine_model", lambda dataset: model)
    # NIQE of 8x8 images has no 96x96 block; score by mean brightness instead (what is kept is what matters here)
    monkeypatch.setattr(dual.niqe, "niqe_of", lambda images, model, labels=None: images.mean(dim=(1, 2, 3)).double().numpy())
    runtime = {"upstream_dirs": {"baseline": str(folder)}}
    method, next_batch = make_method("ccgan+dual-nda", TinyAngles, batch_size=8, width=4, hp={**DUAL_HP, **hp}, runtime=runtime)
    return method, next_batch


def test_dual_nda_needs_its_baseline_with_the_cells_ccgan_settings():
    cls = __import__("bench.registry", fromlist=["METHODS"]).METHODS.get("ccgan+dual-nda")
    config = {"hp": {**cls.hp, "ccgan_kappa": 3.0, "dual_nda_bank_step": 123},
              "optimizer": {"lr_g": 1.0}, "arch": {"name": "ccgan-sngan"}}  # fmt: skip
    needs = cls.needs(config)
    assert list(needs) == ["baseline"] and needs["baseline"]["method"] == "ccgan-svdl"
    override = needs["baseline"]["config"]
    assert override["budget"] == {"steps": 123} and override["hp"]["ccgan_kappa"] == 3.0
    assert not any(k.startswith("dual_nda") for k in override["hp"]) and override["arch"] == {"name": "ccgan-sngan"}


def test_dual_nda_finetuned_starts_from_its_baseline_and_builds_the_bank_once(tmp_path, monkeypatch):
    base, folder = _baseline(tmp_path)
    method, next_batch = _dual(folder, monkeypatch, dual_nda_start="finetune")
    for (k, a), b in zip(base.G.state_dict().items(), method.G.state_dict().values()):
        assert torch.equal(a, b), k
    assert method.step == 3 and torch.equal(method.y2h.main[0].weight, base.y2h.main[0].weight)
    banks = list((folder / "derived").glob("dual-nda-type2-*.pt"))
    assert len(banks) == 1
    saved = torch.load(banks[0], weights_only=True)
    # 18 evaluation labels x 4 fakes, the 2 brightest... above the median of each group kept: 2 per label
    assert saved["x"].dtype == torch.uint8 and len(saved["y"]) == 18 * 2
    assert torch.allclose(saved["y"].unique(), method.normalise(torch.from_numpy(TinyAngles().eval_labels()).double()).float())
    logs = method.train_step(next_batch)
    assert {"d_type1", "d_type2", "d_real", "d_fake"} <= set(logs) and all(torch.isfinite(v) for v in logs.values())
    assert method.fake_weight() == 0.8 and method.record()["dual_nda_bank_size"] == 36 and method.record()["g_updates"] == 4
    mtime = banks[0].stat().st_mtime_ns
    again, _ = _dual(folder, monkeypatch, dual_nda_start="finetune")  # a second cell (or a resume) reads the bank
    assert banks[0].stat().st_mtime_ns == mtime and len(again.bank_y) == 36


def test_dual_nda_from_scratch_keeps_fresh_networks(tmp_path, monkeypatch):
    base, folder = _baseline(tmp_path)
    method, _ = _dual(folder, monkeypatch)  # the default: the authors' schedule
    assert method.hp["dual_nda_start"] == "scratch" and method.hp["dual_nda_start_step"] == 40000
    assert method.step == 0 and not torch.equal(next(iter(method.G.parameters())), next(iter(base.G.parameters())))
    assert len(method.bank_y) == 36


def test_dual_nda_schedule_switches_the_negatives_on_after_nda_start_iter(tmp_path, monkeypatch):
    """train_ccgan.py: lambda_bar weighs the fakes from iteration 0 (line 562); the Type I and II
    terms join when the 0-based niter >= nda_start_iter (lines 568-575): with nda_start_iter 2,
    iterations 0 and 1 (our steps 1 and 2) have none, iteration 2 (step 3) has both."""
    _, folder = _baseline(tmp_path)
    method, next_batch = _dual(folder, monkeypatch, dual_nda_start_step=2)
    seen = [set(method.train_step(next_batch)) for _ in range(3)]
    assert [{"d_type1", "d_type2"} <= keys for keys in seen] == [False, False, True]
    assert all({"d_real", "d_fake"} <= keys for keys in seen) and method.fake_weight() == 0.8
    assert method.record()["dual_nda_start_step"] == 2 and method.record()["g_updates"] == 3


def test_type1_handles_labels_tied_at_the_quantile():
    """Integer ages repeated: 95 of 100 labels at distance 1 from t = 0, so the 0.9 quantile of the
    distances is 1 and no label exceeds it (the authors' assert fails there); the farthest labels,
    those at the cutoff, are the negatives."""
    sorted_y = torch.tensor([0.0] * 5 + [1.0] * 95)
    idx = dual.type1_indices(sorted_y, torch.zeros(500), 0.9)
    assert set(idx.tolist()) == set(range(5, 100))
    ages = torch.tensor(sorted([float(a) for a in range(1, 61) for _ in range(1 + a % 7)])) / 60
    t = ages[torch.randint(len(ages), (300,), generator=torch.Generator().manual_seed(0))]
    idx = dual.type1_indices(ages, t, 0.9)
    distance = (ages[None, :] - t[:, None]).abs()
    cutoff = torch.quantile(distance, 0.9, dim=1)
    assert (distance[torch.arange(300), idx] >= cutoff).all()


def test_keep_worst_uses_matlabs_quantile():
    """MATLAB's quantile([1 2 3 4 5], 0.7) is 4 (numpy's linear rule gives 3.8): only 5 is above it."""
    assert dual.keep_worst(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), 0.7).tolist() == [False] * 4 + [True]


def test_a_type2_bank_too_small_for_its_quantile_is_refused_at_plan_time(tmp_path):
    """With n fakes per label, MATLAB's q-quantile is their largest once q > (n - 0.5) / n, and the
    filter keeps none: 2 fakes per label at q2 0.9 built an empty bank and failed the cell after its
    baseline trained (found by tests/test_every_row.py). The spec now says so before any training."""
    from bench import niqe
    from bench.registry import METHODS
    from bench.spec import load_sweep

    rng = np.random.default_rng(0)
    for q in (0.5, 0.75, 0.9, 0.95, 0.999):
        n = dual.keep_worst_needs(q)
        assert all(dual.keep_worst(rng.random(n), q).any() for _ in range(20))
        assert not dual.keep_worst(rng.random(n - 1), q).any()
    path = tmp_path / "s.yaml"
    path.write_text("name: d\nmatrix: {method: [ccgan+dual-nda], dataset: [rot-fmnist], imbalance: [1], seed: [0]}\n"
                    "overrides: {method: {ccgan+dual-nda: {hp: {dual_nda_bank_per_label: 5}}}}\n")  # fmt: skip
    with pytest.raises(UserError, match=r"dual_nda_bank_per_label: .* q2 = 0.9 quantile of each label's 5, which is "
                                        r"their largest: none; set it to 6 or more"):  # fmt: skip
        load_sweep(path)
    path.write_text(path.read_text().replace("5}", "6}"))
    load_sweep(path)
    # Steering Angle's filter takes one quantile over all fakes (the authors' one NIQE model): 2 per label is fine.
    assert not METHODS.get("ccgan+dual-nda").arch_problems({}, {"niqe": niqe.AUTHORS_64}, {"dual_nda_bank_per_label": 2})


def test_dual_nda_without_its_upstream_folder_says_so():
    from bench.registry import METHODS

    cls = METHODS.get("ccgan+dual-nda")
    dual_method = cls.__new__(cls)
    dual_method._upstream_dirs = {}
    dual_method.config = {"hp": dict(cls.hp), "optimizer": dict(cls.optimizer), "arch": {"name": "ccgan-sngan"}}
    with pytest.raises(LookupError, match="has no upstream training run 'baseline'"):
        dual_method.upstream_dir("baseline")


# -- the conditional contract ------------------------------------------------------------------
def test_requested_labels_balance_classes_and_cover_the_evaluation_grid():
    assert DATASETS.get("digits")().requested_labels(23).tolist() == [i % 10 for i in range(23)]
    circle = DATASETS.get("circle")()
    labels = circle.requested_labels(725)
    counts = torch.unique_consecutive(labels, return_counts=True)[1]
    assert len(counts) == 360 and counts[:5].tolist() == [3] * 5 and set(counts[5:].tolist()) == {2}
    # fewer fakes than centres: spread over the whole grid (a window at the top end still gets fakes)
    assert circle.requested_labels(4).tolist() == pytest.approx(circle.eval_labels()[[0, 90, 180, 270]].tolist())
    assert TinyAngles().requested_labels(5).tolist() == pytest.approx([2.5, 17.5, 37.5, 52.5, 72.5])  # 18 centres


LABEL_SWEEP = """
name: cond
matrix: {method: [METHOD], dataset: [circle], imbalance: [1], seed: [0]}
defaults: {budget: {steps: 2, batch_size: 16, eval_samples: 360}}
executor: {name: debug}
"""


def test_the_spec_refuses_label_metrics_on_an_unconditional_row(tmp_path):
    from bench.spec import load_sweep

    path = tmp_path / "s.yaml"
    path.write_text(LABEL_SWEEP.replace("METHOD", "gan"))
    with pytest.raises(UserError) as err:
        load_sweep(path)
    message = str(err.value)
    assert "metric 'circle_hq'" in message and "row 'gan' is unconditional" in message and "\n" not in message
    path.write_text(LABEL_SWEEP.replace("METHOD", "ccgan-hvdl"))
    assert len(load_sweep(path).cells) == 1


def test_a_conditional_row_on_unlabelled_or_class_data_is_refused(tmp_path):
    from bench.spec import load_sweep

    path = tmp_path / "s.yaml"
    path.write_text(LABEL_SWEEP.replace("METHOD", "ccgan-svdl").replace("circle", "digits"))
    with pytest.raises(UserError, match="CcGAN conditions on a continuous label; the dataset has class labels"):
        load_sweep(path)


def test_dual_nda_resumed_from_its_state_equals_the_uninterrupted_run(tmp_path, monkeypatch):
    from test_methods import _rng_state, _set_rng_state

    _, folder = _baseline(tmp_path)
    straight, next_batch = _dual(folder, monkeypatch, dual_nda_start_step=2)  # the resume crosses the switch
    for _ in range(4):
        straight.train_step(next_batch)
    first, next_batch = _dual(folder, monkeypatch, dual_nda_start_step=2)
    for _ in range(2):
        first.train_step(next_batch)
    saved, rng = first.state_dict(), _rng_state(next_batch.generator)
    resumed, next_batch = _dual(folder, monkeypatch, dual_nda_start_step=2)
    resumed.load_state_dict(saved)
    _set_rng_state(rng, next_batch.generator)
    for _ in range(2):
        resumed.train_step(next_batch)
    for a, b in zip(straight.state_dict()["D"].values(), resumed.state_dict()["D"].values()):
        assert torch.equal(a, b)
    labels = TinyAngles().requested_labels(6)
    assert torch.equal(straight.sample(6, seed=1, labels=labels), resumed.sample(6, seed=1, labels=labels))
    assert straight.record() == resumed.record()


def test_cgan_classes_default_to_the_papers_k_on_each_dataset_and_a_sweep_still_sets_them(tmp_path):
    """Issue 20: cgan at its defaults runs on every continuous dataset the harness registers."""
    from bench.spec import load_sweep

    path = tmp_path / "s.yaml"
    datasets = "[circle, utkface, steering-angle, rot-fmnist]"
    path.write_text(f"name: k\nmatrix: {{method: [cgan], dataset: {datasets}, imbalance: [1], seed: [0]}}\n")
    classes = {c["config"]["dataset"]: c["config"]["hp"]["cgan_classes"] for c in load_sweep(path).cells}
    assert classes == {"circle": 120, "utkface": 60, "steering-angle": 210, "rot-fmnist": 45}
    path.write_text(path.read_text() + "overrides: {method: {cgan: {hp: {cgan_classes: 30}}}}\n")
    assert {c["config"]["hp"]["cgan_classes"] for c in load_sweep(path).cells} == {30}


def test_cgan_replicates_rare_labels_where_the_ccgan_scripts_do(tmp_path):
    """improved_CcGAN's UTKFace main.py replicates rare ages before it branches on the GAN, so its
    cGAN trains on the replicated set: the loop's batches come from it (one epoch draws each
    replicated row once). Only on UTKFace by default; elsewhere the config (and id) is unchanged."""
    from bench.spec import load_sweep
    from bench.train import train

    method, _ = make_method("cgan", RareAngles, batch_size=8, width=4, hp={"cgan_classes": 2, "cgan_replicate": True})
    data = RareAngles().train_set(1, 0)
    rows = ccgan.replicate_rare(data.y.numpy(), 3, seed=0)
    assert len(rows) > len(data.y) and method.batch_rows(data.y).tolist() == rows.tolist()
    drawn = []
    method.train_step = lambda next_batch: drawn.append(next_batch()[1]) or {}
    method.config["budget"] = {"steps": math.ceil(len(rows) / 8), "batch_size": 8, "eval_samples": 8, "sampler": "epoch"}
    train(method, data, method.config, {"log_every": 1000, "checkpoint_every": 1000}, tmp_path)
    labels = torch.cat(drawn)[: len(rows)].numpy()
    assert sorted(labels.tolist()) == sorted(data.y.numpy()[rows].tolist())  # the replicated set, not the raw one
    assert method.record()["cgan_replicated"] == {"to": 3, "added": len(rows) - len(data.y)}
    plain, _ = make_method("cgan", RareAngles, batch_size=8, width=4, hp={"cgan_classes": 2})
    assert plain.batch_rows(data.y) is None

    path = tmp_path / "s.yaml"
    path.write_text("name: r\nmatrix: {method: [cgan], dataset: [circle, utkface], imbalance: [1], seed: [0]}\n")
    hp = {c["config"]["dataset"]: c["config"]["hp"] for c in load_sweep(path).cells}
    assert hp["utkface"]["cgan_replicate"] is True and "cgan_replicate" not in hp["circle"]
