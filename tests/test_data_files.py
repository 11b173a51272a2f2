"""Data files: readers, the resolver, the decoded cache and the dataset plugins.

Every file is written here, small, in the real published format; nothing is
downloaded ($GANBENCH_DOWNLOAD=0).
"""

import gzip
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import bench.data
import bench.datafiles as datafiles
from bench.datafiles import read_cifar_batch, read_idx
from bench.errors import UserError
from bench.longtail import longtail_counts, profile_counts
from bench.registry import DATASETS
from data_writers import IDX_FILES, write_ccgan_h5, write_cifar, write_idx, write_mnist_like


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """$GANBENCH_DATA in a fresh folder, no download, and no Debian folder."""
    monkeypatch.setenv("GANBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("GANBENCH_DOWNLOAD", "0")
    monkeypatch.setattr(datafiles, "SYSTEM_ROOT", tmp_path / "no-system-data")
    return tmp_path / "data"


def test_idx_round_trip_and_bad_files(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", a)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), a)
    with gzip.open(tmp_path / "short.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") * 3 + b"\x00" * 5)
    with pytest.raises(UserError, match=r"short\.gz: IDX header says shape \(2, 2, 2\)"):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "plain.gz").write_bytes(b"not gzip at all")
    with pytest.raises(UserError, match=r"plain\.gz: cannot read it as gzip"):
        read_idx(tmp_path / "plain.gz")


def test_fashion_mnist_long_tail_from_data_env(data_root):
    write_mnist_like(data_root / "fashion-mnist", per_class_train=20, per_class_test=5)
    ds = DATASETS.get("fashion-mnist")()
    split = ds.train_set(imbalance=10, seed=3)
    assert split.class_counts == longtail_counts(20, 10, 10) == [20, 15, 11, 9, 7, 5, 4, 3, 2, 2]
    assert np.bincount(split.y.numpy(), minlength=10).tolist() == split.class_counts
    assert split.x.shape == (sum(split.class_counts), 1, 28, 28) and split.x.dtype == torch.float32
    # the writer encodes the label in the brightness: images stayed with their labels
    brightness = ((split.x.mean(dim=(1, 2, 3)) + 1) * 127.5 - 34.5) / 20
    assert torch.allclose(brightness, split.y.float(), atol=0.3)
    again, other = ds.train_set(10, seed=3), ds.train_set(10, seed=4)
    assert torch.equal(split.x, again.x) and not torch.equal(split.x, other.x)
    ref = ds.reference_set()
    assert ref.class_counts == [5] * 10 and ref.x.min() >= -1 and ref.x.max() <= 1


def test_step_profile_and_partial_mode(data_root):
    write_mnist_like(data_root / "fashion-mnist", per_class_train=20)
    cls = DATASETS.get("fashion-mnist")
    assert cls(profile="step").train_set(10, 0).class_counts == [20] * 5 + [2] * 5
    partial = cls(mode="partial").train_set(10, 0).class_counts
    assert sum(partial) == sum(longtail_counts(20, 10, 10)) and max(partial) - min(partial) <= 1
    assert profile_counts(5000, 10, 100, mode="partial")[0] == 1241 and sum(profile_counts(5000, 10, 100, mode="partial")) == 12406
    with pytest.raises(UserError, match="option 'profil'.*did you mean 'profile'"):
        cls(profil="step")
    with pytest.raises(UserError, match="must be one of exp, step"):
        cls(profile="linear")


def test_a_partial_variant_is_its_base_with_mode_partial_sharing_files_and_caches(data_root):
    from bench.metrics import refstats

    write_mnist_like(data_root / "fashion-mnist", per_class_train=20)
    base, variant = DATASETS.get("fashion-mnist"), DATASETS.get("fashion-mnist-partial")
    assert variant().train_set(10, 0).class_counts == base(mode="partial").train_set(10, 0).class_counts
    assert variant(mode="longtail").train_set(10, 0).class_counts == base().train_set(10, 0).class_counts
    assert variant.data_name() == base.data_name() == "fashion-mnist" and variant.name == "fashion-mnist-partial"
    assert variant().decode_key() == base().decode_key()  # one decoded copy of the files
    assert refstats.cache_key(variant(), {"name": "x"}, 10) == refstats.cache_key(base(), {"name": "x"}, 10)
    with pytest.raises(ValueError, match="variant of 'fashion-mnist': must be one of longtail, partial"):
        bench.data.variant(base, "bad", mode="half")


