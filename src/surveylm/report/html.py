"""The report page: one self-contained HTML file (inline CSS, figures as base64 PNG).

Nothing on the page is fetched: no fonts, scripts, stylesheets or links to other
files, so the file can be mailed as it is and opened offline. Sections whose results
are absent are replaced by a one-line note.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from surveylm.report.data import SPLIT_LABELS, RunData

__all__ = ["Figure", "page", "table_html"]

CSS = """
:root { --ink:#1d1d1f; --muted:#5f6368; --line:#d9d9de; --soft:#f5f6f8; --accent:#0072B2; }
* { box-sizing: border-box; }
body { margin:0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
  Arial, sans-serif; color:var(--ink); background:#fff; line-height:1.5; font-size:15px; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 28px 60px; }
h1 { font-size: 1.7em; margin: 0 0 4px; }
h2 { font-size: 1.25em; margin: 40px 0 8px; padding-top: 8px; border-top: 1px solid var(--line); }
h3 { font-size: 1.05em; margin: 22px 0 6px; }
p { margin: 6px 0 10px; max-width: 62em; }
.sub { color: var(--muted); margin-bottom: 16px; }
.note { color: var(--muted); font-style: italic; }
.warn { background:#fff6e0; border-left: 4px solid #E69F00; padding: 8px 12px; }
nav { background: var(--soft); padding: 8px 12px; border-radius: 6px; font-size: .92em;
  line-height: 1.9; }
nav a { color: var(--accent); text-decoration: none; margin-right: 12px; white-space: nowrap; }
figure { margin: 12px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: .9em; max-width: 62em; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: .88em; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left;
  vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.meta td:first-child { color: var(--muted); white-space: nowrap; }
table.methods td { font-size: .95em; }
td.settings code { font-size: .85em; word-break: break-word; }
.findings li { margin: 4px 0; }
.box { background: var(--soft); border: 1px solid var(--line); border-radius: 6px;
  padding: 10px 16px; }
pre { background: #fff; border: 1px solid var(--line); padding: 8px 10px; overflow-x: auto;
  font-size: .88em; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
.scroll { overflow-x: auto; }
"""


@dataclass
class Figure:
    """A drawn figure for the page: PNG bytes, alt text, caption (HTML allowed)."""

    name: str
    png: bytes
    alt: str
    caption: str = ""

    def html(self) -> str:
        data = base64.b64encode(self.png).decode("ascii")
        return (f"<figure id='fig-{html.escape(self.name)}'>"
                f"<img src='data:image/png;base64,{data}' alt='{html.escape(self.alt)}'>"
                f"<figcaption>{self.caption}</figcaption></figure>")  # fmt: skip


def esc(value: object) -> str:
    return html.escape(str(value))


def _fmt(value: object, digits: int) -> str:
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return "—"
        return f"{value:.{digits}f}"
    if isinstance(value, (int, np.integer)):
        return f"{int(value)}"
    return esc(value) if value is not None and not pd.isna(value) else "—"


def table_html(
    frame: pd.DataFrame, digits: int | dict[str, int] = 3, cls: str = "", header: bool = True
) -> str:
    """A DataFrame as an HTML table: numbers right-aligned and rounded (per column when
    ``digits`` is a mapping), text escaped."""
    if frame is None or frame.empty:
        return "<p class='note'>No rows.</p>"
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    head = f"<thead><tr>{head}</tr></thead>" if header else ""
    rows = []
    for r in frame.itertuples(index=False):
        cells = []
        for col, v in zip(frame.columns, r, strict=True):
            d = digits.get(col, 3) if isinstance(digits, dict) else digits
            num = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            cells.append(f"<td class='num'>{_fmt(v, d)}</td>" if num else f"<td>{_fmt(v, d)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<div class='scroll'><table class='{cls}'>{head}"
            f"<tbody>{''.join(rows)}</tbody></table></div>")  # fmt: skip


def section(sid: str, title: str, body: str) -> str:
    return f"<section id='{sid}'><h2>{esc(title)}</h2>{body}</section>"


def note(text: str) -> str:
    return f"<p class='note'>{esc(text)}</p>"


def ci_table(frame: pd.DataFrame, index: str, columns: str, order: Sequence[str],
             col_order: Sequence[str], digits: int = 3) -> pd.DataFrame:  # fmt: skip
    """``value [ci_low, ci_high]`` strings, rows = ``index`` (in ``order``), columns =
    ``columns`` (in ``col_order``)."""

    def cell(r: pd.Series) -> str:
        text = f"{r['value']:.{digits}f}"
        if np.isfinite(r["ci_low"]) and np.isfinite(r["ci_high"]):
            text += f" [{r['ci_low']:.{digits}f}, {r['ci_high']:.{digits}f}]"
        return text

    cells = frame.assign(_cell=frame.apply(cell, axis=1))
    wide = cells.pivot_table(index=index, columns=columns, values="_cell", aggfunc="first")
    order = list(dict.fromkeys(order))
    rows = [o for o in order if o in wide.index] + [i for i in wide.index if i not in order]
    cols = [c for c in col_order if c in wide.columns]
    cols += [c for c in wide.columns if c not in cols]
    wide = wide.reindex(index=rows, columns=cols).fillna("")
    wide.columns = [SPLIT_LABELS.get(c, c) for c in wide.columns]
    return wide.reset_index()


def page(title: str, subtitle: str, nav: Sequence[tuple[str, str]], body: str) -> str:
    """The whole document."""
    links = " ".join(f"<a href='#{sid}'>{esc(label)}</a>" for sid, label in nav)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{esc(title)}</h1><p class='sub'>{subtitle}</p><nav>{links}</nav>"
        f"{body}</main></body></html>\n"
    )


def run_summary_rows(data: RunData) -> pd.DataFrame:
    """The header's facts: dataset, date, seed, wall time, command, versions."""
    run = data.run
    wall = run.get("wall_seconds")
    if wall is None and run.get("stage_seconds"):
        wall = sum(run["stage_seconds"].values())
    if wall is None:
        walls = [(s or {}).get("settings", {}).get("wall_seconds")
                 for s in (data.imputation, data.simulation)]  # fmt: skip
        walls = [w for w in walls if w is not None]
        wall = sum(walls) if walls else None
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in (run.get("stage_seconds") or {}).items())
    wall_text = "—" if wall is None else f"{wall:.0f} s ({wall / 60:.1f} min)"
    if stages:
        wall_text += f": {stages}"
    versions = ", ".join(f"{k} {v}" for k, v in data.versions.items() if k != "platform")
    from surveylm.report.labels import weighting

    sizes = []
    for label, part in (("imputation", data.imputation), ("simulation", data.simulation)):
        s = (part or {}).get("settings") or {}
        if s.get("respondents"):
            train = f", {s['train_respondents']} of them training" if s.get(
                "train_respondents") else ""  # fmt: skip
            sizes.append(f"{s['respondents']} ({label}{train})")
    rows = [
        ("dataset", data.dataset or "—"),
        ("respondents", "; ".join(sizes) or "—"),
        ("weights", weighting(data) or "—"),
        ("date", run.get("finished") or run.get("started") or "—"),
        ("seed", "—" if data.seed is None else str(data.seed)),
        ("wall time", wall_text),
        ("command", run.get("command") or "—"),
        ("versions", versions or "—"),
        ("platform", data.versions.get("platform", "—")),
    ]
    return pd.DataFrame(rows, columns=["", " "])
