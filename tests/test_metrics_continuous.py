"""Continuous-label metrics (Label Score, Diversity, SFID) and the circle
metrics, on tiny synthetic data sets that follow the ContinuousDataset contract."""

import math

import numpy as np
import pytest
import torch

from bench.data import ContinuousDataset, Split
from bench.metrics.base import EvalContext
from bench.metrics.circle import CircleHighQuality, CircleModes, CircleW2
from bench.metrics.continuous import Diversity, LabelScore, SlidingFID
from bench.metrics.evalnet import get_evalnet, roles_for
from metrics_threads import one_thread  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

RES = 16
CENTRES = np.arange(5, 90, 10, dtype=np.float64)  # 9 evaluation centres in [0, 90)


def _bars(y: torch.Tensor, aux: torch.Tensor, seed: int) -> torch.Tensor:
    """A bar through the centre at angle y (degrees); aux 1 draws it thick."""
    g = torch.Generator().manual_seed(seed)
    c = torch.linspace(-1, 1, RES)
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    t = torch.deg2rad(y.float()).view(-1, 1, 1)
    dist = (xx * torch.sin(t) - yy * torch.cos(t)).abs()
    width = 0.12 + 0.2 * aux.float().view(-1, 1, 1)
    x = torch.where(dist < width, 1.0, -1.0) + 0.1 * torch.randn(len(y), RES, RES, generator=g)
    return x.clamp(-1, 1).unsqueeze(1)


def _split(n: int, seed: int, with_aux: bool = True) -> Split:
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(n, generator=g) * 90
    aux = torch.randint(0, 2, (n,), generator=g)
    return Split(_bars(y, aux, seed), y, [], aux if with_aux else None)


class Bars(ContinuousDataset):
    name = "mt-bars"
    kind = "images"
    resolution = RES
    channels = 1
    label_range = (0.0, 90.0)

    def train_set(self, imbalance, seed):
        return _split(320, 100 + seed)

    def reference_set(self):
        return _split(600, 7)

    def eval_labels(self):
        return CENTRES


class BarsNoAux(Bars):
    name = "mt-bars-noaux"

    def train_set(self, imbalance, seed):
        return _split(320, 100 + seed, with_aux=False)

    def reference_set(self):
        return _split(600, 7, with_aux=False)


def _fakes(per_centre: int = 20, aux=None, seed: int = 3):
    y = torch.from_numpy(np.repeat(CENTRES, per_centre))
    a = torch.randint(0, 2, (len(y),), generator=torch.Generator().manual_seed(seed)) if aux is None else torch.full((len(y),), aux)
    return _bars(y, a, seed), y


def _ctx(fake, labels, dataset=None):
    d = dataset or Bars()
    return EvalContext(dataset=d, fake=fake, reference=d.reference_set(), device=torch.device("cpu"), fake_labels=labels)


def test_evaluation_networks_are_trained_once_with_scores():
    assert roles_for(Bars) == ["regressor", "aux_classifier", "autoencoder"]
    reg = get_evalnet(Bars(), "regressor")
    assert reg.scores["mae"] < 15  # degrees, on held-out images
    assert get_evalnet(Bars(), "aux_classifier").accuracy > 0.8
    assert get_evalnet(Bars(), "autoencoder").scores["mse"] < 0.5
    assert get_evalnet(Bars(), "regressor") is reg  # loaded once per process


def test_label_score_is_small_for_right_labels_and_large_for_wrong_ones():
    fake, y = _fakes()
    ctx = _ctx(fake, y)
    right = LabelScore().compute(ctx)
    wrong = LabelScore().compute(_ctx(fake, (y + 40) % 90))
    assert right < 15 < wrong
    info = ctx.info["regressor"]
    assert set(info) == {"recipe", "digest", "mae"}


def test_diversity_is_higher_for_mixed_than_for_one_kind():
    mixed = Diversity().compute(_ctx(*_fakes()))
    fake, y = _fakes(aux=1)
    single = Diversity().compute(_ctx(fake, y))
    assert single < 0.3 < mixed <= math.log(2) + 1e-9


def test_sfid_prefers_real_looking_fakes():
    fake, y = _fakes()
    good = SlidingFID().compute(_ctx(fake, y))
    noise = SlidingFID().compute(_ctx(torch.rand_like(fake) * 2 - 1, y))
    assert good < noise
    ctx = _ctx(fake, y)
    SlidingFID().compute(ctx)
    assert ctx.info["sfid"]["radius"] == pytest.approx(5.0)  # half the spacing of the centres
    assert ctx.info["sfid"]["windows"] == len(CENTRES)


