"""Every method row and add-on trains a few steps on `ring` (mlp) and on
`digits` with every image architecture (rows for images only skip `ring`),
and on a 32x32 CIFAR-format set with its paper architecture: finite losses,
samples of the right shape, and a run resumed from its state equals the
uninterrupted run; composed rows resolve through the registry, the spec and
the runner."""

import copy
import json
import math
import random
import re

import numpy as np
import pytest
import torch

from bench.archs import ARCHS, DEFAULT_ARCH_NAME, DEFAULT_CONDITIONAL_ARCH_NAME
from bench.data import Split
from bench.errors import UserError
from bench.method import Method
from bench.registry import ADDONS, DATASETS, METHODS
from conditional_data import TinyAngles
from conftest import ganbench
from metrics_threads import one_thread  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("one_thread")  # two threads per process oversubscribe the shared cores


def _conditional(name):
    return METHODS.get(name).conditional


def _needs_upstream(name):
    return METHODS.get(name).needs.__func__ is not Method.needs.__func__


# Every unconditional base method and alias, each add-on that applies to gan,
# and the combinations the sweeps use or that exercise two add-ons' hooks
# together; conditional rows get their own cases (their data need labels of
# their kind); rows that read another training run are tested in
# test_conditional.py.
ROWS = [*(n for n in METHODS.names() if not _conditional(n)),
        *(f"gan+{addon}" for addon in ADDONS.names() if ADDONS.get(addon).refuses(METHODS.get("gan")) is None),
        "sngan+pa+adaptivemix", "wgan-gp+pa", "lsgan+drs", "wgan+drs", "sngan+drs",
        "contrad+icr", "contrad+gm", "damage-gan+drs"]  # fmt: skip
CASES = [("ring", "mlp")] + [("digits", name) for name in ARCHS.names()
                             if ARCHS.get(name).kind == "images" and not ARCHS.get(name).conditional]  # fmt: skip


def _fits(name, dataset, arch):
    """Whether the spec would accept row `name` on this dataset and architecture (ContraD needs images)."""
    cls = METHODS.get(name)
    resolved = {"name": arch, **ARCHS.get(arch).defaults}
    return not cls.arch_problems(resolved, DATASETS.get(dataset).info(), cls.hp)


ROW_CASES = [(name, *case) for name in ROWS for case in CASES if _fits(name, *case)]
COND_ROWS = [n for n in METHODS.names() if _conditional(n) and not _needs_upstream(n)]
COND_IMAGE_ARCHS = [n for n in ARCHS.names() if ARCHS.get(n).conditional and ARCHS.get(n).kind == "images"
                    and ARCHS.get(n).problem({**TinyAngles.info()}) is None]  # fmt: skip
COND_POINT_ARCHS = [n for n in ARCHS.names() if ARCHS.get(n).conditional and ARCHS.get(n).kind == "points"]


def _cond_cases(name):
    """(dataset, arch) pairs a conditional row trains on in these tests."""
    cls = METHODS.get(name)
    cases = []
    for dataset in ("ring", "circle", "digits", TinyAngles):
        info = (dataset if isinstance(dataset, type) else DATASETS.get(dataset)).info()
        if cls.dataset_problem(info) is None:
            archs = COND_IMAGE_ARCHS if info["kind"] == "images" else COND_POINT_ARCHS
            cases += [(dataset, arch) for arch in archs]
    return cases


COND_PARAMS = [pytest.param(name, dataset, arch, id=f"{name}-{getattr(dataset, 'name', dataset)}-{arch}")
               for name in COND_ROWS for dataset, arch in _cond_cases(name)]  # fmt: skip
# Small settings so that a few steps exercise every code path quickly.
FAST_HP = {"drs_burnin": 64, "drs_calib_steps": 3, "pa_every": 1, "pa_window": 1, "pa_kid_samples": 32, "critic_burst": 3,
           "cgan_classes": 4, "ccgan_embed_net": "small", "ccgan_embed_epochs": 1, "ccgan_y2h_epochs": 1,
           "warmup": 2, "prune_every": 2}  # fmt: skip


