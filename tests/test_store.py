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