def test_sfid_scores_small_windows_and_is_nan_only_without_a_covariance():
    fake, y = _fakes(per_centre=3)  # theirs has no minimum count: 3 fakes a window are scored
    assert math.isfinite(SlidingFID().compute(_ctx(fake, y)))
    fake, y = _fakes(per_centre=1)
    ctx = _ctx(fake, y)
    assert math.isnan(SlidingFID().compute(ctx))
    assert "9 of 9 windows hold fewer than 2 fakes (e.g. centre 5)" in ctx.info["unavailable"]["sfid"]


def test_unconditional_samples_and_missing_aux_are_recorded_not_scored():
    fake, y = _fakes()
    ctx = _ctx(fake, None)
    for metric in (LabelScore(), Diversity(), SlidingFID()):
        assert math.isnan(metric.compute(ctx))
    assert set(ctx.info["unavailable"]) == {"label_score", "diversity", "sfid"}
    ctx = _ctx(fake, y, BarsNoAux())
    assert math.isnan(Diversity().compute(ctx))
    assert "no auxiliary categorical attribute" in ctx.info["unavailable"]["diversity"]


class Ring(ContinuousDataset):
    """The CcGAN circle contract: mean(labels), sigma, 360 unseen evaluation angles."""

    name = "mt-ring"
    kind = "points"
    dim = 2
    label_range = (0.0, 2 * np.pi)
    sigma = 0.02

    def eval_labels(self):
        return 2 * np.pi * (np.arange(360) + 0.5) / 360

    @classmethod
    def mean(cls, labels):
        t = np.asarray(labels, dtype=np.float64)
        return np.stack([np.sin(t), np.cos(t)], axis=-1)


def _ring_ctx(points, labels):
    return EvalContext(dataset=Ring(), fake=torch.as_tensor(points), reference=None, device=torch.device("cpu"),
                       fake_labels=torch.as_tensor(labels))  # fmt: skip


def test_circle_metrics_on_exact_and_shifted_fakes():
    d = Ring()
    labels = np.repeat(d.eval_labels(), 4)
    # four points per angle at mu +- sigma along each axis: mean mu, variance 2 sigma^2 / 3 per axis
    offsets = d.sigma * np.tile(np.array([[1, 0], [-1, 0], [0, 1], [0, -1]]), (360, 1))
    exact = d.mean(labels) + offsets
    expected = 2 * d.sigma**2 * (1 - math.sqrt(2 / 3)) ** 2  # W2², as CcGAN's simulation reports it
    ctx = _ring_ctx(exact, labels)
    assert CircleHighQuality().compute(ctx) == 100.0
    assert CircleModes().compute(ctx) == 100.0
    assert CircleW2().compute(ctx) == pytest.approx(expected, rel=1e-4)

    shift = 10 * d.sigma  # every point outside 4 sigma
    ctx = _ring_ctx(exact + np.array([shift, 0]), labels)
    assert CircleHighQuality().compute(ctx) == 0.0
    assert CircleModes().compute(ctx) == 0.0
    assert CircleW2().compute(ctx) == pytest.approx(shift**2 + expected, rel=1e-4)


def test_circle_modes_counts_centres_with_a_high_quality_fake():
    d = Ring()
    labels = np.repeat(d.eval_labels(), 2)
    points = d.mean(labels)
    points[: 2 * 90] += 1.0  # the first 90 angles miss
    ctx = _ring_ctx(points, labels)
    assert CircleModes().compute(ctx) == 75.0
    assert CircleHighQuality().compute(ctx) == 75.0
    assert ctx.info["circle"]["centres"] == 360


# -- the authors' windows, on hand-made predictions (no network trained) ----------------------
class _Net:
    """A stand-in evaluation network whose outputs are given: what the metric does with them is tested."""

    def __init__(self, labels=None, classes=None, k_aux=3):
        self.labels, self.classes, self.extra = labels, classes, {"num_aux_classes": k_aux}

    def predict_labels(self, x):
        return torch.as_tensor(self.labels, dtype=torch.float64)

    def predict_classes(self, x):
        return torch.as_tensor(self.classes)


class Windows(Bars):
    """Steering-like windows: centres 10, 20, 30 with radius 6, apart from the evaluation labels."""

    name = "mt-windows"
    window_radius = 6.0

    def window_centres(self):
        return np.array([10.0, 20.0, 30.0])


def _window_ctx(y):
    y = torch.tensor(y, dtype=torch.float64)
    return EvalContext(dataset=Windows(), fake=torch.zeros(len(y), 1, RES, RES), reference=None,
                       device=torch.device("cpu"), fake_labels=y)  # fmt: skip


def test_label_score_is_the_mean_over_all_fakes_not_of_window_means():
    """Their reported LS is cal_labelscore over all fakes (main.py:529): with 3 fakes off by 1 at
    one label and 1 fake off by 5 at another, (1 + 1 + 1 + 5) / 4 = 2 (window means would give 3)."""
    ctx = _window_ctx([10.0, 10.0, 10.0, 20.0])
    labels = np.array([10.0, 10.0, 10.0, 20.0])
    value = LabelScore().score(ctx, _Net(labels=[11.0, 9.0, 11.0, 25.0]), labels, Windows().window_centres(), 6.0)
    assert value == pytest.approx(2.0)