def make_method(name, dataset="ring", hp=None, batch_size=16, steps=3, seed=0, width=16, arch=None, runtime=None, options=None):
    """(method, next_batch) for row `name`, built as the runner builds it;
    `next_batch.generator` is the batch stream's generator."""
    cls = METHODS.get(name)
    data_cls = dataset if isinstance(dataset, type) else DATASETS.get(dataset)
    arch_name = arch or (DEFAULT_CONDITIONAL_ARCH_NAME if cls.conditional else DEFAULT_ARCH_NAME)[data_cls.kind]
    arch = {"name": arch_name, **ARCHS.get(arch_name).defaults, "width": width}
    hp = {**cls.hp, **{k: v for k, v in {**FAST_HP, **(hp or {})}.items() if k in cls.hp}}
    config = {"method": name, "dataset": data_cls.name, "imbalance": 1, "seed": seed,
              "budget": {"steps": steps, "batch_size": batch_size, "eval_samples": 32},
              "optimizer": copy.deepcopy(cls.optimizer), "arch": arch, "hp": hp}  # fmt: skip
    torch.manual_seed(seed)
    ds = data_cls(**(options or {}))
    method = cls.create(config, ds.info(), torch.device("cpu"), dataset=ds, upstream_dirs=(runtime or {}).get("upstream_dirs"))
    data = ds.train_set(1, seed)
    method.begin(Split(data.x, data.y, data.class_counts, data.aux), fresh=True)
    batches = torch.Generator().manual_seed(seed)

    def next_batch():
        idx = torch.randint(len(data.x), (batch_size,), generator=batches)
        return data.x[idx], data.y[idx]

    next_batch.generator = batches
    return method, next_batch


def _shape(dataset):
    return {"ring": (2,), "circle": (2,), "cifar10": (3, 32, 32)}.get(dataset, (1, 8, 8))  # digits, the tiny angle images


def _sample(method, dataset, n, seed, batch_size):
    """method.sample as the runner calls it: conditional rows for the labels evaluation asks for."""
    if not method.conditional:
        return method.sample(n, seed=seed, batch_size=batch_size)
    ds = dataset() if isinstance(dataset, type) else DATASETS.get(dataset)()
    return method.sample(n, seed=seed, labels=ds.requested_labels(n), batch_size=batch_size)


def _a_few_steps(method, next_batch, dataset, arch):
    for _ in range(3):
        logs = method.train_step(next_batch)
        logs = {k: float(v) for k, v in logs.items()}  # detached 0-d tensors or floats
        assert logs and all(math.isfinite(v) for v in logs.values()), logs
    fake = _sample(method, dataset, 20, 0, 10)
    assert tuple(fake.shape) == (20, *_shape(dataset))
    assert torch.isfinite(fake).all()
    info = method.record()
    json.dumps(info)  # what the result record keeps must be JSON
    assert info["g_updates"] == 3 and info["d_updates"] >= 3 and info["arch"]["name"] == arch


PARAMS = [pytest.param(name, dataset, arch, id=f"{name}-{dataset}-{arch}") for name, dataset, arch in ROW_CASES]


@pytest.mark.parametrize("name, dataset, arch", PARAMS + COND_PARAMS)
def test_a_few_steps_give_finite_losses_and_samples(name, dataset, arch):
    method, next_batch = make_method(name, dataset, batch_size=8, width=4, arch=arch)
    _a_few_steps(method, next_batch, dataset, arch)


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    """A 32x32 training set: a small file in the CIFAR-10 python format (tests/data_writers.py)."""
    from data_writers import write_cifar

    return str(write_cifar(tmp_path_factory.mktemp("cifar"), per_batch=20))


@pytest.mark.parametrize("name", ROWS)
def test_a_few_steps_on_32x32_images_with_the_paper_network(name, cifar_root):
    arch = METHODS.get(name).paper_arch or DEFAULT_ARCH_NAME["images"]
    method, next_batch = make_method(name, "cifar10", batch_size=8, width=4, arch=arch, options={"root": cifar_root})
    _a_few_steps(method, next_batch, "cifar10", arch)


