"""The sweep's `reference:` section: parsed into Sweep.references, every mistake one line naming file and key."""

import pytest

from bench.errors import UserError
from bench.spec import load_sweep
from conftest import ganbench

HEAD = "name: s\nmatrix: {method: [gan], dataset: [digits], imbalance: [1], seed: [0]}\nbudgets: {paper: {}}\n"
ENTRY = "{row: gan, dataset: digits, imbalance: 1, metric: classifier_fid, value: 10.6, source: 'Paper, Table 2'%s}"


def _load(tmp_path, reference: str):
    path = tmp_path / "s.yaml"
    path.write_text(HEAD + "reference:\n" + reference)
    return load_sweep(path)


def test_references_are_parsed_and_normalised(tmp_path):
    sweep = _load(tmp_path, "  - " + ENTRY % "" + "\n  - " + (ENTRY % ", budget: paper").replace("imbalance: 1", "imbalance: 10.0") + "\n")
    first, second = sweep.references
    assert first == {"row": "gan", "dataset": "digits", "imbalance": 1, "metric": "classifier_fid", "value": 10.6,
                     "source": "Paper, Table 2"}  # fmt: skip
    assert second["imbalance"] == 10 and isinstance(second["imbalance"], int) and second["budget"] == "paper"
    assert load_sweep(_write(tmp_path, HEAD)).references == []


def _write(tmp_path, text):
    path = tmp_path / "plain.yaml"
    path.write_text(text)
    return path


BAD = [
    ("not a list", "  {row: gan}\n", "reference: must be a list of entries"),
    ("unknown key", "  - " + ENTRY % ", sorce: x" + "\n", "reference[0].sorce: unknown key 'sorce'; did you mean 'source'?"),
    ("missing source", "  - {row: gan, dataset: digits, imbalance: 1, metric: classifier_fid, value: 1}\n",
     "reference[0].source: is required"),
    ("unknown row", "  - " + (ENTRY % "").replace("row: gan", "row: gna") + "\n", "reference[0].row: unknown method 'gna'; did you mean 'gan'"),
    ("unknown dataset", "  - " + (ENTRY % "").replace("dataset: digits", "dataset: cifar") + "\n",
     "reference[0].dataset: unknown dataset 'cifar'; did you mean 'cifar10'"),
    ("unknown metric", "  - " + (ENTRY % "").replace("classifier_fid", "inception_fdi") + "\n",
     "reference[0].metric: unknown metric 'inception_fdi'"),
    ("value not a number", "  - " + (ENTRY % "").replace("10.6", "ten") + "\n", "reference[0].value: must be a finite number, got 'ten'"),
    ("rho below one", "  - " + (ENTRY % "").replace("imbalance: 1", "imbalance: 0.5") + "\n", "reference[0].imbalance: must be a number from 1 to 10,000, got 0.5"),
    ("empty source", "  - " + (ENTRY % "").replace("'Paper, Table 2'", "''") + "\n", "reference[0].source: must name where"),
    ("unknown budget", "  - " + ENTRY % ", budget: gpu" + "\n", "reference[0].budget: no budget profile 'gpu'; the sweep has: paper"),
    ("duplicate", "  - " + ENTRY % "" + "\n  - " + ENTRY % "" + "\n", "reference[1]: repeats reference[0]"),
]


@pytest.mark.parametrize("text,expected", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_reference_is_one_line_naming_file_and_key(tmp_path, text, expected):
    with pytest.raises(UserError) as err:
        _load(tmp_path, text)
    message = str(err.value)
    assert expected in message and message.startswith(str(tmp_path / "s.yaml")) and "\n" not in message


def test_bad_reference_through_the_cli_exits_2_and_writes_nothing(tmp_path):
    (tmp_path / "s.yaml").write_text(HEAD + "reference:\n  - " + ENTRY % ", budget: gpu" + "\n")
    proc = ganbench("report", "s.yaml", cwd=tmp_path, check=2)
    assert proc.stderr.count("\n") == 1 and "reference[0].budget" in proc.stderr
    assert not (tmp_path / "results").exists()