def test_diversity_pools_every_fake_within_the_radius_of_each_centre():
    """main.py:496-505: the fakes with |y - c| <= r, not those asked for exactly c. Fakes at
    8, 12, 16, 24 and 26 of classes 0, 1, 1, 2, 0: window 10 holds 8, 12, 16 (classes 0, 1, 1),
    window 20 holds 16, 24, 26 (1, 2, 0; 12 is 8 away), window 30 holds 24, 26 (2, 0)."""
    y = np.array([8.0, 12.0, 16.0, 24.0, 26.0])
    ctx = _window_ctx(y.tolist())
    centres = Windows().window_centres()
    value = Diversity().score(ctx, _Net(classes=[0, 1, 1, 2, 0]), y, centres, 6.0)
    h = -(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3))
    expected = np.mean([h, math.log(3), math.log(2)])
    assert value == pytest.approx(expected)


def test_windows_without_fakes_make_diversity_nan_with_the_centre():
    ctx = _window_ctx([10.0, 11.0])
    value = Diversity().score(ctx, _Net(classes=[0, 1]), np.array([10.0, 11.0]), Windows().window_centres(), 6.0)
    assert math.isnan(value) and "2 of 3 windows hold fewer than 1 fakes (e.g. centre 20)" in ctx.info["unavailable"]["diversity"]


def test_sfid_uses_the_datasets_windows():
    fake, y = _fakes()
    ctx = EvalContext(dataset=Windows(), fake=fake, reference=Bars().reference_set(), device=torch.device("cpu"),
                      fake_labels=y)  # fmt: skip
    assert math.isfinite(SlidingFID().compute(ctx))
    assert ctx.info["sfid"] == {"radius": 6.0, "windows": 3}
    assert ctx.info["windows"] == {"centres": 3, "radius": 6.0, "first": 10.0, "last": 30.0}


# -- the authors' evaluation networks (the `paper` budgets) -------------------------------------
class Faces(ContinuousDataset):
    """Colour images with a label and a 2-class aux, asking for the authors' networks (32 px: cheaper
    than their 64, the same layers)."""

    name = "mt-faces"
    kind = "images"
    resolution = 32
    channels = 3
    label_range = (1.0, 60.0)
    options = {"evalnets": __import__("bench.data", fromlist=["EVALNET_OPTION"]).EVALNET_OPTION["evalnets"]}

    def train_set(self, imbalance, seed):
        g = torch.Generator().manual_seed(seed)
        return Split(torch.rand(8, 3, 32, 32, generator=g) * 2 - 1, torch.arange(8.0) * 5 + 1, [], torch.arange(8) % 2)

    def reference_set(self):
        return self.train_set(1, 5)

    def eval_labels(self):
        return np.arange(1.0, 61.0)


def test_authors_evaluation_networks_are_resnet34s_and_a_512d_encoder(monkeypatch):
    from bench.metrics import evalnet

    monkeypatch.setattr(evalnet, "AUTHORS_EPOCHS", 1)  # their 200 epochs are for a GPU
    d = Faces(evalnets="authors")
    reg, cls, ae = (get_evalnet(d, role) for role in ("regressor", "aux_classifier", "autoencoder"))
    trunk_params = sum(p.numel() for p in reg.model.trunk.parameters())
    # their ResNet34 trunk by hand: 3x3 conv + BN, BasicBlocks [3, 4, 6, 3] at 64..512 channels, each stage
    # opening with stride 2 and a 1x1 shortcut conv + BN (also the first: stride 2), no fc
    assert trunk_params == 21_281_216
    assert [m.out_features for m in reg.model.head if isinstance(m, torch.nn.Linear)] == [128, 128, 1]
    assert isinstance(cls.model.head, torch.nn.Linear) and cls.model.head.out_features == 2
    assert ae.encode(d.reference_set().x).shape == (8, 512)
    assert reg.describe()["recipe"] == "resnet34-reg-v1" and reg.describe()["family"] == "authors"
    assert cls.describe()["recipe"] == "resnet34-cls-v1" and ae.describe()["recipe"] == "ae512-v1"
    small = get_evalnet(Faces(), "regressor")
    assert small.describe()["recipe"] == "cnn-reg-v1" and "family" not in small.describe()


def test_evaluation_network_family_stays_out_of_the_training_id():
    from bench.spec import training_config

    config = {"method": "ccgan-svdl", "budget": {"steps": 1, "eval_samples": 5}, "dataset_options": {"evalnets": "authors"}}
    assert "dataset_options" not in training_config(config)
    config["dataset_options"]["mode"] = "x"
    assert training_config(config)["dataset_options"] == {"mode": "x"}
