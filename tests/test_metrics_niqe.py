"""NIQE: our block features and score equal pyiqa's NIQE given the same
parameters; the natural-scene model is fitted without pyiqa; NIQE lives
outside bench/metrics/ so methods can rank their samples with it."""

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.data import Dataset, Split
from bench import niqe
from bench.metrics.base import EvalContext
from bench.metrics.niqe import NIQE
from metrics_threads import one_thread  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def _textures(n: int, channels: int, seed: int, res: int = 28) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.randn(n, channels, res // 4, res // 4, generator=g), size=(res, res), mode="bilinear")
    return (x + 0.3 * torch.randn(n, channels, res, res, generator=g)).clamp(-1, 1)


class Textures(Dataset):
    name = "mt-textures"
    kind = "images"
    resolution = 28
    channels = 1

    def train_set(self, imbalance, seed):
        return Split(_textures(12, 1, 100 + seed), torch.zeros(12, dtype=torch.long))

    def reference_set(self):
        return Split(_textures(4, 1, 7), torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("channels", [1, 3])
def test_niqe_equals_pyiqa_on_the_same_parameters(tmp_path, channels):
    pyiqa_niqe = pytest.importorskip("pyiqa.archs.niqe_arch", reason="pyiqa is the optional extra `niqe` (pip install 'ganbench[niqe]')")
    import scipy.io

    mu, cov, blocks = niqe.fit(_textures(12, channels, 1))
    assert mu.shape == (36,) and cov.shape == (36, 36) and blocks >= 12
    path = tmp_path / "params.mat"
    scipy.io.savemat(path, {"mu_prisparam": mu[None, :], "cov_prisparam": cov})
    images = niqe.upsample(_textures(3, channels, 2))
    ours = niqe.scores(images, mu, cov)
    theirs = pyiqa_niqe.NIQE(pretrained_model_path=str(path))(images).numpy()
    print(f"NIQE ours {ours} pyiqa {theirs}")
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def test_fitted_model_scores_its_own_kind_better_than_noise():
    d = Textures()
    ctx = EvalContext(dataset=d, fake=_textures(4, 1, 9), reference=d.reference_set(), device=torch.device("cpu"))
    natural = NIQE().compute(ctx)
    noise = NIQE().compute(EvalContext(dataset=d, fake=torch.rand(4, 1, 28, 28) * 2 - 1, reference=None,
                                            device=torch.device("cpu")))  # fmt: skip
    assert 0 < natural < noise
    assert ctx.info["niqe"]["fit_images"] == 12 and ctx.info["niqe"]["size"] == niqe.UPSAMPLED
    assert len(ctx.info["niqe"]["digest"]) == 12


def test_flat_images_have_no_niqe_and_say_why():
    d = Textures()
    ctx = EvalContext(dataset=d, fake=torch.full((2, 1, 28, 28), -1.0), reference=None, device=torch.device("cpu"))
    assert math.isnan(NIQE().compute(ctx))
    assert "undefined" in ctx.info["unavailable"]["niqe"]
    assert ctx.info["niqe"]["undefined_images"] == 2


def test_small_images_are_upsampled_to_whole_blocks():
    up = niqe.upsample(_textures(1, 1, 3, res=32))
    assert up.shape[-1] == niqe.UPSAMPLED and up.shape[-1] % niqe.BLOCK == 0
    assert 0 <= float(up.min()) and float(up.max()) <= 1


def test_niqe_module_does_not_depend_on_the_metrics_package():
    """Methods (e.g. Dual-NDA's Type II negatives) import bench.niqe; it must not pull in bench.metrics."""
    tree = ast.parse(Path(niqe.__file__).read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m and m.startswith("bench.metrics")], imported


def test_niqe_of_scores_each_image_with_a_given_model():
    model = niqe.pristine_model(Textures())
    values = niqe.niqe_of(torch.cat([_textures(2, 1, 9), torch.full((1, 1, 28, 28), -1.0)]), model)
    assert values.shape == (3,) and np.isfinite(values[:2]).all() and math.isnan(values[2])


# -- the CcGAN / Dual-NDA authors' MATLAB protocol ---------------------------------------------
class Ages(Dataset):
    """64x64 colour textures at two 'ages', 1 smooth and 2 rough, with the authors' per-label NIQE."""

    name = "mt-ages"
    kind = "images"
    resolution = 64
    channels = 3
    niqe = niqe.AUTHORS_64_PER_LABEL

    def train_set(self, imbalance, seed):
        x = torch.cat([_textures(3, 3, 20, res=64) * 0.5, _textures(3, 3, 21, res=64)])
        return Split(x, torch.tensor([1.0, 1.0, 1.0, 2.0, 2.0, 2.0]))

    def reference_set(self):
        return self.train_set(1, 0)


def test_authors_protocol_fits_a_model_per_label_on_native_8px_blocks():
    """Intra_niqe_train_utkface.m: fitniqe per age, BlockSize [8 8], SharpnessThreshold 0.1, 64x64."""
    protocol = niqe.AUTHORS_64_PER_LABEL
    assert (protocol.block, protocol.upsample_to, protocol.sharpness, protocol.fit_images) == (8, 0, 0.1, 0)
    model = niqe.pristine_model(Ages())
    assert model["labels"].tolist() == [1.0, 2.0] and model["mu"].shape == (2, 36) and model["cov"].shape == (2, 36, 36)
    train = Ages().train_set(1, 0)
    for k, age in enumerate((1.0, 2.0)):
        mu, cov, _ = niqe.fit(train.x[train.y == age], protocol)
        np.testing.assert_allclose(model["mu"][k], mu)
        np.testing.assert_allclose(model["cov"][k], cov)
    x = _textures(2, 3, 30, res=64)
    assert protocol.prepare(x).shape[-1] == 64  # native: no upsampling
    values = niqe.niqe_of(x, model, np.array([1.0, 2.0]))
    native = protocol.prepare(x)
    assert values[0] == pytest.approx(niqe.scores(native[:1], model["mu"][0], model["cov"][0], 8)[0])
    assert values[1] == pytest.approx(niqe.scores(native[1:], model["mu"][1], model["cov"][1], 8)[0])
    assert values[1] != pytest.approx(niqe.scores(native[1:], model["mu"][0], model["cov"][0], 8)[0])
    with pytest.raises(ValueError, match="give each image's label"):
        niqe.niqe_of(x, model)


def test_sharpness_threshold_is_relative_to_each_images_sharpest_block():
    """0.1 keeps the blocks of a half-flat image that 0.75 leaves out (fitniqe's SharpnessThreshold)."""
    x = _textures(2, 1, 40, res=64)
    x[..., 32:] = x[..., 32:] * 0.05  # the right half nearly flat
    loose = niqe.fit(x, niqe.AUTHORS_64)[2]
    strict = niqe.fit(x, niqe.Protocol(block=8, upsample_to=0, sharpness=0.75, fit_images=0, recipe="t"))[2]
    feats, sharp = niqe.image_features(niqe.to_gray255(niqe.AUTHORS_64.prepare(x)), 8)
    assert feats.shape[1] == 64  # 8x8 blocks of a 64x64 image
    assert loose <= int((sharp > 0.1 * sharp.max(dim=1, keepdim=True).values).sum())  # less any block with NaN features
    assert loose > strict


def test_8px_blocks_equal_pyiqa_on_the_same_parameters():
    pyiqa_niqe = pytest.importorskip("pyiqa.archs.niqe_arch", reason="pyiqa is the optional extra `niqe` (pip install 'ganbench[niqe]')")
    mu, cov, _ = niqe.fit(_textures(6, 3, 1, res=64), niqe.AUTHORS_64)
    images = niqe.AUTHORS_64.prepare(_textures(3, 3, 2, res=64))
    ours = niqe.scores(images, mu, cov, 8)
    # pyiqa's niqe() on the rounded luminance our scores() feed it, with 8x8 blocks
    theirs = [float(pyiqa_niqe.niqe(niqe.to_gray255(img[None]), torch.from_numpy(mu), torch.from_numpy(cov),
                                    block_size_h=8, block_size_w=8)) for img in images]  # fmt: skip
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


class AgeWindows(Ages):
    name = "mt-age-windows"
    label_type = "continuous"
    window_radius = 0.0
    niqe = niqe.AUTHORS_64

    def eval_labels(self):
        return np.array([1.0, 2.0])


def test_niqe_metric_averages_per_window_then_over_windows(monkeypatch):
    """Intra_niqe_test_utkface.m: the mean NIQE of each age's fakes, then the mean over ages:
    three fakes of age 1 at 1, 2, 3 and one of age 2 at 10 give (2 + 10) / 2 = 6, not 4."""
    import bench.metrics.niqe as metric

    model = {"mu": np.zeros(36), "cov": np.eye(36), "labels": None, "digest": "t", "images": 1, "blocks": 1,
             "protocol": niqe.AUTHORS_64}  # fmt: skip
    monkeypatch.setattr(metric, "pristine_model", lambda dataset: model)
    monkeypatch.setattr(metric, "niqe_of", lambda x, m, labels=None: np.array([1.0, 2.0, 3.0, 10.0]))
    ctx = EvalContext(dataset=AgeWindows(), fake=torch.zeros(4, 3, 64, 64), reference=None, device=torch.device("cpu"),
                      fake_labels=torch.tensor([1.0, 1.0, 1.0, 2.0]))  # fmt: skip
    assert NIQE().compute(ctx) == pytest.approx(6.0)
    assert ctx.info["niqe"]["windows"] == 2 and ctx.info["niqe"]["block"] == 8
    unlabelled = EvalContext(dataset=AgeWindows(), fake=torch.zeros(4, 3, 64, 64), reference=None, device=torch.device("cpu"))
    assert math.isnan(NIQE().compute(unlabelled)) and "requested labels" in unlabelled.info["unavailable"]["niqe"]


def test_nearest_grid_point_equals_the_full_argmin():
    """The AGGD shape search by binary search picks what pyiqa's argmin over the grid picks,
    ties (midpoints) and NaN included."""
    gam, r = niqe._aggd_grid(torch.float64, torch.device("cpu"))
    x = torch.cat([torch.rand(3000, generator=torch.Generator().manual_seed(0)).double() * 0.9, r[::97],
                   (r[1:300] + r[:299]) / 2, torch.tensor([float("nan"), -1.0, 5.0], dtype=torch.float64)])  # fmt: skip
    assert torch.equal(niqe.nearest(r, x), (r[None, :] - x[:, None]).abs().argmin(dim=-1))