def test_resolver_order_and_missing_message(data_root, tmp_path):
    write_mnist_like(data_root, per_class_train=3)  # $GANBENCH_DATA itself holds a set
    explicit = write_mnist_like(tmp_path / "mine", per_class_train=4)
    assert datafiles.locate(datafiles.FASHION_MNIST) == data_root
    assert datafiles.locate(datafiles.FASHION_MNIST, root=explicit) == explicit  # the sweep's root comes first
    assert DATASETS.get("fashion-mnist")(root=str(explicit)).train_set(1, 0).class_counts == [4] * 10
    for f in IDX_FILES[1:]:
        (data_root / f).unlink()
    with pytest.raises(UserError) as err:
        DATASETS.get("fashion-mnist")().train_set(1, 0)
    message = str(err.value)
    assert "\n" not in message
    for expected in (str(data_root), str(data_root / "fashion-mnist"), "no-system-data/fashion-mnist",
                     "apt-get install dataset-fashion-mnist", "$GANBENCH_DATA", "options.root", "GANBENCH_DOWNLOAD=0"):  # fmt: skip
        assert expected in message, expected


def test_decoded_cache_never_decodes_twice(data_root, monkeypatch):
    folder = write_mnist_like(data_root / "mnist", per_class_train=6)
    first = DATASETS.get("mnist")().train_set(1, 0)
    datafiles._memory.clear()  # a new process: only the on-disk cache is left

    def no_decoding(path):
        raise AssertionError(f"decoded {path} again")

    monkeypatch.setattr(bench.data, "read_idx", no_decoding)
    second = DATASETS.get("mnist")().train_set(1, 0)
    assert torch.equal(first.x, second.x)
    arrays = DATASETS.get("mnist")().arrays()
    assert arrays["train_x"].dtype == np.uint8 and isinstance(arrays["train_x"], np.memmap)
    assert DATASETS.get("mnist")().arrays() is arrays  # one copy per process
    cached = list((Path(datafiles.cache_dir("decoded"))).glob("mnist-28px-*/train_x.npy"))
    assert cached, "the decoded arrays live under $GANBENCH_CACHE/decoded"
    # new files are a new decode, never a stale cache
    monkeypatch.undo()
    monkeypatch.setenv("GANBENCH_DATA", str(data_root))
    monkeypatch.setenv("GANBENCH_DOWNLOAD", "0")
    time.sleep(0.01)
    write_mnist_like(folder, per_class_train=7)
    assert DATASETS.get("mnist")().train_set(1, 0).class_counts == [7] * 10


def test_cifar10_pickles_and_rho100(data_root, tmp_path):
    write_cifar(data_root / "cifar10", per_batch=30)
    ds = DATASETS.get("cifar10")()
    full = ds.train_set(1, 0)
    assert full.x.shape == (150, 3, 32, 32) and full.class_counts == [15] * 10
    assert ds.train_set(100, 0).class_counts == longtail_counts(15, 10, 100)
    assert ds.reference_set().class_counts == [3] * 10
    with open(tmp_path / "evil", "wb") as f:
        pickle.dump({b"data": print, b"labels": []}, f)
    with pytest.raises(UserError, match="evil: not a CIFAR python batch.*refusing to load builtins.print"):
        read_cifar_batch(tmp_path / "evil")


