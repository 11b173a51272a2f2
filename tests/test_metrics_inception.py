"""Inception FID/KID equal clean-fid's own functions; our nn.Module equals the
TorchScript network; the matrix resize equals clean-fid's resizer; P/R/D/C
equal prdc's; the real-statistics cache is keyed by every setting and safe
when jobs race; IS is never a made-up number."""

import json
import math
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data import Dataset, Split
from bench.metrics import refstats
from bench.metrics.base import EvalContext
from bench.metrics.fid_kid import InceptionFID, InceptionKID, InceptionScore
from bench.errors import UserError
from bench.metrics import inception
from bench.metrics.inception import clean_resize, extractor, inception_features, quantise, to_uint8, weights_path
from bench.metrics.prdc_metrics import NEAREST_K
from bench.registry import METRICS
from cleanfid_reference import cleanfid_fid
from metrics_threads import one_thread  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

N = 8  # images per set: Inception runs at a few images/s on a CPU


def _images(seed: int, channels: int = 3, n: int = N, res: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand(n, channels, 4, 4, generator=g), size=(res, res), mode="bilinear")
    return (base * 2 - 1 + 0.2 * torch.randn(n, channels, res, res, generator=g)).clamp(-1, 1)


class PairSet(Dataset):
    """A reference split of fixed random images (set B)."""

    name = "mt-inception-pair"
    kind = "images"
    resolution = 16
    channels = 3
    num_classes = 2

    def reference_set(self):
        return Split(_images(2), torch.arange(N) % 2)


def _save_folder(images: torch.Tensor, folder) -> None:
    folder.mkdir()
    for i, img in enumerate(to_uint8(images)):
        Image.fromarray(img.squeeze(-1) if img.shape[-1] == 1 else img).save(folder / f"{i:03d}.png")


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """Our metrics on fake = set A vs reference = set B, and clean-fid's own features of the same PNGs."""
    from cleanfid.fid import get_folder_features

    tmp = tmp_path_factory.mktemp("inception")
    fake, dataset = _images(1), PairSet()
    ctx = EvalContext(dataset=dataset, fake=fake, reference=dataset.reference_set(), device=torch.device("cpu"))
    ours = {m.name: m().compute(ctx) for m in (InceptionFID, InceptionKID)}
    ours.update({k: METRICS._items[k]().compute(ctx) for k in ("precision", "recall", "density", "coverage")})
    _save_folder(fake, tmp / "a")
    _save_folder(dataset.reference_set().x, tmp / "b")
    fx = extractor("cpu").fn
    feats = {k: get_folder_features(str(tmp / k), model=fx, num_workers=0, batch_size=N, device=torch.device("cpu"),
                                    mode="clean", verbose=False) for k in ("a", "b")}  # fmt: skip
    return ctx, ours, feats, tmp