def test_image_only_rows_are_refused_on_points_in_one_line(tmp_path):
    from bench.spec import load_sweep

    path = tmp_path / "s.yaml"
    path.write_text(SWEEP.replace("HP", "{}").replace("[gm-gan, lsgan+icr]", "[contrad]"))
    with pytest.raises(UserError) as err:
        load_sweep(path)
    assert "overrides.method.contrad.hp.augment: contrad needs images: its 'simclr' augmentation transforms images, " \
           "and the dataset has points" in str(err.value) and "\n" not in str(err.value)  # fmt: skip


def _rng_state(generator):
    return random.getstate(), np.random.get_state(), torch.get_rng_state(), generator.get_state()


def _set_rng_state(state, generator):
    random.setstate(state[0])
    np.random.set_state(state[1])
    torch.set_rng_state(state[2])
    generator.set_state(state[3])


@pytest.mark.parametrize("name, dataset, arch", PARAMS + COND_PARAMS)
def test_resuming_from_the_state_equals_the_uninterrupted_run(name, dataset, arch):
    """What bench.train checkpoints (method.state_dict() and the RNG states)
    is all a run needs: 2 + 2 steps across a rebuild equal 4 straight steps,
    including what happens after the last step (DRS calibration) and sampling."""
    kwargs = dict(batch_size=8, width=4, arch=arch, steps=4)
    straight, next_batch = make_method(name, dataset, **kwargs)
    for _ in range(4):
        straight.train_step(next_batch)
    first, next_batch = make_method(name, dataset, **kwargs)
    for _ in range(2):
        first.train_step(next_batch)
    saved, rng = copy.deepcopy(first.state_dict()), _rng_state(next_batch.generator)
    resumed, next_batch = make_method(name, dataset, **kwargs)
    resumed.load_state_dict(saved)
    _set_rng_state(rng, next_batch.generator)
    for _ in range(2):
        resumed.train_step(next_batch)
    for a, b in zip(straight.state_dict()["G"].values(), resumed.state_dict()["G"].values()):
        assert torch.equal(a, b)
    for a, b in zip(straight.state_dict()["D"].values(), resumed.state_dict()["D"].values()):
        assert torch.equal(a, b)
    assert torch.equal(_sample(straight, dataset, 12, 1, 6), _sample(resumed, dataset, 12, 1, 6))
    assert straight.record() == resumed.record()


def test_composed_rows_keep_the_name_as_written_and_merge_hp():
    gm_gan = METHODS.get("gm-gan")
    assert gm_gan.name == "gm-gan" and gm_gan.base == "gan" and gm_gan.addons == ("gm",)
    assert METHODS.get("gan+gm").name == "gan+gm"
    row = METHODS.get("sngan+pa+adaptivemix")
    assert row.spectral_norm and set(row.hp) == {"sngan_loss", *METHODS.get("gan+pa").hp, *METHODS.get("gan+adaptivemix").hp}
    assert row.hp_kept_out_of_id == ("sngan_loss",)
    assert "pa_place" in row.hp and "adaptivemix_distance" in row.hp
    assert set(METHODS.get("cn-lsgan+icr").hp) >= {"gp_weight", "real_weight", "icr_real"}
    assert METHODS.get("wgan+gm").optimizer["name"] == "rmsprop"  # the base's optimizer


@pytest.mark.parametrize(
    "name, message",
    [
        ("lsgan+icrr", "unknown add-on 'icrr' in method 'lsgan+icrr'; did you mean 'icr'?"),
        ("lsgn+icr", "unknown method 'lsgn' in method 'lsgn+icr'; did you mean 'lsgan'"),
        ("lsgan+icr+pa", "add-ons 'icr' and 'pa' cannot be combined"),
        ("gan+gm+gm", "names add-on 'gm' twice"),
        ("gm-gann", "did you mean 'gm-gan'"),
    ],
)
def test_bad_rows_are_refused_with_one_line(name, message):
    assert name not in METHODS
    with pytest.raises(UserError) as err:
        METHODS.get(name)
    assert message in str(err.value) and "\n" not in str(err.value)