@pytest.mark.parametrize("name, filename, labels, kept", [
    ("utkface", "UTKFace_64x64.h5", [0, 1, 5, 30, 60, 61, 80], [1, 5, 30, 60]),
    ("steering-angle", "SteeringAngle_64x64.h5", [-90, -80, -79.5, 0, 45.5, 79.5, 80, 85], [-79.5, 0, 45.5, 79.5]),
])  # fmt: skip
def test_ccgan_h5_readers(data_root, name, filename, labels, kept):
    cls = DATASETS.get(name)
    with pytest.raises(UserError, match=f"{filename}.*put it|{filename}.*in a folder"):
        cls().train_set(1, 0)
    write_ccgan_h5(data_root / name / filename, labels)
    ds = cls()
    split = ds.train_set(1, 0)
    assert split.x.shape == (len(kept), 3, 64, 64) and split.y.dtype == torch.float32
    assert sorted(split.y.tolist()) == kept and ds.reference_set().y.tolist() == split.y.tolist()
    assert ds.label_type == "continuous" and ds.info()["label_range"] == list(cls.label_range)


def test_steering_protocol_follows_its_data(data_root):
    """Dual-NDA's Steering Angle main.py: -80 < a < 80 kept (line 68), evaluation labels
    linspace(min, max, 2000) of the data (line 407), 1,000 SFID centres on
    linspace(min + 2, max - 2) (lines 475-477), windows |a - c| <= 2 (opts.py:98)."""
    labels = [-85, -80, -71.5, -3.25, 0, 12.0, 77.5, 80, 81]
    write_ccgan_h5(data_root / "steering-angle" / "SteeringAngle_64x64.h5", labels)
    ds = DATASETS.get("steering-angle")()
    assert sorted(ds.train_set(1, 0).y.tolist()) == [-71.5, -3.25, 0, 12.0, 77.5]
    assert np.array_equal(ds.eval_labels(), np.linspace(-71.5, 77.5, 2000))
    assert np.array_equal(ds.window_centres(), np.linspace(-69.5, 75.5, 1000)) and ds.window_radius == 2.0
    assert ds.replicate_to == 0 and ds.niqe.block == 8 and not ds.niqe.per_label


def test_utkface_races_are_the_auxiliary_class(data_root):
    ages = [0, 1, 1, 2, 30, 60, 61]
    write_ccgan_h5(data_root / "utkface" / "UTKFace_64x64.h5", ages, races=[4, 0, 1, 2, 3, 4, 0])
    ds = DATASETS.get("utkface")()
    split = ds.train_set(1, 0)
    assert split.aux.tolist() == [0, 1, 2, 3, 4] and split.y.tolist() == [1, 1, 2, 30, 60]
    assert ds.replicate_to == 200 and ds.window_radius == 0 and ds.niqe.per_label


def test_h5_races_must_be_one_class_per_image(data_root):
    write_ccgan_h5(data_root / "utkface" / "UTKFace_64x64.h5", [1, 2], races=[1])
    with pytest.raises(UserError, match="`races` must hold one integer class per image"):
        DATASETS.get("utkface")().train_set(1, 0)


def test_h5_wrong_layout(data_root):
    import h5py

    (data_root / "utkface").mkdir(parents=True)
    with h5py.File(data_root / "utkface/UTKFace_64x64.h5", "w") as f:
        f.create_dataset("imgs", data=np.zeros((2, 3, 64, 64), np.uint8))
    with pytest.raises(UserError, match="has no dataset 'images' \\(it has: imgs\\)"):
        DATASETS.get("utkface")().train_set(1, 0)


def test_circle_contract():
    ds = DATASETS.get("circle")()
    full = ds.train_set(1, seed=0)
    assert full.x.shape == (1200, 2) and len(set(full.y.tolist())) == 120
    assert np.allclose(ds.mean([0.0, np.pi / 2]), [[0, 1], [1, 0]], atol=1e-12)
    err = full.x.numpy() - ds.mean(full.y.numpy())
    assert abs(err.std() - ds.sigma) < 0.003
    evals = ds.eval_labels()
    # the authors' grid: no evaluation angle equals a training angle exactly (their assert), but five
    # are training angles to 1e-14 (datasets/circle.py)
    assert len(evals) == 360 and len(np.intersect1d(evals, ds.train_labels())) == 0
    close = np.isin(np.round(evals, 9), np.round(ds.train_labels(), 9))
    assert np.round(np.degrees(evals[close])).tolist() == [54, 99, 189, 342, 351]
    assert len(ds.reference_set().y) == 3600
    tail = ds.train_set(100, seed=0)
    assert sum(tail.class_counts) < 0.35 * 1200 and tail.class_counts[0] > 5 * tail.class_counts[-1]
    assert not torch.equal(ds.train_set(1, seed=1).x, full.x)