def test_features_equal_cleanfid_pipeline(scored):
    ctx, _, feats, _ = scored
    np.testing.assert_allclose(ctx.memo["inception"]["fake"], feats["a"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(ctx.memo["inception"]["real"], feats["b"], rtol=0, atol=1e-4)


def test_fid_and_kid_equal_cleanfid(scored):
    from cleanfid.fid import kernel_distance

    _, ours, feats, _ = scored
    theirs_fid = cleanfid_fid(feats["a"], feats["b"])
    np.random.seed(0)
    theirs_kid = kernel_distance(feats["b"], feats["a"])
    print(f"FID ours {ours['inception_fid']:.6f} clean-fid {theirs_fid:.6f}; KID ours {ours['inception_kid']:.8f} clean-fid {theirs_kid:.8f}")
    assert ours["inception_fid"] > 1.0  # two different image sets
    assert abs(ours["inception_fid"] - theirs_fid) <= 1e-3
    assert abs(ours["inception_kid"] - theirs_kid) <= 1e-6


def test_frechet_equals_cleanfid_on_the_same_features(scored):
    """Our Fréchet distance (the metric) against clean-fid's function on the same features (8 images, 2048-d)."""
    ctx, ours, _, _ = scored
    theirs = cleanfid_fid(ctx.memo["inception"]["fake"], ctx.memo["inception"]["real"])
    print(f"FID ours {ours['inception_fid']:.9f} clean-fid's function {theirs:.9f}")
    assert ours["inception_fid"] == pytest.approx(theirs, rel=1e-6)


def test_prdc_equal_prdc_package(scored):
    from prdc import compute_prdc

    _, ours, feats, _ = scored
    theirs = compute_prdc(real_features=feats["b"], fake_features=feats["a"], nearest_k=NEAREST_K)
    for k in ("precision", "recall", "density", "coverage"):
        assert ours[k] == pytest.approx(theirs[k], abs=1e-6), k


def test_evaluator_info_names_extractor_and_counts(scored):
    ctx, _, _, _ = scored
    info = ctx.info["inception"]
    assert info["digest"] == extractor("cpu").digest and len(info["digest"]) == 12
    assert info["n_real"] == N and info["n_fake"] == N
    assert ctx.info["prdc"] == {"nearest_k": 5}


def test_grayscale_features_equal_cleanfid(tmp_path):
    """clean-fid reads a grayscale PNG as RGB; we repeat the channel: same features."""
    from cleanfid.fid import get_folder_features

    gray = _images(5, channels=1, n=2)
    _save_folder(gray, tmp_path / "g")
    theirs = get_folder_features(str(tmp_path / "g"), model=extractor("cpu").fn, num_workers=0, batch_size=2,
                                 device=torch.device("cpu"), mode="clean", verbose=False)  # fmt: skip
    np.testing.assert_allclose(inception_features(gray), theirs, rtol=0, atol=1e-4)


def test_second_cell_reads_real_statistics_from_cache(scored):
    ctx, _, _, _ = scored
    refstats._memo.clear()
    key = refstats.cache_key(ctx.dataset, extractor("cpu").identity(), N)
    path = refstats.key_path(key)
    assert path.exists()
    mtime = path.stat().st_mtime_ns

    def must_not_run():
        raise AssertionError("the cached statistics were recomputed")

    stats = refstats.reference_stats(key, must_not_run)
    np.testing.assert_array_equal(stats["feats"], ctx.memo["inception"]["real"])
    assert path.stat().st_mtime_ns == mtime
    assert [p.name for p in path.parent.iterdir() if ".tmp" in p.name] == []


class Other(PairSet):
    name = "mt-other"


def test_cache_key_changes_with_every_setting():
    ex = {"name": "inception", "digest": "abc"}
    base = refstats.cache_key(PairSet(), ex, 100)
    variants = [
        refstats.cache_key(Other(), ex, 100),
        refstats.cache_key(PairSet(), {"name": "inception", "digest": "abd"}, 100),
        refstats.cache_key(PairSet(), ex, 101),
        refstats.cache_key(PairSet(), ex, 100, split="train"),
        refstats.cache_key(PairSet(), ex, 100, imbalance=10, subset_seed=0),
        refstats.cache_key(PairSet(), ex, 100, imbalance=10, subset_seed=1),
        {**base, "resolution": 32},
    ]
    paths = {refstats.key_path(k) for k in [base, *variants]}
    assert len(paths) == len(variants) + 1
    assert base["subset"] == "balanced"
    assert variants[4]["subset"] == {"imbalance": 10, "subset_seed": 0}


RACE = textwrap.dedent('''
    import sys, time, numpy as np
    from bench.metrics import refstats
    key = {"dataset": "race", "split": "reference", "subset": "balanced", "resolution": 8,
           "extractor": {"name": "test"}, "n": 3}
    def compute():
        with open(sys.argv[1], "a") as f:
            f.write("computed\\n")
        time.sleep(1.0)
        return np.arange(12, dtype=np.float32).reshape(3, 4), np.arange(3)
    stats = refstats.reference_stats(key, compute)
    print(float(stats["mu"].sum()), stats["feats"].shape)
''')


def test_two_jobs_racing_compute_once_and_write_one_file(tmp_path):
    env = {**os.environ, "GANBENCH_CACHE": str(tmp_path / "cache")}
    log = tmp_path / "computed.log"
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(log)], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1] == "22.0 (3, 4)\n"
    assert log.read_text() == "computed\n"
    files = sorted(p.name for p in (tmp_path / "cache" / "refstats").iterdir())
    assert len([f for f in files if f.endswith(".npz")]) == 1 and not [f for f in files if ".tmp" in f], files
    with np.load(tmp_path / "cache" / "refstats" / [f for f in files if f.endswith(".npz")][0]) as f:
        assert json.loads(str(f["key"]))["dataset"] == "race"


def test_inception_score_is_unavailable_without_full_weights(monkeypatch):
    monkeypatch.delenv("GANBENCH_IS_WEIGHTS", raising=False)
    dataset = PairSet()
    ctx = EvalContext(dataset=dataset, fake=_images(1), reference=dataset.reference_set(), device=torch.device("cpu"))
    assert math.isnan(InceptionScore().compute(ctx))
    assert "no logits layer" in ctx.info["unavailable"]["inception_score"]
    monkeypatch.setenv("GANBENCH_IS_WEIGHTS", "/nonexistent/weights.pth")
    assert math.isnan(InceptionScore().compute(ctx))
    assert "no such file" in ctx.info["unavailable"]["inception_score"]


