"""A static leaderboard page: the same tables as the Markdown, plus the plots."""

from __future__ import annotations

import html

from bench.report.tables import ARROW, entry_text


def to_html(title: str, summary_lines: list[str], tables: list[dict], plots: list[str]) -> str:
    parts = [
        "<!doctype html>",
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:80em}"
        "table{border-collapse:collapse;margin-bottom:2em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}b{color:#063}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *(f"<p>{html.escape(line)}</p>" for line in summary_lines),
    ]
    for t in tables:
        parts.append(f"<h2>{html.escape(t['label'])} {ARROW[t['direction']]} <code>{html.escape(t['metric'])}</code></h2>")
        parts.append("<table><tr><th>method</th>" + "".join(
            f"<th>{html.escape(d)} ρ={r}</th>" for d, r in t["columns"]) + "</tr>")  # fmt: skip
        for m in t["rows"]:
            cells = "".join(f"<td>{entry_text(t, m, c, ('<b>', '</b>'), '±', escape=html.escape)}</td>" for c in t["columns"])
            parts.append(f"<tr><td>{html.escape(m)}</td>{cells}</tr>")
        parts.append("</table>")
    parts += [f"<img src='{html.escape(p)}' alt='{html.escape(p)}'>" for p in plots]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