SWEEP = """
name: zoo
matrix: {method: [gm-gan, lsgan+icr], dataset: [ring], imbalance: [1], seed: [0]}
defaults: {budget: {steps: 4, batch_size: 16, eval_samples: 100}, log_every: 2, checkpoint_every: 2}
overrides:
  method:
    lsgan+icr: {hp: HP}
executor: {name: debug}
"""


def test_sweep_overrides_validate_against_the_merged_hp(tmp_path):
    from bench.spec import load_sweep

    path = tmp_path / "s.yaml"
    path.write_text(SWEEP.replace("HP", "{icr_real: 5}"))
    cells = {c["config"]["method"]: c["config"] for c in load_sweep(path).cells}
    assert cells["lsgan+icr"]["hp"]["icr_real"] == 5 and cells["lsgan+icr"]["hp"]["icr_gen"] == 0.5
    assert cells["gm-gan"]["hp"]["gm_layout"] == "circle"
    for hp, where in [("{gp_weight: 1}", "hp.gp_weight: method 'lsgan+icr' has no hyperparameter"),
                      ("{icr_real: -1}", "hp.icr_real: must be a number from 0 to 10,000,000, got -1"),
                      ("{icr_real: 1.0e+12}", "hp.icr_real: must be a number from 0 to 10,000,000, got 1000000000000.0"),
                      ("{icr_sigma: fast}", "hp.icr_sigma: must be a number")]:  # fmt: skip
        path.write_text(SWEEP.replace("HP", hp))
        with pytest.raises(UserError, match=re.escape(f"overrides.method.lsgan+icr.{where}")):
            load_sweep(path)


def test_cli_refuses_a_bad_row_with_exit_2(tmp_path):
    (tmp_path / "s.yaml").write_text(SWEEP.replace("HP", "{}").replace("gm-gan, ", "gm-gan, gan+icr+pa, "))
    proc = ganbench("plan", "s.yaml", cwd=tmp_path, check=2)
    assert proc.stderr.startswith("ganbench: error: ") and proc.stderr.count("\n") == 1
    assert "matrix.method[1]" in proc.stderr and "add-ons 'icr' and 'pa' cannot be combined" in proc.stderr
    assert not (tmp_path / "results").exists()
    listing = ganbench("list", "methods", check=0).stdout
    assert "gm-gan           alias of gan+gm" in listing and "+drs" in listing
    drs_line = next(line for line in listing.splitlines() if line.startswith("+drs"))
    refused = re.search(r"not for ([^)]*)\)", drs_line)
    # calibration makes DRS apply to critics too; only conditional bases (D(x, c)) are refused
    assert refused is None or all(METHODS.get(n).conditional for n in refused.group(1).split(", "))


def test_runner_records_method_info_for_composed_rows(tmp_path):
    from bench.runner import run_cell
    from bench.spec import load_sweep

    path = tmp_path / "s.yaml"
    path.write_text(SWEEP.replace("HP", "{}").replace("[gm-gan, lsgan+icr]", "[gan+drs, gan+pa]")
                    .replace("lsgan+icr: {hp: {}}", "gan+pa: {hp: {pa_every: 1, pa_window: 1, pa_kid_samples: 64}}\n"
                             "    gan+drs: {hp: {drs_calib_steps: 20}}"))  # fmt: skip
    for cell in load_sweep(path).cells:
        cell["runtime"]["results_root"] = str(tmp_path / "results")
        assert run_cell(cell) == "done"
        record = json.loads(next((tmp_path / "results").rglob(f"{cell['id']}/result.json")).read_text())
        info = record["method_info"]
        assert info["g_updates"] == 4 and info["d_updates"] == 4 and info["arch"]["name"] == "mlp"
        if record["config"]["method"] == "gan+drs":
            assert 0 < info["drs_acceptance_rate"] <= 1 and info["drs_burnin"] == 10000
            assert info["drs_calib_steps"] == 20 and info["drs_calib_loss_after"] > 0
        else:
            assert len(info["pa_level_steps"]) == info["pa_level"] and [c[0] for c in info["pa_kid"]] == [1, 2, 3, 4]
            assert info["pa_kid_features"] == "coordinates"
