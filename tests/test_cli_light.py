"""`plan`, `status` and `report` read a sweep without importing torch (issue 14), and `plan | head` ends quietly.

The first command that expands a sweep keeps the expansion in the cache
(bench.sweepcache); the next ones read it back while neither the sweep file
nor the code of ganbench or its plugins changed. Seconds are measured by
tests/perf/bench_cli.py, not here.
"""

import json
import subprocess
import sys
import textwrap

from conftest import ganbench

# Runs CLI commands in one process and says, after each, whether torch was imported.
PROBE = """
import contextlib, io, json, sys
from bench.cli import main
out = []
for argv in json.loads(sys.argv[1]):
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        rc = main(argv)
    out.append({"rc": rc, "stdout": text.getvalue(), "torch": "torch" in sys.modules})
print(json.dumps(out))
"""

PLUGIN = '''
import torch.nn.functional as F

from bench.method import Method
from bench.registry import METHODS


@METHODS.register("light-test")
class LightTest(Method):
    paper = "a plugin row (test plugin)"

    def d_loss(self, real_out, fake_out):
        return F.softplus(-real_out).mean() + F.softplus(fake_out).mean()

    def g_loss(self, fake_out):
        return F.softplus(-fake_out).mean()
'''


def _probe(cwd, *argvs) -> list[dict]:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps([list(map(str, a)) for a in argvs])],
                          cwd=cwd, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_plan_status_report_read_a_kept_expansion_without_torch(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins/light_plugin.py").write_text(PLUGIN)
    sweep = tmp_path / "light.yaml"
    sweep.write_text(textwrap.dedent("""
        name: light
        plugins: [plugins]
        matrix: {method: [light-test, gan], dataset: [ring], imbalance: [1], seed: [0]}
        defaults: {budget: {steps: 10, batch_size: 16, eval_samples: 100}, log_every: 5}
        executor: {name: debug}
    """))
    ganbench("sweep", "light.yaml", cwd=tmp_path, check=0)  # expands afresh and keeps the expansion

    plan, status, report = _probe(tmp_path, ["plan", "light.yaml"], ["status", "light.yaml", "--cells"],
                                  ["report", "light.yaml"])  # fmt: skip
    assert [r["rc"] for r in (plan, status, report)] == [0, 0, 0]
    assert not any(r["torch"] for r in (plan, status, report)), "a command that only reads imported torch"
    assert plan["stdout"].count(" done\n") == 2
    assert "light: done 2, diverged 0, failed 0, running 0, pending 0 (of 2)" in status["stdout"]
    assert "2 cells: 2 done" in report["stdout"]
    board = (tmp_path / "results/light/leaderboard.md").read_text()
    assert "light-test" in board and "modes" in board.lower()

    # A changed plugin file: the expansion is made again (the plugins are imported), and kept again.
    (tmp_path / "plugins/light_plugin.py").write_text(PLUGIN + "\n# changed\n")
    (again,) = _probe(tmp_path, ["plan", "light.yaml"])
    assert again["torch"] and again["stdout"].count(" done\n") == 2
    assert not _probe(tmp_path, ["plan", "light.yaml"])[0]["torch"]
    # A changed sweep file: new cells at once.
    sweep.write_text(sweep.read_text().replace("seed: [0]", "seed: [0, 1]"))
    (more,) = _probe(tmp_path, ["plan", "light.yaml"])
    assert "4 cells in sweep 'light'" in more["stdout"] and more["stdout"].count(" pending\n") == 2


def test_plan_into_a_closed_pipe_ends_quietly(tmp_path):
    sweep = tmp_path / "wide.yaml"
    sweep.write_text("name: wide\nmatrix: {method: [gan], dataset: [ring], imbalance: [1], seed: "
                     f"{list(range(2000))}}}\n")  # fmt: skip
    proc = subprocess.run(f"{sys.executable} -m bench.cli plan wide.yaml | head -n 3; exit ${{PIPESTATUS[0]}}",
                          shell=True, executable="/bin/bash", cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.stdout.count("\n") == 3
    assert proc.stderr == "" and proc.returncode == 141  # 128 + SIGPIPE, as a process the pipe ended
