"""The report page: jinja2 templates (``report/templates``, autoescaped) rendered into one
self-contained HTML file (inline CSS, figures as base64 PNG).

Nothing on the page is fetched: no fonts, scripts, stylesheets or links to other
files, so the file can be mailed as it is and opened offline. Sections whose results
are absent are replaced by a one-line note.

Every value a template prints is escaped (``autoescape``); only :class:`~markupsafe.Markup`
passes as it is, which is what :func:`render`, :func:`note` and :func:`table_html` return,
so a section's pieces can be rendered apart and put together without escaping twice.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from surveylm.report.data import SPLIT_LABELS, RunData

__all__ = ["Figure", "Section", "note", "page", "render", "table_html"]

#: The templates, shipped as package data (``surveylm/report/templates``).
ENV = Environment(
    loader=PackageLoader("surveylm.report", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def render(template: str, **context: Any) -> Markup:
    """One template of ``report/templates`` rendered with ``context`` (escaped)."""
    return Markup(ENV.get_template(template).render(**context))


@dataclass
class Figure:
    """A drawn figure for the page (PNG bytes), or why it could not be drawn (``error``);
    its alt text and caption are in the section's template."""

    name: str
    png: bytes = b""
    error: str = ""

    @property
    def base64(self) -> str:
        return base64.b64encode(self.png).decode("ascii")


@dataclass
class Section:
    """One ``<section>`` of the page: id (the link target), heading, nav label, body."""

    id: str
    title: str
    body: Markup
    nav: str = ""


def note(text: str) -> Markup:
    """A one-line note in place of a missing part (``<p class='note'>``)."""
    return Markup(ENV.get_template("macros.html.j2").module.note(text))  # type: ignore[attr-defined]


def _fmt(value: object, digits: int) -> str:
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return "—"
        return f"{value:.{digits}f}"
    if isinstance(value, (int, np.integer)):
        return f"{int(value)}"
    return str(value) if value is not None and not pd.isna(value) else "—"


def table_html(
    frame: pd.DataFrame, digits: int | dict[str, int] = 3, cls: str = "", header: bool = True
) -> Markup:
    """A DataFrame as an HTML table: numbers right-aligned and rounded (per column when
    ``digits`` is a mapping), text escaped."""
    if frame is None or frame.empty:
        return note("No rows.")
    rows = []
    for r in frame.itertuples(index=False):
        cells = []
        for col, v in zip(frame.columns, r, strict=True):
            d = digits.get(col, 3) if isinstance(digits, dict) else digits
            num = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            cells.append((_fmt(v, d), num))
        rows.append(cells)
    columns = [str(c) for c in frame.columns] if header else []
    return render("table.html.j2", columns=columns, rows=rows, cls=cls)


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


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole document: title, the link bar and the sections in order."""
    return str(render("report.html.j2", title=title, subtitle=subtitle, sections=sections))


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