def test_weights_override_must_exist(monkeypatch):
    from bench.errors import UserError
    from bench.metrics.inception import weights_path

    monkeypatch.setenv("GANBENCH_INCEPTION", "/nonexistent/inception.pt")
    with pytest.raises(UserError, match="GANBENCH_INCEPTION=/nonexistent/inception.pt: no such file"):
        weights_path()


@pytest.mark.parametrize("res,channels", [(28, 1), (28, 3), (32, 3), (64, 3)])
def test_matrix_resize_equals_cleanfids_resizer(res, channels):
    from cleanfid.resize import build_resizer

    pixels = to_uint8(_images(11, channels=channels, n=2, res=res))
    resize = build_resizer("clean")
    theirs = np.stack([resize(np.repeat(p, 3, axis=2) if channels == 1 else p) for p in pixels]).transpose(0, 3, 1, 2)
    ours = clean_resize(torch.from_numpy(pixels).permute(0, 3, 1, 2).float()).numpy()
    assert ours.shape == theirs.shape == (2, 3, 299, 299)
    assert float(np.abs(ours - theirs).max()) <= 1e-3


def test_quantise_matches_the_saved_png_levels():
    x = _images(12, n=3)
    assert torch.equal(quantise(x).to(torch.uint8).permute(0, 2, 3, 1), torch.from_numpy(to_uint8(x)))


def test_network_equals_the_torchscript_it_is_read_from():
    """Our nn.Module with weights read from the archive computes the TorchScript's features."""
    with warnings.catch_warnings():
        # torch.jit.load is deprecated (a FutureWarning in PyTorch 2.14, a DeprecationWarning in 2.11); only this
        # test still calls it, as the reference our module replaces.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.load(str(weights_path()), map_location="cpu").eval()
    x = clean_resize(quantise(_images(13, n=2)))
    with torch.inference_mode():
        theirs = scripted(x.sub(128).div(128)).numpy()
    np.testing.assert_allclose(extractor("cpu").fn(x).numpy(), theirs, rtol=0, atol=1e-4)


def test_batches_and_memory_back_off_do_not_change_features(monkeypatch):
    """The device path: any batch size gives the same features, and a batch the GPU cannot hold is halved."""
    x = _images(14, n=3)
    whole = inception_features(x, "cpu", batch_size=3)
    fx = extractor("cpu")
    seen = []

    def small_device(batch):
        seen.append(len(batch))
        if len(batch) > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return fn(batch)

    fn = fx.fn
    monkeypatch.setattr(fx, "fn", small_device)
    np.testing.assert_allclose(inception_features(x, "cpu", batch_size=2), whole, rtol=0, atol=1e-4)
    assert seen == [2, 1, 1, 1]  # 2 fails, then batches of 1 for the rest
    assert inception.batch_size_for(torch.device("cuda")) > inception.batch_size_for(torch.device("cpu"))


def test_archive_reader_reads_a_torchscript_written_by_this_torch(tmp_path):
    """clean-fid's file has `layers` at the top (ours: `net.layers`); any TorchScript zip reads tensor for tensor."""
    from bench.metrics.inception_net import ConvBN, load_layers_state_dict

    class Top(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.Sequential(ConvBN(3, 4, 3, stride=2), ConvBN(4, 2, (1, 3), padding=(0, 1)))

        def forward(self, x):
            return self.layers(x)

    top = Top()
    for i, v in enumerate(top.state_dict().values()):
        v.copy_(torch.randn(v.shape, generator=torch.Generator().manual_seed(i)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript's writer is deprecated too; the test needs a file
        warnings.simplefilter("ignore", DeprecationWarning)  # (PyTorch 2.11's category)
        torch.jit.save(torch.jit.trace(top, torch.zeros(1, 3, 9, 9)), str(tmp_path / "top.pt"))
    read = load_layers_state_dict(tmp_path / "top.pt")
    expected = top.layers.state_dict()
    assert read.keys() == expected.keys() and all(torch.equal(read[k], expected[k]) for k in expected)


def _archive(path, payload: bytes):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("m/data.pkl", payload)
        z.writestr("m/version", "3\n")


class _Runs:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("content", ["not a zip", "code"])
def test_a_bad_weights_file_is_one_line_and_runs_nothing(tmp_path, monkeypatch, content):
    path = tmp_path / "inception.pt"
    if content == "not a zip":
        path.write_bytes(b"garbage")
    else:
        _archive(path, pickle.dumps(_Runs(), protocol=2))
    monkeypatch.setenv("GANBENCH_INCEPTION", str(path))
    with pytest.raises(UserError, match=r"inception.pt: not the TF Inception-v3 as TorchScript") as err:
        extractor("cpu")
    assert "\n" not in str(err.value)
    if content == "code":
        assert "refusing posix.system" in str(err.value) or "refusing nt.system" in str(err.value)
