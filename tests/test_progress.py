"""Long steps outside the cells say what they do: a line in a log, the sweep's activity note for `status`."""

import json
import os
import subprocess
import sys

from bench import progress


def test_a_long_step_prints_progress_and_tells_status(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(progress, "QUIET_S", 0.0)
    note = tmp_path / progress.ACTIVITY_FILE
    progress.set_activity_file(note)
    try:
        with progress.task("training the classifier of digits", 3000) as advance:
            advance(1200)
            assert json.loads(note.read_text())["done"] == 1200
            line = progress.activity_line(tmp_path)
            assert line.startswith("now: training the classifier of digits (1,200/3,000 steps, 0 min)")
        assert not note.exists()  # finished: nothing is happening any more
    finally:
        progress.set_activity_file(None)
    err = capsys.readouterr().err
    assert "training the classifier of digits: 1,200/3,000 steps" in err and "done in" in err


def test_a_note_left_by_a_killed_sweep_or_a_bad_file_says_nothing(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    note = {"what": "x", "done": 1, "total": 2, "unit": "steps", "pid": int(dead.stdout), "since": 0}
    (tmp_path / progress.ACTIVITY_FILE).write_text(json.dumps(note))
    assert progress.activity_line(tmp_path) is None
    (tmp_path / progress.ACTIVITY_FILE).write_text("{not json")
    assert progress.activity_line(tmp_path) is None
    (tmp_path / progress.ACTIVITY_FILE).unlink()
    os.mkfifo(tmp_path / progress.ACTIVITY_FILE)  # never blocks on a FIFO
    assert progress.activity_line(tmp_path) is None