def test_rot_fmnist(data_root):
    from bench.registry import load_plugins

    write_mnist_like(data_root / "fashion-mnist", per_class_train=30, per_class_test=5)
    ds = DATASETS.get("rot-fmnist")()
    split = ds.train_set(1, 0)
    assert split.x.shape == (300, 1, 28, 28) and split.aux.tolist() != [] and set(split.aux.tolist()) == set(range(10))
    assert 0 <= split.y.min() and split.y.max() < 90 and len(ds.eval_labels()) == 180
    tail = ds.train_set(100, 0)
    assert len(tail.y) < 0.4 * 300 and (tail.y < 45).sum() > 2 * (tail.y >= 45).sum()
    load_plugins()
    module = next(m for name, m in __import__("sys").modules.items() if name.endswith(".rot_fmnist"))
    square = np.zeros((1, 1, 28, 28), np.uint8)
    square[0, 0, 4:10, 2:26] = 200  # a horizontal bar
    assert np.array_equal(module.rotate(square, np.array([0.0])), square)
    turned = module.rotate(square, np.array([90.0]))[0, 0]
    assert np.abs(turned.astype(int) - np.rot90(square[0, 0]).astype(int)).max() <= 1


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists(),
                    reason="the Debian package dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")  # fmt: skip
def test_real_fashion_mnist_from_debian_package(monkeypatch):
    monkeypatch.delenv("GANBENCH_DATA", raising=False)
    monkeypatch.setenv("GANBENCH_DOWNLOAD", "0")
    ds = DATASETS.get("fashion-mnist")()
    assert ds.reference_set().class_counts == [1000] * 10
    assert ds.train_set(100, 0).class_counts == longtail_counts(6000, 10, 100)


def test_failed_download_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(datafiles, "SYSTEM_ROOT", tmp_path / "none")
    monkeypatch.setenv("GANBENCH_DATA", str(tmp_path / "empty"))

    def offline(target):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    source = datafiles.Source(name="toy", files=("a.gz",), download=offline)
    with pytest.raises(UserError, match=r"toy: data files not found \(needs a.gz\).*download failed \(OSError: \[Errno -3\] "
                                        r"Temporary failure in name resolution\).*run once where the network allows"):  # fmt: skip
        datafiles.locate(source)
    monkeypatch.setenv("GANBENCH_DOWNLOAD", "0")
    with pytest.raises(UserError, match="download disabled by GANBENCH_DOWNLOAD=0"):
        datafiles.locate(datafiles.MNIST)



