"""leaderboard.html: one self-contained page (inline CSS and JS, images as data URIs).

It opens from disk with no network: sortable tables (click a header), a
section per dataset (tables with intervals and significance marks, budget
and cost, metric-vs-ρ plots, sample grids, loss curves, per-class bars),
the papers' numbers beside ours, the evaluation spread, the environment and
every cell with a link to its record. `build.py` gathers the data; this
module only renders it.
"""

from __future__ import annotations

import base64
import functools
import html
import math

from bench.report.cost import seconds
from bench.report.tables import ARROW, column_header, fmt, is_marked


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _sort_key(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return _e(x)


CSS = """
:root{--ink:#1d2433;--muted:#667085;--line:#e4e7ec;--bg:#f7f8fa;--mark:#e6f4ea;--markink:#0b5b2b;--accent:#2f5bea;--warn:#b54708}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);background:var(--bg)}
header.top{background:#fff;border-bottom:1px solid var(--line);padding:20px 32px 12px}
header.top h1{margin:0 0 4px;font-size:24px}
header.top p{margin:4px 0;color:var(--muted);max-width:90ch}
nav{position:sticky;top:0;z-index:2;background:#fffe;backdrop-filter:blur(4px);border-bottom:1px solid var(--line);padding:6px 32px}
nav a{margin-right:16px;color:var(--accent);text-decoration:none;font-weight:500}
main{padding:8px 32px 48px;max-width:1400px}
section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:16px 20px;margin:18px 0}
h2{margin:0 0 8px;font-size:20px}
h3{margin:18px 0 6px;font-size:15px}
.chips span{display:inline-block;padding:2px 10px;margin:2px 6px 2px 0;border-radius:999px;background:var(--bg);border:1px solid var(--line);font-size:13px}
.chips .done{background:var(--mark);color:var(--markink);border-color:#b7dfc3}
.chips .bad{background:#fef3f2;color:#b42318;border-color:#fecdca}
.how{font-size:13px;color:var(--muted);margin:6px 0 0;padding-left:18px}
.note{color:var(--warn);font-size:13px;margin:4px 0}
table{border-collapse:collapse;margin:6px 0 12px;font-variant-numeric:tabular-nums}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
thead th{background:var(--bg);font-weight:600;position:relative}
table.sortable thead th{cursor:pointer;user-select:none}
table.sortable thead th::after{content:"⇅";color:#b0b7c3;font-size:11px;margin-left:4px}
table.sortable thead th[aria-sort=ascending]::after{content:"▲";color:var(--accent)}
table.sortable thead th[aria-sort=descending]::after{content:"▼";color:var(--accent)}
tbody tr:hover{background:#fafbff}
td.mark{background:var(--mark);color:var(--markink);font-weight:700}
.pm{color:var(--muted);font-weight:400;font-size:12px}
.n{color:var(--muted);font-size:11px;margin-left:2px}
td.flag{color:var(--warn);font-weight:600}
.figs{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
.figs img.wide{max-width:100%}
.figs img{max-width:min(100%,560px);border:1px solid var(--line);border-radius:6px;background:#fff}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:12px}
.card{border:1px solid var(--line);border-radius:8px;padding:8px;background:#fff}
.card img{width:100%;border-radius:4px;display:block}
.card img.px{image-rendering:pixelated}
.scroll{overflow-x:auto;max-width:100%}
td.l,th.l{text-align:left}
.card .cap{font-size:12px;color:var(--muted);margin-top:4px}
.card .cap b{color:var(--ink)}
.missing{height:120px;display:flex;align-items:center;justify-content:center;color:var(--muted);background:var(--bg);border-radius:4px;font-size:12px}
dl.env{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}
dl.env dt{color:var(--muted)}dl.env dd{margin:0}
code{font-size:12px;background:var(--bg);padding:1px 4px;border-radius:4px}
a{color:var(--accent)}
"""

# Sorting: numbers by value (data-sort, else the text), text alphabetically; empty cells always last.
JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, index) {
    th.setAttribute('role', 'button');
    th.addEventListener('click', function () {
      var ascending = th.getAttribute('aria-sort') !== 'ascending';
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
      var key = function (row) {
        var cell = row.cells[index];
        if (!cell) { return null; }
        var raw = cell.hasAttribute('data-sort') ? cell.getAttribute('data-sort') : cell.textContent.trim();
        if (raw === '') { return null; }
        var number = Number(raw);
        return isNaN(number) ? raw.toLowerCase() : number;
      };
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || y === null) { return (x === null) - (y === null); }
        if (typeof x !== typeof y) { return typeof x === 'number' ? -1 : 1; }
        var order = x < y ? -1 : x > y ? 1 : 0;
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _table(header: list[str], rows: list[list[str]], text_columns: tuple[int, ...] = (0,)) -> str:
    """A sortable table; rows hold ready <td> strings or plain text (escaped here). Text columns align left."""

    def cell(i: int, c: str) -> str:
        if c.startswith("<td"):
            return c
        return f"<td class='l'>{_e(c)}</td>" if i in text_columns else f"<td>{_e(c)}</td>"

    head = "".join(f"<th{' class=l' if i in text_columns else ''}>{_e(h)}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell(i, c) for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<div class='scroll'><table class='sortable'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def _entry_td(table: dict, method: str, col) -> str:
    e = table["rows"][method].get(col)
    if e is None:
        return "<td data-sort=''></td>"
    title = f"95% interval [{fmt(e.low)}, {fmt(e.high)}]{' (cut at the bound)' if e.clipped else ''}, sd {fmt(e.std)}, n = {e.n}" if e.n > 1 else "one seed: no interval"
    pm = f" <span class='pm'>{_e(e.spread())}</span>" if e.n > 1 else ""
    cls = " class='mark'" if is_marked(table, method, col) else ""
    return (f"<td{cls} data-sort='{_sort_key(e.mean)}' title='{_e(title)}'>{_e(fmt(e.mean))}{pm}"
            f"<span class='n'>({e.n})</span></td>")  # fmt: skip


def metric_table_html(table: dict, columns: list) -> str:
    header = ["method"] + [column_header(c) for c in columns]
    rows = [[m] + [_entry_td(table, m, c) for c in columns] for m in table["rows"]
            if any(c in table["rows"][m] for c in columns)]  # fmt: skip
    return (f"<h3>{_e(table['label'])} {ARROW[table['direction']]} <code>{_e(table['metric'])}</code></h3>"
            + _table(header, rows))  # fmt: skip


def _img(uri: str | None, alt: str, cls: str = "") -> str:
    if not uri:
        return f"<div class='missing'>{_e(alt)}: no picture</div>"
    return f"<img src='{uri}' alt='{_e(alt)}'" + (f" class='{cls}'" if cls else "") + ">"


def render(page: dict) -> str:
    p = page
    nav = "".join(f"<a href='#ds-{_e(d['name'])}'>{_e(d['name'])}</a>" for d in p["datasets"])
    nav += "".join(f"<a href='#{k}'>{label}</a>" for k, label in (("papers", "papers"), ("evalspread", "evaluation spread"),
                                                                 ("cost", "cost"), ("environment", "environment"), ("cells", "cells"))
                   if p.get(k + "_present", True))  # fmt: skip
    chips = "".join(f"<span class='{cls}'>{_e(text)}</span>" for cls, text in p["chips"])
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        "<link rel='icon' href='data:,'>",
        f"<title>{_e(p['title'])}</title><style>{CSS}</style></head><body>",
        f"<header class='top'><h1>{_e(p['title'])}</h1>",
        *(f"<p>{_e(line)}</p>" for line in p["intro"]),
        f"<div class='chips'>{chips}</div>",
        "<ul class='how'>" + "".join(f"<li>{_e(line)}</li>" for line in p["how"]) + "</ul></header>",
        f"<nav>{nav}</nav><main>",
    ]
    if not p["datasets"]:
        parts.append("<section><h2>No finished cells yet</h2><p>Run the sweep; the report shows whatever exists.</p></section>")
    for d in p["datasets"]:
        parts.append(f"<section id='ds-{_e(d['name'])}'><h2>{_e(d['name'])}</h2>")
        for table in d["tables"]:
            parts.append(metric_table_html(table, d["columns"]))
        if d["plots"]:
            parts.append("<h3>Metrics against ρ</h3><div class='figs'>"
                         + "".join(_img(uri, f"{d['name']} {metric}") for metric, uri in d["plots"]) + "</div>")  # fmt: skip
        parts.append(_cost_html(d["cost"], d["budget_notes"]))
        if d["samples"]:
            parts.append("<h3>Samples (first seed of each row)</h3><div class='grid'>")
            for s in d["samples"]:
                parts.append(f"<div class='card'>{_img(s['uri'], s['method'], 'px' if d['pixelated'] else '')}<div class='cap'><b>{_e(s['method'])}</b>"
                             f" · ρ={s['imbalance']:g} · seed {s['seed']} · <a href='{_e(s['link'])}'>record</a></div></div>")  # fmt: skip
            parts.append("</div>")
        if d["loss_plot"]:
            parts.append("<h3>Loss curves (losses.csv; thick: first seed, thin: the others)</h3>"
                         f"<div class='figs'>{_img(d['loss_plot'], d['name'] + ' losses', 'wide')}</div>")  # fmt: skip
        if d["class_plots"]:
            parts.append("<h3>Per class: training data and generated samples</h3><div class='figs'>"
                         + "".join(_img(uri, title) for title, uri in d["class_plots"]) + "</div>")  # fmt: skip
        parts.append("</section>")
    parts.append(_papers_html(p))
    parts.append(_eval_html(p))
    parts.append(f"<section id='cost'><h2>Cost</h2><p>{_e(p['total'])}</p></section>")
    parts.append(_env_html(p["environment"]))
    parts.append(_cells_html(p["cells"], p["metrics"]))
    parts.append(f"</main><script>{JS}</script></body></html>")
    return "\n".join(parts) + "\n"


def _cost_html(rows: list[dict], notes: list[str]) -> str:
    if not rows:
        return ""
    body = [[r["method"], f"<td data-sort='{r['g_steps']}'>{_e(r['g_steps'])}</td>",
             f"{r['d_per_g']}{'' if r['counted'] else '*'}", f"<td data-sort='{_sort_key(r['train_s'])}'>{_e(seconds(r['train_s']))}</td>",
             f"<td data-sort='{_sort_key(r['eval_s'])}'>{_e(seconds(r['eval_s']))}</td>", str(r["n"]), r["device"]] for r in rows]  # fmt: skip
    header = ["method", "G steps", "D steps / G step", "train / cell", "eval / cell", "cells", "device"]
    return ("<h3>Budget and cost</h3>" + _table(header, body, text_columns=(0, 6))
            + "".join(f"<p class='note'>{_e(n)}</p>" for n in notes))  # fmt: skip


def _papers_html(p: dict) -> str:
    refs = p["references"]
    if not refs and not p["reference_notes"]:
        return ""
    rows = []
    for r in refs:
        ours = f"{fmt(r['mean'])} [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]" if r["has_interval"] else f"{fmt(r['mean'])} (n={r['n']})"
        flag = "<td class='flag'>outside our interval</td>" if r["outside"] else ("<td>inside</td>" if r["has_interval"] else "<td>n &lt; 2</td>")
        rows.append([r["row"], r["dataset"], f"{r['imbalance']:g}", r["metric"],
                     f"<td data-sort='{r['value']}'>{_e(fmt(r['value']))}</td>", f"<td data-sort='{_sort_key(r['mean'])}'>{_e(ours)}</td>",
                     f"<td data-sort='{_sort_key(r['diff'])}'>{_e(format(r['diff'], '+.3g'))}</td>",
                     flag, r["source"]])  # fmt: skip
    header = ["row", "dataset", "ρ", "metric", "paper", "ours: mean [95% interval]", "ours − paper", "", "source"]
    return ("<section id='papers'><h2>What the papers printed</h2>"
            + (_table(header, rows, text_columns=(0, 1, 3, 8)) if rows else "")
            + "".join(f"<p class='note'>{_e(n)}</p>" for n in p["reference_notes"]) + "</section>")  # fmt: skip


def _eval_html(p: dict) -> str:
    rows = p["eval_spread"]
    if not rows:
        return ("<section id='evalspread'><h2>Evaluation spread</h2><p>Every cell was evaluated once "
                "(<code>eval_repeats: 1</code>): the intervals above are seed spread only. Set "
                "<code>defaults.eval_repeats: k</code> to score each generator k times with different evaluation seeds.</p></section>")  # fmt: skip
    body = [[r["metric"], r["method"], r["column"], f"<td data-sort='{_sort_key(r['seed_sd'])}'>{_e(fmt(r['seed_sd']))}</td>",
             f"<td data-sort='{_sort_key(r['eval_sd'])}'>{_e(fmt(r['eval_sd']))}</td>", str(r["k"]), str(r["n"])] for r in rows]  # fmt: skip
    return ("<section id='evalspread'><h2>Evaluation spread</h2><p>Seed sd: the spread of the per-cell means over "
            "training seeds. Evaluation sd: the spread within one trained generator over its k evaluations "
            "(different evaluation seeds), pooled over seeds.</p>"
            + _table(["metric", "method", "column", "seed sd", "evaluation sd", "k", "seeds"], body, (0, 1, 2)) + "</section>")  # fmt: skip


def _env_html(env: dict) -> str:
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in env.items())
    return f"<section id='environment'><h2>Environment</h2><dl class='env'>{items}</dl></section>"


def _cells_html(cells: list[dict], metrics: list[str]) -> str:
    """Every cell, a row each. Written out directly rather than through `_table`: a sweep of
    10,000 cells makes 120,000 table cells, and the labels (method, dataset, status,
    device) repeat, so each is escaped once."""
    header = ["cell", "method", "dataset", "ρ", "seed", "status", *metrics, "train", "eval", "device"]
    text_columns = (0, 1, 2, 5, len(header) - 1)
    label = functools.lru_cache(maxsize=None)(lambda x: f"<td class='l'>{_e(x)}</td>")

    def number(x, shown) -> str:  # a number, or None / NaN: its text needs no escaping
        key = "" if x is None or x != x else x
        return f"<td data-sort='{key}'>{shown(x)}</td>"

    rows = []
    for c in cells:
        parts = [f"<tr><td data-sort='{_e(c['id'])}'><a href='{_e(c['link'])}'><code>{_e(c['id'])}</code></a></td>",
                 label(c["method"]), label(c["dataset"]), f"<td>{c['imbalance']:g}</td><td>{c['seed']}</td>",
                 label(c["status"])]  # fmt: skip
        parts += [number(c["metrics"].get(m), fmt) for m in metrics]
        parts += [number(c["train_s"], seconds), number(c["eval_s"], seconds), label(c["device"]), "</tr>"]
        rows.append("".join(parts))
    head = "".join(f"<th{' class=l' if i in text_columns else ''}>{_e(h)}</th>" for i, h in enumerate(header))
    return (f"<section id='cells'><h2>Cells ({len(cells)})</h2><p>Each id links to the cell's result record.</p>"
            f"<div class='scroll'><table class='sortable'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}"
            "</tbody></table></div></section>")  # fmt: skip
