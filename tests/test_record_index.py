"""The record index (bench/record_index.py): `status` and `report` read summaries kept
beside the results, re-reading only the records that changed, and say the same as
from the records themselves."""

import json
import random

import pytest

import bench.store as store_module
from bench import record_index
from bench.report import write_report
from bench.spec import load_sweep
from bench.store import Store, atomic_write, write_json

SWEEP = """
name: idx
matrix: {method: [gan, lsgan], dataset: [ring], imbalance: [1, 10], seed: [0, 1, 2]}
defaults: {budget: {steps: 20, batch_size: 16, eval_samples: 50}}
"""


def _record(cell: dict, rng: random.Random, host: str) -> dict:
    """A result record with every field the runner writes (values random)."""
    config = cell["config"]
    metrics = {m: rng.random() for m in config["metrics"]}
    repeats = [{"eval_seed": k, "metrics": {m: v + 0.01 * k for m, v in metrics.items()}} for k in range(1 + config["seed"] % 2 * 2)]
    environment = {"ganbench": "0.1.0", "git_commit": "a" * 40, "python": "3.12.1", "torch": "2.11.0", "numpy": "2.5.0",
                   "host": host, "device": "cpu", "device_name": "a CPU", "cuda": None, "threads": 1}  # fmt: skip
    return {"id": cell["id"], "sweep": "idx", "config": config, "training_id": cell["training_id"], "status": "done",
            "metrics": metrics, "eval_repeats": repeats,
            "data": {"n_train": 800, "class_counts": [100 + 50 * c for c in range(8)][::-1], "counts_of": "classes",
                     "subset_seed": config["seed"]},
            "train": {"steps": 20, "resumed_from_step": 0, "environment": environment, "finished_at": "2026-01-01T00:00:00+0000"},
            "method_info": {"g_updates": 20, "d_updates": 20, "arch": {"name": "mlp"}},
            "timings": {"train_s": rng.uniform(1, 2), "train_reused": False, "sample_s": 0.1, "eval_s": 0.5,
                        "metric_s": dict.fromkeys(metrics, 0.1)},
            "environment": environment, "set_aside": [],
            "evaluator": {"per_class": {"generated": [rng.randint(0, 20) for _ in range(8)],
                                        "fid_classifier": [rng.random() for _ in range(8)]}, "other": {"x": 1}},
            "finished_at": f"2026-01-0{1 + config['seed']}T00:00:00+0000"}  # fmt: skip


@pytest.fixture()
def filled(tmp_path):
    (tmp_path / "idx.yaml").write_text(SWEEP)
    sweep = load_sweep(tmp_path / "idx.yaml")
    store = Store(tmp_path / "results", sweep.name)
    rng = random.Random(0)
    for i, cell in enumerate(sweep.cells):
        write_json(store.cell_dir(cell["id"]) / "result.json", _record(cell, rng, host=f"node{i % 2}"))
    return sweep, store


def _outputs(store: Store) -> dict[str, str]:
    return {name: (store.report_dir / name).read_text()
            for name in ("leaderboard.md", "leaderboard.csv", "cells.csv", "leaderboard.html", "leaderboard.tex")}  # fmt: skip


def test_the_report_from_summaries_equals_the_report_from_records(filled, monkeypatch):
    sweep, store = filled
    write_report(sweep, store)
    from_index = _outputs(store)
    assert (store.runs_dir / record_index.INDEX_NAME).is_file()
    full = [json.loads(p.read_text()) for p in sorted(store.runs_dir.glob("*/result.json"))]
    monkeypatch.setattr(Store, "records", lambda self: full)
    write_report(sweep, store)
    assert _outputs(store) == from_index
    md = from_index["leaderboard.md"]
    assert "12 cells: 12 done" in md and "### Evaluation spread" in md and "per class" in md


def test_only_records_that_changed_are_read_again(filled, monkeypatch):
    sweep, store = filled
    reads = []
    real = store_module.read_json
    monkeypatch.setattr(store_module, "read_json", lambda path, key: reads.append(path) or real(path, key))
    assert len(store.records()) == 12 and len(reads) == 12
    reads.clear()
    assert len(store.records()) == 12 and reads == []
    # an atomic rewrite (a new result) is read again; the others are not
    cell = sweep.cells[0]
    record = json.loads((store.cell_dir(cell["id"]) / "result.json").read_text())
    record["metrics"]["modes_covered"] = 123.0
    write_json(store.cell_dir(cell["id"]) / "result.json", record)
    summaries = {r["id"]: r for r in store.records()}
    assert [p.parent.name for p in reads] == [cell["id"]] and summaries[cell["id"]]["metrics"]["modes_covered"] == 123.0
    # the summary leaves out what only the record's own file needs
    assert "config" not in summaries[cell["id"]] and "metric_s" not in summaries[cell["id"]]["timings"]
    assert summaries[cell["id"]]["evaluator"] == {"per_class": record["evaluator"]["per_class"]}


def test_status_answers_from_the_index_and_damage_is_never_indexed(filled, monkeypatch):
    sweep, store = filled
    broken = sweep.cells[1]["id"]
    atomic_write(store.cell_dir(broken) / "result.json", '{"status": "do')  # cut short
    assert len(store.records()) == 11
    kept = json.loads((store.runs_dir / record_index.INDEX_NAME).read_text())
    assert broken not in kept["cells"] and len(kept["environments"]) == 2  # two hosts: two environments kept once each
    parsed = []
    real = store_module.read_json
    monkeypatch.setattr(store_module, "read_json", lambda path, key: parsed.append(path.parent.name) or real(path, key))
    states = {c["id"]: store.state(c)[0] for c in sweep.cells}
    assert states[broken] == "corrupt" and sum(s == "done" for s in states.values()) == 11
    assert set(parsed) == {broken}  # the 11 indexed records were not parsed again


def test_an_unusable_index_is_rebuilt_and_an_unwritable_one_costs_only_speed(filled, monkeypatch):
    sweep, store = filled
    (store.runs_dir).mkdir(parents=True, exist_ok=True)
    (store.runs_dir / record_index.INDEX_NAME).write_text("{not json")
    assert len(store.records()) == 12
    kept = json.loads((store.runs_dir / record_index.INDEX_NAME).read_text())
    assert len(kept["cells"]) == 12 and kept["version"] == record_index.VERSION
    # entries damaged by hand, or an index of another layout, are read again from the records
    first, second = sorted(kept["cells"])[:2]
    kept["cells"][first] = [kept["cells"][first][0], "not a summary"]
    kept["cells"][second][1].pop("status")
    (store.runs_dir / record_index.INDEX_NAME).write_text(json.dumps(kept))
    assert sorted(r["id"] for r in store.records()) == sorted(c["id"] for c in sweep.cells)
    assert {store.status(c["id"]) for c in sweep.cells} == {"done"}
    kept["version"] = "2"
    (store.runs_dir / record_index.INDEX_NAME).write_text(json.dumps(kept))
    assert len(store.records()) == 12
    assert json.loads((store.runs_dir / record_index.INDEX_NAME).read_text())["version"] == record_index.VERSION
    (store.runs_dir / record_index.INDEX_NAME).unlink()

    def refuse(path, data):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(store_module, "atomic_write", refuse)
    assert len(store.records()) == 12 and not (store.runs_dir / record_index.INDEX_NAME).exists()
