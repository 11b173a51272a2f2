"""The command line behaves as command lines do."""

import re

from bench.report.compare import compare_rows
from bench.report.stats import holm
from conftest import ganbench_batch


def test_version_bare_help_and_list(tmp_path):
    version, bare, list_help, metrics = ganbench_batch([["--version"], [], ["list", "--help"], ["list", "metrics"]],
                                                       cwd=tmp_path)  # fmt: skip
    assert version["rc"] == 0 and re.fullmatch(r"ganbench \d+\.\d+\.\d+\n", version["stdout"])
    assert bare["rc"] == 0 and "usage: ganbench" in bare["stdout"] and "COMMAND" in bare["stdout"]
    assert "archs" in list_help["stdout"] and "architectures" in list_help["stdout"]
    lines = [ln for ln in metrics["stdout"].splitlines() if ln.strip()]
    arrows = {ln.index("↓") if "↓" in ln else ln.index("↑") for ln in lines}
    assert len(lines) > 10 and len(arrows) == 1  # one column of arrows: names padded to the longest
    requirements = {ln.index("needs") for ln in lines if "needs" in ln}
    assert len(requirements) == 1


def test_compare_adjusts_p_with_holm_over_the_columns_rows():
    import pandas as pd

    rows = []
    for m, values in {"base": [1.0, 1.1, 0.9], "a": [2.0, 2.1, 1.9], "b": [1.2, 1.0, 1.4], "c": [5.0, 5.5, 4.5]}.items():
        rows += [{"id": f"{m}{i}", "method": m, "dataset": "ring", "imbalance": 1, "seed": i, "status": "done",
                  "metric:mode_kl": v} for i, v in enumerate(values)]  # fmt: skip
    out = compare_rows(pd.DataFrame(rows), "base", ["base", "a", "b", "c"], ["ring"], ["mode_kl"])
    assert [r["p_holm"] for r in out] == holm([r["diff"].p for r in out])
    assert any(r["p_holm"] > r["diff"].p for r in out)
