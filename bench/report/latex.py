"""Paper-ready LaTeX (booktabs), with the same bold as the Markdown and the page.

Bold marks every row not significantly worse than the column's best
(bench/report/stats.py), as in leaderboard.md and leaderboard.html; the
caption says so and how the interval is formed. One table per metric by
default; `combined=True` puts every metric in one table with a column group
per metric. Either way a table wider than a page is split into parts, each
no wider than `TEXT_WIDTH_PT` (an article's text width, the narrowest a
paper gives a table*), estimated from the characters of each column.
Needs \\usepackage{booktabs} (and nothing else).
"""

from __future__ import annotations

from bench.report.stats import LEVEL, TEST_METHOD
from bench.report.tables import clipped_metrics, fmt, is_marked

TEX_ARROW = {"lower": r"$\downarrow$", "higher": r"$\uparrow$"}
TEXT_WIDTH_PT = 345.0  # \textwidth of the article class at 10pt on letter paper (a4 gives 360pt)
CHAR_PT = 3.6  # a character of an entry at \footnotesize, on average (digits 4.25pt; spaces, commas, brackets less)
BOLD = 1.15  # bold digits are that much wider (measured on pdflatex's output)
COLUMN_SEP_PT = 8.0  # 2 x \tabcolsep at the 4pt the tables set


def tex_escape(s: str) -> str:
    out = str(s).replace("\\", r"\textbackslash{}")
    for ch in "_%&#$":
        out = out.replace(ch, "\\" + ch)
    return out.replace("~", r"\textasciitilde{}")


def _cell(table: dict, method: str, col, uniform_n: bool) -> tuple[str, float]:
    """The cell's LaTeX and the number of characters it shows (for the width estimate)."""
    e = table["rows"][method].get(col)
    if e is None:
        return "--", 2
    if e.n > 1 and e.clipped:
        spread = f"\\,[{fmt(e.low)}, {fmt(e.high)}]"
    else:
        spread = f" \\pm {fmt(e.half_width)}" if e.n > 1 else ""
    text = fmt(e.mean) + spread
    shown = len(fmt(e.mean)) + (len(f" [{fmt(e.low)}, {fmt(e.high)}]") if e.n > 1 and e.clipped else
                                len(f" ± {fmt(e.half_width)}") if e.n > 1 else 0)  # fmt: skip
    if not uniform_n:
        text += f"^{{({e.n})}}"
        shown += len(str(e.n)) + 1
    if is_marked(table, method, col):
        text = f"\\mathbf{{{text}}}"
        shown *= BOLD
    return f"${text}$", shown


def _n_phrase(tables: list[dict]) -> tuple[str, bool]:
    ns = {e.n for t in tables for entries in t["rows"].values() for e in entries.values()}
    if len(ns) == 1:
        n = ns.pop()
        return f"$n = {n}$ training seed{'s' if n != 1 else ''}", True
    return "training seeds ($n$ as a superscript)", False


def _caption(what: str, tables: list[dict], part: str = "") -> str:
    n_text, _ = _n_phrase(tables)
    level = tex_escape(f"{LEVEL:.0%}")
    clipped = clipped_metrics(tables)
    cut = (f" Intervals that cross a bound of the metric ({tex_escape(', '.join(clipped))}) are cut at it and "
           "shown as $[\\mathrm{low}, \\mathrm{high}]$." if clipped else "")  # fmt: skip
    test = tex_escape(TEST_METHOD).replace("α", r"$\alpha$")
    return (rf"\caption{{{what}{part}: mean $\pm$ half-width of the {level} Student-$t$ interval over {n_text}.{cut} "
            rf"Bold: not significantly worse than the column's best ({test}).}}")  # fmt: skip


def _column_header(col) -> tuple[str, int]:
    d, r = col
    return rf"{tex_escape(d)} $\rho{{=}}{r:g}$", len(f"{d} ρ={r:g}")


