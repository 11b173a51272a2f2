import json
import os

import pytest

from bench.store import Store, atomic_write, write_json


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "result.json"
    write_json(path, {"a": 1})
    write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]


def test_failed_write_keeps_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    atomic_write(path, "old")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_claim_is_exclusive_and_status_sees_running(tmp_path):
    store = Store(tmp_path, "s")
    assert store.status("abc") == "pending"
    with store.claim("abc") as first:
        assert first
        assert store.status("abc") == "running"
    assert store.status("abc") == "pending"
    write_json(store.cell_dir("abc") / "result.json", {"status": "done"})
    assert store.status("abc") == "done"


def test_a_result_being_redone_counts_as_pending_or_running_until_replaced(tmp_path):
    store = Store(tmp_path, "s")
    write_json(store.cell_dir("abc") / "result.json", {"status": "failed"})
    assert store.status("abc") == "failed"
    store.redo(["abc", "never-ran"])
    assert store.status("abc") == "pending" and store.status("never-ran") == "pending"
    with store.claim("abc"):
        assert store.status("abc") == "running"
    write_json(store.cell_dir("abc") / "result.json", {"status": "failed"})  # the retry failed again
    assert store.status("abc") == "failed"


def test_status_shows_what_a_training_run_does_beside_its_cells(tmp_path, capsys):
    from bench import stage

    store = Store(tmp_path, "s")
    cell = {"id": "abc", "training_id": "t1", "config": {}}
    waiting = {"id": "def", "training_id": "t2", "config": {"upstream": {"baseline": "t1"}}}
    doing = "label embedding: x2y (resnet34) epoch 3 of 200, 300 images"
    with store.claim("abc"), store.claim_training("t1"), stage.recording(store.training_dir("t1")):
        stage.say(doing)
        assert store.state(cell) == ("running", doing)
        assert store.state(waiting) == ("blocked", f"upstream 'baseline' (training t1) has not finished training (training now: {doing})")
        assert f"ganbench: {doing}" in capsys.readouterr().err
        # the file is untrusted: one printable line of at most 200 characters is read
        (store.training_dir("t1") / "stage.txt").write_bytes(b"\x1b[2J" + b"x" * 10**6 + b"\nmore")
        assert store.state(cell) == ("running", "[2J" + "x" * 197)
    assert not (store.training_dir("t1") / "stage.txt").exists()
    (store.training_dir("t1") / "stage.txt").write_text("left by a killed process\n")
    assert store.state(cell) == ("pending", "") and "training now" not in store.state(waiting)[1]
