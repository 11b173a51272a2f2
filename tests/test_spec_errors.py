"""Malformed and hostile input: one line naming the file, key and problem, exit 2, nothing written.

The cases are files: tests/inputs/bad_sweeps/<case>.yaml and
tests/inputs/bad_plugins/<case>.py, each opening with `# expect: <part of
the message>`. Cases too large to keep as files are made from a one-line
recipe (GENERATED). Every case goes through the real command line (`plan`
and `sweep` for sweeps, `list` for plugins); all of them run in one process
(`ganbench_batch`), which pays for one torch import instead of one per case.
"""

import os
import shutil
import time
from pathlib import Path

import pytest

from bench.errors import UserError
from bench.spec import MAX_CELLS_ENV, load_sweep
from conftest import ganbench, ganbench_batch

INPUTS = Path(__file__).parent / "inputs"
BAD_SWEEPS = {p.stem: p for p in sorted((INPUTS / "bad_sweeps").glob("*.yaml"))}
BAD_PLUGINS = {p.stem: p for p in sorted((INPUTS / "bad_plugins").glob("*.py"))}
GOOD_MATRIX = "matrix: {method: [gan], dataset: [ring], imbalance: [1], seed: [0]}\n"
_NUMBERS = list(range(1, 1001))
GENERATED = {  # case: (recipe, expected part of the message)
    "matrix-1000x1000": (f"name: s\nmatrix: {{method: [gan], dataset: [ring], imbalance: {_NUMBERS}, seed: {_NUMBERS}}}\n",
                         "matrix: expands to 1,000,000 cells (1 x 1 x 1000 x 1000), more than the limit of 100,000; "
                         f"split the sweep, or raise the limit with --max-cells N or ${MAX_CELLS_ENV}"),
    "include-over-limit": ("name: s\n" + GOOD_MATRIX + f"include: [{{method: gan, dataset: ring, imbalance: {_NUMBERS}, "
                           f"seed: {_NUMBERS[:200]}}}]\n", "matrix: expands to 200,001 cells (1 x 1 x 1 x 1 + 200,000 from include)"),
    "nesting-5000-deep": ("name: s\n" + GOOD_MATRIX + "description: " + "[" * 5000 + "]" * 5000 + "\n",
                          "line 3: nested more than 32 levels deep"),
    "name-10000-characters": ("name: " + "a" * 10_000 + "\n" + GOOD_MATRIX,
                              "name: must be at most 100 characters, got 10,000 ('aaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    "name-101-characters": ("name: " + "a" * 101 + "\n" + GOOD_MATRIX, "name: must be at most 100 characters, got 101"),
    "key-10000-characters": ("name: s\n" + GOOD_MATRIX + "? " + "b" * 10_000 + "\n: 1\n",  # YAML's explicit key
                             "unknown key 'bbbbbbbbbb" + "b" * 49 + "... (10,000 characters); allowed: name"),
    "file-over-1MiB": ("name: s\n" + GOOD_MATRIX + "description: " + "x" * (1 << 20) + "\n",
                       "the sweep file is larger than 1,048,576 bytes"),
    "hex-integer-5000-digits": ("name: s\nmatrix: {method: [gan], dataset: [ring], imbalance: [1], seed: [0x" + "f" * 5000 + "]}\n",
                                "line 2: an integer of 5000 digits is out of range (at most 30 digits)"),
    "plugin-path-5000-characters": ("name: s\nplugins: [" + "p" * 5000 + "]\n" + GOOD_MATRIX,
                                    "plugins[0]: must be a folder path of at most 4,096 characters"),
}  # fmt: skip


def expected_of(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith("# expect: "), f"{path} must open with '# expect: <part of the message>'"
    return first[len("# expect: "):]


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """Every CLI case of this file, run in one process: (what was run, {name: run}).

    Sweeps: `plan` and `sweep` on each bad file, each with its own results
    folder. Plugins: `list methods --plugins <a folder holding the file>`.
    Then every command on one bad sweep, and flags out of range.
    """
    root = tmp_path_factory.mktemp("cli")
    sweeps = {name: (path, expected_of(path)) for name, path in BAD_SWEEPS.items()}
    for name, (text, expected) in GENERATED.items():
        (root / f"{name}.yaml").write_text(text)
        sweeps[name] = (root / f"{name}.yaml", expected)
    argvs = {(name, command): [command, path, "--results", root / f"results-{name}"]
             for name, (path, _) in sweeps.items() for command in ("plan", "sweep")}  # fmt: skip
    good = root / "good.yaml"
    good.write_text("name: s\n" + GOOD_MATRIX)
    results = root / "results"
    for command in ("plan", "sweep", "status", "report", "cancel"):
        argvs[("every-command", command)] = [command, BAD_SWEEPS["unknown-method"], "--results", results]
    argvs[("flags", "no file")] = ["plan", root / "nope.yaml", "--results", results]
    argvs[("flags", "workers 0")] = ["sweep", good, "--workers", "0", "--results", results]
    argvs[("flags", "workers 100000")] = ["sweep", good, "--workers", "100000", "--results", results]
    argvs[("flags", "max-cells 0")] = ["plan", good, "--max-cells", "0", "--results", results]
    argvs[("flags", "long sweep path")] = ["plan", "s" * 5000, "--results", results]
    argvs[("flags", "long plugin path")] = ["list", "methods", "--plugins", "p" * 4000]
    argvs[("flags", "long profile")] = ["sweep", good, "--executor", "slurm", "--profile", "q" * 5000, "--results", results]
    plugins = {}
    for name, path in BAD_PLUGINS.items():  # last: a half-imported plugin cannot disturb the sweep cases
        (root / name).mkdir()
        plugins[name] = (shutil.copy(path, root / name), expected_of(path))
        argvs[(name, "list")] = ["list", "methods", "--plugins", root / name]
    started = time.perf_counter()
    runs = dict(zip(argvs, ganbench_batch(list(argvs.values()), cwd=root, timeout=300)))
    print(f"{len(argvs)} CLI calls in one process: {time.perf_counter() - started:.1f} s")
    return {"sweeps": sweeps, "plugins": plugins, "root": root}, runs


@pytest.mark.parametrize("case", [*BAD_SWEEPS, *GENERATED])
def test_bad_sweep_is_one_line_exit_2_nothing_written(cli, case):
    cases, runs = cli
    path, expected = cases["sweeps"][case]
    for command in ("plan", "sweep"):
        run = runs[(case, command)]
        assert run["rc"] == 2, run
        assert run["stderr"].startswith(f"ganbench: error: {path}: "), run["stderr"][:2000]
        assert expected in run["stderr"], run["stderr"][:2000]
        assert run["stderr"].count("\n") == 1 and len(run["stderr"]) < 500, run["stderr"][:2000]
        assert run["stdout"] == ""
    assert not (cases["root"] / f"results-{case}").exists()


@pytest.mark.parametrize("case", BAD_PLUGINS)
def test_bad_plugin_is_one_line_exit_2(cli, case):
    cases, runs = cli
    (path, expected), run = cases["plugins"][case], runs[(case, "list")]
    assert run["rc"] == 2, run
    assert run["stderr"].startswith(f"ganbench: error: plugin {path} failed to import"), run["stderr"]
    assert expected in run["stderr"] and run["stderr"].count("\n") == 1, run["stderr"]
    assert run["stdout"] == ""


def test_every_command_and_bad_flags(cli):
    cases, runs = cli
    for command in ("plan", "sweep", "status", "report", "cancel"):
        run = runs[("every-command", command)]
        assert run["rc"] == 2 and run["stderr"].count("\n") == 1, run
        assert "matrix.method[1]: unknown method 'lsgna'; did you mean 'lsgan'" in run["stderr"]
    flags = {k: run for (group, k), run in runs.items() if group == "flags"}
    assert flags["no file"]["rc"] == 2 and "nope.yaml: no such sweep file" in flags["no file"]["stderr"]
    for k, expected in [("workers 0", "--workers: must be an integer from 1 to 1,024, got '0'"),
                        ("workers 100000", "--workers: must be an integer from 1 to 1,024, got '100000'"),
                        ("max-cells 0", "--max-cells: must be a positive integer, got 0"),
                        ("long sweep path", "sssss... (5,000 characters): no such sweep file"),
                        ("long plugin path", "characters) does not exist; give a folder of *.py plugin files"),
                        ("long profile", "--profile 'qqqq")]:  # fmt: skip
        assert flags[k]["rc"] == 2 and expected in flags[k]["stderr"] and len(flags[k]["stderr"]) < 500, flags[k]
    assert all("Traceback" not in run["stderr"] for run in runs.values())
    assert not (cases["root"] / "results").exists()


def test_hostile_sweeps_are_refused_at_once(tmp_path):
    """The alias bomb, the 10^6-cell matrix and the 5,000-deep nesting: refused in
    milliseconds (all hung or crashed before), through load_sweep in this process. Counted
    in this process's CPU seconds, which other work on the machine hardly changes (wall
    seconds on a loaded machine made this fail without a hang)."""
    (tmp_path / "warm.yaml").write_text("name: warm\nmatrix: {method: [gan], dataset: [ring], imbalance: [1], seed: [0]}\n")
    load_sweep(tmp_path / "warm.yaml")  # the plugins (and torch) are imported once, not inside a timed call
    for name in ("alias-bomb-description", "alias-bomb-exclude", "alias-bomb-matrix"):
        started = time.process_time()
        with pytest.raises(UserError, match="YAML anchors and aliases are not allowed"):
            load_sweep(BAD_SWEEPS[name])
        assert time.process_time() - started < 1.0
    for name in ("matrix-1000x1000", "nesting-5000-deep"):
        (tmp_path / "s.yaml").write_text(GENERATED[name][0])
        started = time.process_time()
        with pytest.raises(UserError, match="cells|nested"):
            load_sweep(tmp_path / "s.yaml")
        assert time.process_time() - started < 2.0


def test_cell_limit_is_overridable(tmp_path, monkeypatch):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmatrix: {method: [gan], dataset: [ring], imbalance: [1, 10], seed: [0, 1, 2]}\n")
    assert len(load_sweep(path).cells) == 6
    with pytest.raises(UserError, match=r"expands to 6 cells \(1 x 1 x 2 x 3\), more than the limit of 5"):
        load_sweep(path, max_cells=5)
    monkeypatch.setenv(MAX_CELLS_ENV, "5")
    with pytest.raises(UserError, match="more than the limit of 5;"):
        load_sweep(path)
    assert len(load_sweep(path, max_cells=6).cells) == 6  # the flag wins over the environment
    for text in ("many", "²", "1" * 5000):  # '²'.isdigit() is True, int('²') raises
        monkeypatch.setenv(MAX_CELLS_ENV, text)
        with pytest.raises(UserError, match=rf"\${MAX_CELLS_ENV}='{text[:20]}.*: must be a positive integer"):
            load_sweep(path)


def test_exclude_masks_match_the_rules_as_written():
    """_drop_excluded (bit masks per axis value) keeps exactly the cells no rule matches."""
    import itertools
    import random

    from bench.spec import AXES, _drop_excluded

    rng = random.Random(0)
    domain = {"method": ["gan", "lsgan", "wgan"], "dataset": ["ring", "grid"], "imbalance": [1, 10, 2.5], "seed": [0, 1, 2, 3]}
    combos = [dict(zip(AXES, v)) for v in itertools.product(*domain.values())]
    for _ in range(200):
        rules = [{a: set(rng.sample(domain[a], rng.randint(1, len(domain[a])))) for a in rng.sample(AXES, rng.randint(1, 4))}
                 for _ in range(rng.randint(1, 6))]  # fmt: skip
        kept = [c for c in combos if not any(all(c[a] in vals for a, vals in r.items()) for r in rules)]
        assert _drop_excluded(combos, rules) == kept


def test_values_at_their_bounds_are_accepted(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        f"name: {'a' * 100}\nmatrix: {{method: [gan], dataset: [ring], imbalance: [1, 10000], seed: [0, 4294967295]}}\n"
        "defaults: {eval_seed: 4294967295, budget: {steps: 10000000, batch_size: 65536, eval_samples: 100000},\n"
        "  arch: {z_dim: 1024, width: 1024}, optimizer: {lr_g: 1, lr_d: 1.0e-9, d_steps: 100},\n"
        "  log_every: 10000000, checkpoint_every: 10000000}\n"
        "executor: {workers: 1024, cells_per_job: 100000}\n"
    )
    sweep = load_sweep(path)
    assert {c["config"]["seed"] for c in sweep.cells} == {0, 2**32 - 1}
    assert sweep.cells[0]["config"]["budget"] == {"steps": 10_000_000, "batch_size": 65_536, "eval_samples": 100_000,
                                                "sampler": "epoch"}


def test_the_sweep_docs_list_every_range():
    from bench.spec import RANGES

    doc = (Path(__file__).parent.parent / "docs/sweeps.md").read_text()
    for key, allowed in RANGES.items():
        assert f"| `{key}` | {allowed.describe()} |" in doc, f"docs/sweeps.md: the ranges need the row of {key}"


def test_cli_through_its_own_process(tmp_path):
    """The rows of the issue that hung or ended silently, each in a real `ganbench` process."""
    proc = ganbench("sweep", BAD_SWEEPS["alias-bomb-matrix"], "--results", tmp_path / "results", check=2, timeout=60)
    assert proc.stderr.count("\n") == 1 and "YAML anchors and aliases are not allowed (&a)" in proc.stderr
    (tmp_path / "plugins").mkdir()
    shutil.copy(BAD_PLUGINS["sys_exit_zero"], tmp_path / "plugins")
    (tmp_path / "s.yaml").write_text("name: s\nplugins: [plugins]\n" + GOOD_MATRIX)
    proc = ganbench("plan", tmp_path / "s.yaml", "--results", tmp_path / "results", check=2)
    assert proc.stderr == (f"ganbench: error: plugin {tmp_path / 'plugins/sys_exit_zero.py'} failed to import (line 5): "
                           "it called sys.exit(0)\n")  # fmt: skip
    assert not (tmp_path / "results").exists()


def test_entry_point_that_exits_is_one_line(monkeypatch):
    """An installed package's entry point is imported under the same guard as a plugin file."""
    import bench.registry as registry

    class ExitingEntryPoint:
        name, value, group = "quitter", "quitter_pkg:Method", "ganbench.methods"

        def load(self):
            raise SystemExit(3)

    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "_done_calls", set())
    monkeypatch.setattr(registry, "entry_points", lambda group: [ExitingEntryPoint()] if group == "ganbench.methods" else [])
    with pytest.raises(UserError, match=r"^entry point 'quitter' = quitter_pkg:Method \(group ganbench.methods\) "
                                        r"failed to import: it called sys.exit\(3\)$"):  # fmt: skip
        registry.load_plugins()


def test_ctrl_c_in_a_plugin_is_not_swallowed(tmp_path):
    from bench.registry import load_plugins

    (tmp_path / "interrupted.py").write_text("raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        load_plugins([tmp_path])


def test_slurm_profile_uses_the_same_strict_loader(tmp_path, monkeypatch):
    from bench.executors.profiles import load_profile

    monkeypatch.chdir(tmp_path)
    (tmp_path / "slurm").mkdir()
    for text, expected in [
        ("partition: gpu\npartition: cpu\n", "slurm/p.yaml: line 2: duplicate key 'partition' (first on line 1)"),
        ("partition: &p gpu\nqos: *p\n", "slurm/p.yaml: line 1: YAML anchors and aliases are not allowed (&p)"),
        ("setup: " + "[" * 100 + "]" * 100 + "\n", "slurm/p.yaml: line 1: nested more than 32 levels deep"),
    ]:
        (tmp_path / "slurm/p.yaml").write_text(text)
        with pytest.raises(UserError, match="^" + expected.replace("(", r"\(").replace(")", r"\)")):
            load_profile("p")
    (tmp_path / "slurm/p.yaml").write_bytes(b"partition: g\xffpu\n")
    with pytest.raises(UserError, match=r"slurm/p.yaml: line 1: not UTF-8 text \(byte 0xff at offset 12\); save the profile as UTF-8"):
        load_profile("p")
    (tmp_path / "slurm/p.yaml").write_text("partition: gpu\n")
    assert load_profile("p", ["sbatch.comment=&a x"])["sbatch"] == {"comment": "&a x"}  # not YAML here: kept as text


def test_libyamls_own_nesting_limit_reads_as_ours(monkeypatch):
    """PyYAML 6.0.4's libyaml stops a 1,000-deep flow collection in its scanner, before our
    event count reaches MAX_DEPTH; the refusal must still be ours, with the line."""
    import yaml

    from bench import yamlsafe

    def libyaml_parse(text, Loader):
        mark = yaml.Mark("<unicode string>", 0, 2, 1013, text, 0)
        yield yaml.StreamStartEvent(mark, mark)
        raise yaml.scanner.ScannerError("while increasing flow level", None, "exceeded maximum nesting depth", mark)

    monkeypatch.setattr(yamlsafe.yaml, "parse", libyaml_parse)
    with pytest.raises(UserError, match=r"^s\.yaml: line 3: nested more than 32 levels deep; a sweep setting"):
        yamlsafe.load_text(GENERATED["nesting-5000-deep"][0], "s.yaml")


def test_a_sweep_file_that_is_not_a_regular_file_is_refused_before_reading(tmp_path):
    """A FIFO (hung), /dev/zero (read until memory ran out), a folder, and a 3 GB
    sparse file (read and hashed in full before the 1 MiB check): their type and
    size are checked before a byte is read. One process; a hang fails on the timeout."""
    os.mkfifo(tmp_path / "fifo.yaml")
    (tmp_path / "folder.yaml").mkdir()
    with open(tmp_path / "sparse.yaml", "wb") as handle:
        handle.truncate(3 << 30)
    cases = {"fifo.yaml": "cannot read the sweep file: a FIFO, not a file",
             "/dev/zero": "cannot read the sweep file: a device, not a file",
             "folder.yaml": "cannot read the sweep file: a folder, not a file",
             "sparse.yaml": "the sweep file is larger than 1,048,576 bytes"}  # fmt: skip
    argvs = [[command, name, "--results", tmp_path / "results"] for name in cases for command in ("plan", "sweep")]
    started = time.perf_counter()
    runs = ganbench_batch(argvs, cwd=tmp_path, timeout=120)
    assert time.perf_counter() - started < 100
    for (command, name, *_), run in zip(argvs, runs):
        assert run["rc"] == 2 and cases[name] in run["stderr"] and run["stderr"].count("\n") == 1, (command, name, run)
    assert not (tmp_path / "results").exists()


def test_an_exclude_rule_that_matches_nothing_is_said(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\n" + GOOD_MATRIX + "exclude: [{seed: 7}, {seed: 0, imbalance: 10}]\n")
    assert len(load_sweep(path).cells) == 1
    err = capsys.readouterr().err
    assert f"ganbench: warning: {path}: exclude[0] matches no cell of the matrix" in err
    assert "exclude[1] matches no cell" in err
    path.write_text("name: s\nmatrix: {method: [gan], dataset: [ring], imbalance: [1], seed: [0, 1]}\nexclude: [{seed: 1}]\n")
    load_sweep(path)
    assert "warning" not in capsys.readouterr().err