def _parts(groups: list[tuple[dict, list]], methods: list[str], uniform: bool) -> list[list[tuple[dict, list]]]:
    """Split [(table, its columns)] into parts that fit TEXT_WIDTH_PT: a column's width is its widest
    entry or header; a metric's group is split across parts when it alone is too wide."""
    def width(t, col) -> float:
        chars = max([_column_header(col)[1]] + [_cell(t, m, col, uniform)[1] for m in methods if m in t["rows"]])
        return chars * CHAR_PT + COLUMN_SEP_PT

    first = max([len(m) for m in methods] + [6]) * CHAR_PT + COLUMN_SEP_PT
    parts, current, used = [], [], first
    for t, cols in groups:
        chunk = []
        for col in cols:
            w = width(t, col)
            if used + w > TEXT_WIDTH_PT and (chunk or current):
                if chunk:
                    current.append((t, chunk))
                parts.append(current)
                current, chunk, used = [], [], first
            chunk.append(col)
            used += w
        if chunk:
            current.append((t, chunk))
    if current:
        parts.append(current)
    return parts


def _tabular(part: list[tuple[dict, list]], methods: list[str], uniform: bool, grouped: bool) -> list[str]:
    ncols = sum(len(cols) for _, cols in part)
    lines = [r"\setlength{\tabcolsep}{4pt}", r"\begin{tabular}{l" + "c" * ncols + "}", r"\toprule"]
    if grouped:
        groups, rules, start = [], [], 2
        for t, cols in part:
            groups.append(rf"\multicolumn{{{len(cols)}}}{{c}}{{{tex_escape(t['label'])} {TEX_ARROW[t['direction']]}}}")
            rules.append(rf"\cmidrule(lr){{{start}-{start + len(cols) - 1}}}")
            start += len(cols)
        lines += [" & " + " & ".join(groups) + r" \\", "".join(rules)]
    lines.append("Method & " + " & ".join(_column_header(c)[0] for _, cols in part for c in cols) + r" \\")
    lines.append(r"\midrule")
    for m in methods:
        if not any(m in t["rows"] for t, _ in part):
            continue
        cells = [_cell(t, m, c, uniform)[0] if m in t["rows"] else "--" for t, cols in part for c in cols]
        lines.append(" & ".join([tex_escape(m), *cells]) + r" \\")
    return lines + [r"\bottomrule", r"\end{tabular}"]


def _table(env: str, what: str, label: str, tables: list[dict], groups, grouped: bool) -> list[str]:
    _, uniform = _n_phrase(tables)
    methods = list(dict.fromkeys(m for t in tables for m in t["rows"]))
    parts = _parts(groups, methods, uniform)
    out = []
    for i, part in enumerate(parts):
        of = f" (part {i + 1} of {len(parts)})" if len(parts) > 1 else ""
        caption = _caption(what, tables, of) if i == 0 else rf"\caption{{{what}{of}, continued from Table~\ref{{{label}-1}}.}}"
        out += [rf"\begin{{{env}}}[t]", r"\centering\footnotesize", caption,
                rf"\label{{{label}{f'-{i + 1}' if len(parts) > 1 else ''}}}",
                *_tabular(part, methods, uniform, grouped), rf"\end{{{env}}}", ""]  # fmt: skip
    return out


def to_latex(tables: list[dict], combined: bool = False) -> str:
    out = ["% Generated by `ganbench report`; needs \\usepackage{booktabs}."]
    if not tables:
        return out[0] + "\n% No finished cells yet.\n"
    if combined:
        groups = [(t, t["columns"]) for t in tables]
        return "\n".join(out + _table("table*", "All metrics", "tab:leaderboard", tables, groups, True)) + "\n"
    for t in tables:
        what = f"{tex_escape(t['label'])} {TEX_ARROW[t['direction']]}"
        out += _table("table", what, f"tab:{t['metric']}", [t], [(t, t["columns"])], False)
    return "\n".join(out)