def test_a_variant_without_its_files_names_its_own_options_key(tmp_path, monkeypatch):
    """cifar10-partial shares cifar10's files: the one line names the key of the dataset the sweep asked for."""
    monkeypatch.setattr(datafiles, "SYSTEM_ROOT", tmp_path / "none")
    monkeypatch.setenv("GANBENCH_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("GANBENCH_DOWNLOAD", "0")
    with pytest.raises(UserError) as raised:
        DATASETS.get("cifar10-partial")().prepare()
    line = str(raised.value)
    assert line.startswith("cifar10-partial: data files not found") and "\n" not in line
    assert "overrides.dataset.cifar10-partial.options.root" in line and "cifar-10-batches-py" in line

def test_points_mixtures_take_the_profile_options():
    ring = DATASETS.get("ring")
    step = np.array(ring(profile="step").train_set(100, 0).class_counts)
    assert step[:4].min() > 20 * step[4:].max()
    partial = np.array(ring(mode="partial").train_set(100, 0).class_counts)
    assert partial.max() / partial.min() < 1.2


def test_a_gzip_bomb_posing_as_idx_is_refused_before_it_is_inflated(tmp_path):
    """Before, the whole stream was inflated (2.6 GB) and then refused; now the header
    is read first and at most what it announces (never over MAX_IDX_BYTES) after it."""
    zeros = b"\x00" * (1 << 20)
    with gzip.open(tmp_path / "small-header.gz", "wb") as f:  # 4 bytes announced, 64 MiB inflated
        f.write(bytes([0, 0, 8, 1]) + (4).to_bytes(4, "big"))
        for _ in range(64):
            f.write(zeros)
    with gzip.open(tmp_path / "huge-header.gz", "wb") as f:  # 2**32 - 1 cubed bytes announced
        f.write(bytes([0, 0, 8, 3]) + (2**32 - 1).to_bytes(4, "big") * 3 + zeros)
    started = time.process_time()
    with pytest.raises(UserError, match=r"small-header\.gz: IDX header says shape \(4,\) \(4 bytes\) but the file holds more$"):
        read_idx(tmp_path / "small-header.gz")
    with pytest.raises(UserError, match=r"huge-header\.gz: IDX header says shape .* more than the 1,073,741,824 bytes"):
        read_idx(tmp_path / "huge-header.gz")
    assert time.process_time() - started < 0.5  # inflating the 64 MiB took longer


def test_a_data_root_that_is_not_a_folder_is_refused_and_one_passed_over_is_said(data_root, tmp_path, capsys):
    """A root that is a FIFO (or /dev/zero, /dev/null: tests/inputs/bad_sweeps) was skipped
    silently for the next folder; a folder without the files is passed over, and said."""
    import os

    from bench.spec import load_sweep

    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "s.yaml").write_text("name: s\nmatrix: {method: [gan], dataset: [fashion-mnist], imbalance: [1], seed: [0]}\n"
                                     "overrides: {dataset: {fashion-mnist: {options: {root: fifo}}}}\n")  # fmt: skip
    with pytest.raises(UserError, match=rf"options.root: {tmp_path / 'fifo'} is not a folder; give the folder"):
        load_sweep(tmp_path / "s.yaml")
    write_mnist_like(data_root, per_class_train=3)
    (tmp_path / "empty").mkdir()
    assert datafiles.locate(datafiles.FASHION_MNIST, root=tmp_path / "empty", dataset="fashion-mnist") == data_root
    assert capsys.readouterr().err == (f"ganbench: warning: fashion-mnist: the given root {tmp_path / 'empty'} holds neither "
                                       f"{', '.join(IDX_FILES)} nor a fashion-mnist/ folder with them; using {data_root}\n")  # fmt: skip


def test_steering_diversity_classifier_trains_on_the_scenes_file(data_root):
    """Their scene classifier (pretrain_CNN_class.py:85-88) learns SteeringAngle_5_scenes_64x64.h5's
    `labels`; without the file Diversity says which file is missing, and adding it later works."""
    from bench.metrics.evalnet import EvalNetUnavailable, get_evalnet

    folder = data_root / "steering-angle"
    write_ccgan_h5(folder / "SteeringAngle_64x64.h5", [-10.0, 0.0, 10.0])
    ds = DATASETS.get("steering-angle")()
    with pytest.raises(EvalNetUnavailable, match="trains on SteeringAngle_5_scenes_64x64.h5, not in"):
        get_evalnet(ds, "aux_classifier")
    write_ccgan_h5(folder / "SteeringAngle_5_scenes_64x64.h5", [0, 1, 2, 3, 4] * 4)
    split = ds.aux_split()
    assert split.x.shape == (20, 3, 64, 64) and split.aux.tolist() == [0, 1, 2, 3, 4] * 4
    net = get_evalnet(ds, "aux_classifier")
    assert net.extra["num_aux_classes"] == 5 and 0 <= net.accuracy <= 1

