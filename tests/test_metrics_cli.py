"""`ganbench evalnets DATASET`, `ganbench list metrics`, metric errors in sweep
files, and the per-class record of a swept cell."""

import json
import textwrap

from conftest import ganbench

PLUGIN = '''
import torch

from bench.data import Dataset, Split
from bench.registry import DATASETS


def _make(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(2).repeat_interleave(n)
    x = -0.8 + 0.2 * torch.randn(2 * n, 1, 8, 8, generator=g)
    x[y == 1, :, :4] += 1.5
    return Split(x.clamp(-1, 1), y, [n, n])


@DATASETS.register("mt-cli-halves")
class Halves(Dataset):
    kind = "images"
    num_classes = 2
    resolution = 8
    channels = 1
    description = "test: bright top half or not"

    def train_set(self, imbalance, seed):
        return _make(40, seed)

    def reference_set(self):
        return _make(20, 99)
'''


def test_evalnets_trains_once_then_loads(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "halves.py").write_text(PLUGIN)
    env = {"GANBENCH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    first = ganbench("evalnets", "mt-cli-halves", "--plugins", tmp_path / "plugins", check=0, env=env).stdout
    line = [ln for ln in first.splitlines() if "classifier" in ln and "digest" in ln][0]
    assert "cnn-v2" in line and "accuracy 1.0000" in line
    second = ganbench("evalnets", "mt-cli-halves", "--plugins", tmp_path / "plugins", check=0, env=env).stdout
    assert second == first  # loaded from the cache: same weights, same hash
    assert len(list((tmp_path / "cache" / "evalnets").glob("mt-cli-halves-classifier-*.pt"))) == 1
    # A bad pickle in the cache (before: an UnpicklingError traceback naming no file, on every
    # sweep): named, set aside, trained again, the same network.
    (cached,) = (tmp_path / "cache" / "evalnets").glob("mt-cli-halves-classifier-*.pt")
    cached.write_bytes(b"\x80\x04\x95not a pickle at all")
    third = ganbench("evalnets", "mt-cli-halves", "--plugins", tmp_path / "plugins", check=0, env=env)
    assert third.stdout == first and "Traceback" not in third.stderr
    assert f"ganbench: the cache file {cached} cannot be read (cannot be loaded (UnpicklingError" in third.stderr
    assert len(list(cached.parent.glob(cached.name + ".corrupt-*"))) == 1


def test_evalnet_steps_caps_training_and_keeps_the_capped_networks_apart(tmp_path):
    """$GANBENCH_EVALNET_STEPS (smoke runs of the protocols): fewer batches, another cache file and
    digest, never the uncapped network's; a bad value is one line."""
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "halves.py").write_text(PLUGIN)
    env = {"GANBENCH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    full = ganbench("evalnets", "mt-cli-halves", "--plugins", tmp_path / "plugins", check=0, env=env).stdout
    capped = ganbench("evalnets", "mt-cli-halves", "--plugins", tmp_path / "plugins", check=0,
                      env={**env, "GANBENCH_EVALNET_STEPS": "1"}).stdout  # fmt: skip
    files = sorted(p.name for p in (tmp_path / "cache" / "evalnets").glob("mt-cli-halves-classifier-*.pt"))
    assert len(files) == 2 and "-capped1" in files[0] + files[1]
    digest = [ln.split("digest")[1] for ln in (full, capped) for ln in ln.splitlines() if "classifier" in ln]
    assert digest[0] != digest[1]
    bad = ganbench("evalnets", "mt-cli-halves", "--plugins", tmp_path / "plugins", env={**env, "GANBENCH_EVALNET_STEPS": "0"})
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "ganbench: error: $GANBENCH_EVALNET_STEPS: must be a whole number of training batches >= 1, got '0'")


def test_evalnets_errors_are_one_line():
    proc = ganbench("evalnets", "ring", check=2)
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("ganbench: error: dataset 'ring' (points, class labels) has no evaluation networks")


def test_list_metrics_shows_every_metric_with_its_direction():
    out = ganbench("list", "metrics", check=0).stdout
    for name, arrow in (("inception_fid", "↓"), ("inception_kid", "↓"), ("precision", "↑"), ("coverage", "↑"),
                        ("fid_tail", "↓"), ("intra_fid", "↓"), ("label_score", "↓"), ("diversity", "↑"),
                        ("sfid", "↓"), ("niqe", "↓"), ("circle_hq", "↑"), ("circle_w2", "↓"), ("inception_score", "↑")):  # fmt: skip
        line = [ln for ln in out.splitlines() if ln.split()[0] == name]
        assert line and line[0].split()[1] == arrow, name


def test_a_metric_that_does_not_apply_is_refused(tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(textwrap.dedent("""
        name: s
        matrix: {method: [gan], dataset: [ring], imbalance: [1], seed: [0]}
        defaults: {metrics: [inception_fid]}
    """))
    proc = ganbench("plan", sweep, check=2)
    assert "metric 'inception_fid' does not apply to dataset 'ring' (needs an image dataset)" in proc.stderr


def test_a_swept_cell_records_per_class_quality(tmp_path):
    """End to end: `evaluator.per_class` reaches result.json, null (never NaN) where a class has too few samples."""
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "halves.py").write_text(PLUGIN)
    (tmp_path / "s.yaml").write_text(textwrap.dedent("""
        name: pc
        plugins: [plugins]
        matrix: {method: [gan], dataset: [mt-cli-halves], imbalance: [1], seed: [0]}
        defaults:
          budget: {steps: 3, batch_size: 16, eval_samples: 40}
          arch: {width: 8}
          metrics: [class_kl, fid_tail]
        executor: {name: debug}
    """))
    ganbench("sweep", "s.yaml", cwd=tmp_path, check=0, env={"OMP_NUM_THREADS": "1"})
    [path] = (tmp_path / "results/runs/pc").glob("*/result.json")
    per_class = json.loads(path.read_text())["evaluator"]["per_class"]
    json.dumps(per_class, allow_nan=False)
    assert per_class["classes"] == [0, 1] and sum(per_class["generated"]) == 40
    assert len(per_class["fid_classifier"]) == 2 and "fid_inception" not in per_class
    assert all(v is None or v >= 0 for v in per_class["fid_classifier"])
