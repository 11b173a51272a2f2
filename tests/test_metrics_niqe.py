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
