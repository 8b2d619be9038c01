"""The report's figures: one function per figure, tidy frames in, a matplotlib Figure out.

Every function takes the tidy tables a run writes (see
:class:`~surveylm.experiments.imputation.ImputationResults` and
:class:`~surveylm.experiments.simulation.SimulationResults`) and the method order of the
config, and draws with one style: the Okabe–Ito colour-blind-safe palette (Okabe & Ito
2008, "Color Universal Design") plus a marker per method so that colour is never the only
cue, labelled axes with units, and light grids. Nothing is written here; see
:func:`save_figure` and :func:`surveylm.report.build_report`. Figures only draw: the
numbers they show come from the run's tables or from the metrics (calibration bins and ECE:
:mod:`surveylm.metrics.calibration`).
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FormatStrFormatter

from surveylm.errors import shorten
from surveylm.metrics.calibration import calibration_bins, expected_calibration_error
from surveylm.metrics.registry import label as metric_label
from surveylm.report.data import SPLIT_LABELS

__all__ = [
    "PALETTE",
    "SPLIT_LABELS",
    "data_efficiency",
    "distribution_metrics",
    "example_pairs",
    "figure_bytes",
    "method_styles",
    "predicted_vs_human",
    "reliability",
    "respondent_metrics",
    "save_figure",
    "target_share",
]

#: Okabe–Ito colours, with Paul Tol's wine instead of the yellow (too faint on white);
#: black last: it is kept for references and the training-data curve.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#882255",
           "#000000")  # fmt: skip
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "h", "<", ">")
REFERENCE_COLOR = "#555555"
_STYLE = {
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e3e3e3",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "figure.dpi": 100,
    "svg.fonttype": "none",
}


@contextmanager
def _style():
    with matplotlib.rc_context(_STYLE):
        yield


def _subplots(nrows: int, ncols: int, figsize: tuple[float, float], **kw):
    """A detached Figure (no pyplot state, Agg-rendered on save) and its axes grid."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kw)


def method_styles(methods: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Colour and marker per method, in order (the palette repeats with new markers).

    Callers pass the *whole* method order of the run (the config's), not the methods one
    figure happens to draw, so a method has the same colour in every figure."""
    return {
        m: (PALETTE[i % (len(PALETTE) - 1)], MARKERS[i % len(MARKERS)])
        for i, m in enumerate(methods)
    }


def _order(present: Iterable[str], order: Sequence[str] | None) -> list[str]:
    """``order`` restricted to what is present, then anything else in first-seen order."""
    present = list(dict.fromkeys(str(p) for p in present))
    head = [m for m in (order or []) if m in present]
    return head + [p for p in present if p not in head]


def _wrap(text: str, width: int = 22) -> str:
    return "\n".join(textwrap.wrap(str(text), width)) or str(text)


def _tick(text: str) -> str:
    """An option label on at most two lines of 16 characters."""
    lines = textwrap.wrap(str(text), 16)
    return "\n".join(lines[:2]) + ("…" if len(lines) > 2 else "")


def _dot_whisker(ax, rows: pd.DataFrame, methods: list[str], styles, dodge: str | None = None):
    """Horizontal dots with interval whiskers, first method on top. ``rows`` has
    ``method, value, low, high`` (and ``dodge`` for several estimates per method)."""
    y_of = {m: len(methods) - 1 - i for i, m in enumerate(methods)}
    for m in methods:
        part = rows[rows["method"] == m]
        if part.empty:
            continue
        k = len(part)
        offsets = np.linspace(-0.18, 0.18, k) if k > 1 else np.zeros(1)
        color, marker = styles[m]
        for off, r in zip(offsets, part.itertuples(index=False), strict=True):
            y = y_of[m] + off
            lo, hi = r.low, r.high
            if np.isfinite(lo) and np.isfinite(hi):
                ax.plot([lo, hi], [y, y], color=color, lw=1.6, solid_capstyle="butt")
            ax.plot(r.value, y, marker=marker, color=color, ms=6, mec="white", mew=0.6)
    ax.set_yticks(range(len(methods)))
    ax.set_yticklabels([_wrap(m) for m in reversed(methods)])
    ax.set_ylim(-0.6, len(methods) - 0.4)
    ax.grid(axis="y", visible=False)


def _metric_grid(n_metrics: int, n_columns: int, n_methods: int):
    """Rows of dot-and-whisker panels (one per metric) sharing the method axis."""
    height = n_metrics * (0.33 * n_methods + 1.2) + 0.3
    return _subplots(n_metrics, n_columns, figsize=(2.55 * n_columns + 1.6, height),
                     sharey=True, squeeze=False)  # fmt: skip


def _ci_or_value(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.rename(columns={"ci_low": "low", "ci_high": "high"})
    return out[["method", "value", "low", "high"]]


def _legend_below(fig: Figure, handles: list, ncol: int | None = None) -> None:
    ncol = ncol or min(len(handles), 4)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False,
               bbox_to_anchor=(0.5, 0.0))  # fmt: skip


# -- imputation ---------------------------------------------------------------------------
def target_share(
    population: pd.DataFrame,
    methods: Sequence[str] | None = None,
    scenarios: Sequence[str] | None = None,
    options: Sequence[str] | None = None,
    target_label: str = "answer",
) -> Figure:
    """Full-sample share estimates (Rubin-pooled, with their intervals) per method, one
    panel per scenario × option; the true full-sample share is the vertical line. Several
    missing-data draws (e.g. MCAR folds) of one method are drawn side by side.

    For a two-option target only the first option is shown (the other is its complement).
    """
    full = population[population["group"].isna()] if "group" in population else population
    opts = list(options) if options is not None else list(dict.fromkeys(full["option"]))
    if options is None and len(opts) == 2:
        opts = opts[:1]
    opts = opts[:6]
    scen = _order(full["scenario"], scenarios)
    meths = _order(full["method"], methods)
    styles = method_styles(_order(full["method"], methods))
    with _style():
        lims = {}  # one x-axis for every scenario of an option, so panels compare at a glance
        for opt in opts:
            part = full[full["option"] == opt]
            vals = 100 * part[["estimate", "lower", "upper", "truth"]].astype(float).to_numpy()
            lo, hi = np.nanmin(vals), np.nanmax(vals)
            pad = 0.05 * (hi - lo) if hi > lo else 1.0
            lims[opt] = (lo - pad, hi + pad)
        fig, axes = _subplots(
            len(opts), len(scen), figsize=(2.6 * len(scen) + 1.6, 0.36 * len(meths) * len(opts)
                                           + 1.3 * len(opts) + 0.2),
            sharey=True, squeeze=False,
        )  # fmt: skip
        for i, opt in enumerate(opts):
            for j, s in enumerate(scen):
                ax = axes[i][j]
                part = full[(full["option"] == opt) & (full["scenario"] == s)]
                rows = part.rename(columns={"estimate": "value", "lower": "low", "upper": "high"})
                rows = rows.sort_values(["method", "rep", "unit"])
                _dot_whisker(ax, _pct(rows), meths, styles)
                truth = part["truth"].dropna()
                if len(truth):
                    ax.axvline(100 * truth.iloc[0], color="black", lw=1.2, ls="--", zorder=0)
                ax.set_title(_wrap(s, 30))
                ax.set_xlim(*lims[opt])
                ax.set_xlabel(f"{shorten(opt, 28)} share (%)")
                ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        handles = [
            Line2D([], [], color="black", ls="--", lw=1.2, label="true full-sample share"),
            Line2D([], [], color="#333333", marker="o", lw=1.6,
                   label="Rubin-pooled estimate and interval (one per draw)"),
        ]  # fmt: skip
        _legend_below(fig, handles, 2)
        fig.tight_layout(rect=(0, 0.07 + 0.03 / len(opts), 1, 1))
    return fig


def _pct(rows: pd.DataFrame) -> pd.DataFrame:
    out = rows[["method", "value", "low", "high"]].copy()
    out[["value", "low", "high"]] = out[["value", "low", "high"]].astype(float) * 100
    return out


def respondent_metrics(
    respondent: pd.DataFrame,
    methods: Sequence[str] | None = None,
    scenarios: Sequence[str] | None = None,
    metrics: Sequence[str] = ("accuracy", "log_loss"),
    reference: str | None = "uniform",
) -> Figure:
    """Respondent-level metrics (means over repetitions, bootstrap intervals) per method,
    one row of panels per metric and a column per scenario. The ``reference`` method
    (the uniform distribution) is drawn as a vertical line instead of a dot."""
    df = respondent[respondent["metric"].isin(metrics)]
    df = (df.groupby(["scenario", "method", "metric"], sort=False)[["value", "ci_low", "ci_high"]]
          .mean().reset_index())  # fmt: skip
    scen = _order(df["scenario"], scenarios)
    meths = [m for m in _order(df["method"], methods) if m != reference]
    mets = [m for m in metrics if m in set(df["metric"])]
    styles = method_styles(_order(df["method"], methods))  # same colours in every figure
    with _style():
        fig, axes = _metric_grid(len(mets), len(scen), len(meths))
        for i, metric in enumerate(mets):
            for j, s in enumerate(scen):
                ax = axes[i][j]
                part = df[(df["scenario"] == s) & (df["metric"] == metric)]
                _dot_whisker(ax, _ci_or_value(part[part["method"] != reference]), meths, styles)
                ref = part[part["method"] == reference]
                if len(ref):
                    ax.axvline(ref["value"].iloc[0], color=REFERENCE_COLOR, ls=":", lw=1.4,
                               zorder=0)  # fmt: skip
                if i == 0:
                    ax.set_title(_wrap(s, 30))
                ax.set_xlabel(metric_label(metric))
        handles = [Line2D([], [], color="#333333", marker="o", lw=1.6,
                          label="estimate, 95% bootstrap interval")]  # fmt: skip
        if reference is not None and reference in set(df["method"]):
            label = reference if reference.endswith("(ref)") else f"{reference} (reference)"
            handles.append(Line2D([], [], color=REFERENCE_COLOR, ls=":", lw=1.4,
                                  label=label))  # fmt: skip
        _legend_below(fig, handles, 2)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def reliability(
    predictions: pd.DataFrame,
    methods: Sequence[str] | None = None,
    scenarios: Sequence[str] | None = None,
    n_bins: int = 10,
    min_count: int = 5,
    exclude: Sequence[str] = ("uniform",),
    min_bins: int = 3,
) -> Figure:
    """Reliability diagram of the imputed respondents' predicted distributions: one panel
    per scenario (calibration under a convenience sample is what differs from MCAR), one
    line per method, the diagonal for perfect calibration; the legend gives each method's
    ECE. For a two-option target the first option's probability is binned (the other is
    its mirror image); otherwise every option's probability is (class-wise pooled). Bins
    with fewer than ``min_count`` predictions are not drawn (but count in the ECE), nor a
    method with fewer than ``min_bins`` such bins (a handful of points is no curve); each
    drawn point is labelled with its count.
    ``exclude``: methods that predict one constant (uniform) — a single point."""
    options = list(dict.fromkeys(predictions["option"]))
    xlabel = "predicted probability (every option)"
    if len(options) == 2:
        predictions = predictions[predictions["option"] == options[0]]
        xlabel = f"predicted probability of “{shorten(options[0], 26)}”"
    scen = _order(predictions["scenario"], scenarios)
    meths = [m for m in _order(predictions["method"], methods) if m not in set(exclude)]
    styles = method_styles(_order(predictions["method"], methods))
    bins = calibration_bins(predictions, n_bins, by=("scenario", "method"))
    ncol = min(len(scen), 3)
    nrow = int(np.ceil(len(scen) / ncol))
    with _style():
        fig, axes = _subplots(nrow, ncol, figsize=(3.6 * ncol + 0.4, 5.2 * nrow + 0.3),
                                 squeeze=False)  # fmt: skip
        for k, s in enumerate(scen):
            ax = axes[k // ncol][k % ncol]
            ax.plot([0, 1], [0, 1], color=REFERENCE_COLOR, ls=":", lw=1.2, zorder=0)
            handles = []
            for m in meths:
                b = bins[(bins["scenario"] == s) & (bins["method"] == m)].sort_values("bin")
                if b.empty:
                    continue
                color, marker = styles[m]
                shown = b[b["count"] >= min_count]
                ece = expected_calibration_error(b)
                if len(shown) < min_bins:
                    handles.append(Line2D([], [], color=color, marker=marker, lw=0, label=(
                        f"{shorten(m, 24)}  ECE {ece:.3f} (too few bins to draw)")))  # fmt: skip
                    continue
                ax.plot(shown["predicted"], shown["observed"], color=color, marker=marker,
                        ms=5.5, lw=1.3, mec="white", mew=0.5)  # fmt: skip
                for r in shown.itertuples(index=False):
                    ax.annotate(f"{int(r.count)}", (r.predicted, r.observed), xytext=(3, 3),
                                textcoords="offset points", fontsize=6, color=color)  # fmt: skip
                handles.append(Line2D([], [], color=color, marker=marker, lw=1.3,
                                      label=f"{shorten(m, 24)}  ECE {ece:.3f}"))  # fmt: skip
            ax.set_xlim(-0.02, 1.02)
            ax.set_ylim(-0.02, 1.02)
            ax.set_aspect("equal")
            ax.set_title(_wrap(s, 34))
            ax.set_xlabel(xlabel)
            ax.set_ylabel("observed frequency (weighted share)")
            ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16),
                      frameon=False, fontsize=7.5, handlelength=1.8)  # fmt: skip
        for k in range(len(scen), nrow * ncol):
            axes[k // ncol][k % ncol].set_visible(False)
        fig.tight_layout()
    return fig


# -- simulation ---------------------------------------------------------------------------
def distribution_metrics(
    overall: pd.DataFrame,
    methods: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    metrics: Sequence[str] = ("tv", "wd", "jsd"),
    exclude: Sequence[str] = ("uniform",),
) -> Figure:
    """Distribution metrics per method (bootstrap intervals over items), a row of panels
    per metric and a column per split; the ``uniform (ref)`` and ``noise floor (ref)``
    rows are vertical lines (the noise floor: two samples of the same group's size from
    the same distribution differ by this much — no method can be expected to beat it).
    ``exclude``: methods drawn as the uniform line instead of a dot."""
    df = overall[overall["metric"].isin(metrics)]
    is_ref = (
        df["reference"].astype(bool) if "reference" in df else df["method"].str.endswith("(ref)")
    )
    refs, df_m = df[is_ref], df[~is_ref]
    spl = _order(df["split"], splits or list(SPLIT_LABELS))
    meths = [m for m in _order(df_m["method"], methods) if m not in set(exclude)]
    mets = [m for m in metrics if m in set(df["metric"])]
    styles = method_styles(_order(df_m["method"], methods))
    ref_style = {"uniform (ref)": (":", REFERENCE_COLOR), "noise floor (ref)": ("--", "black")}
    with _style():
        fig, axes = _metric_grid(len(mets), len(spl), len(meths))
        for i, metric in enumerate(mets):
            lim = df[df["metric"] == metric][["value", "ci_high"]].max().max()
            for j, s in enumerate(spl):
                ax = axes[i][j]
                part = df_m[(df_m["split"] == s) & (df_m["metric"] == metric)]
                _dot_whisker(ax, _ci_or_value(part), meths, styles)
                for name, (ls, color) in ref_style.items():
                    r = refs[(refs["split"] == s) & (refs["metric"] == metric)
                             & (refs["method"] == name)]  # fmt: skip
                    if len(r):
                        ax.axvline(r["value"].iloc[0], color=color, ls=ls, lw=1.3, zorder=0)
                if np.isfinite(lim):
                    ax.set_xlim(0, lim * 1.05)
                if i == 0:
                    ax.set_title(_wrap(SPLIT_LABELS.get(s, s), 24))
                ax.set_xlabel(metric_label(metric).replace(" (", "\n("))
        handles = [Line2D([], [], color="#333333", marker="o", lw=1.6,
                          label="estimate, 95% bootstrap interval")]  # fmt: skip
        for name, (ls, color) in ref_style.items():
            if name in set(refs["method"]):
                label = {"uniform (ref)": "uniform distribution (reference)",
                         "noise floor (ref)": "sampling-noise floor (reference)"}[name]  # fmt: skip
                handles.append(Line2D([], [], color=color, ls=ls, lw=1.3, label=label))
        _legend_below(fig, handles, 3)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def example_pairs(
    distributions: pd.DataFrame, min_n: int, k: int = 6, seed: int = 0, max_options: int = 10
) -> pd.DataFrame:
    """Up to ``k`` question × group items for the small multiples, never one with
    ``n < min_n``: unseen-question × unseen-group items first, then unseen groups, then
    unseen questions, then seen ones; a question or group is repeated only when nothing
    else is left, and a question with more than ``max_options`` options (a 24-bracket
    income scale is unreadable at this size) only then too. Returns ``split, item_id,
    question_id, group, n`` (in drawing order)."""
    rank = {s: i for i, s in enumerate(["unseen_q/unseen_g", "seen_q/unseen_g",
                                        "unseen_q/seen_g", "seen_q/seen_g"])}  # fmt: skip
    items = distributions.drop_duplicates(["split", "item_id"])[
        ["split", "item_id", "question_id", "group", "n"]
    ]
    items = items[items["n"].astype(float) >= min_n].copy()
    if items.empty:
        return items
    n_options = distributions.groupby("item_id", sort=False)["option"].nunique()
    rng = np.random.default_rng(seed)
    items["too_wide"] = items["item_id"].map(n_options).fillna(0).to_numpy() > max_options
    items["_rank"] = items["split"].map(rank).fillna(len(rank)) + 10 * items["too_wide"]
    items["_tie"] = rng.random(len(items))
    items = items.sort_values(["_rank", "_tie"])
    chosen: list[Any] = []  # itertuples() rows
    questions, groups = set(), set()
    for strict in (True, False):
        for r in items.itertuples(index=False):
            if len(chosen) == k:
                break
            if r.item_id in {c.item_id for c in chosen}:
                continue
            if strict and (r.question_id in questions or r.group in groups or r.too_wide):
                continue
            chosen.append(r)
            questions.add(r.question_id)
            groups.add(r.group)
    out = pd.DataFrame(chosen, columns=items.columns)
    return out.drop(columns=["_rank", "_tie", "too_wide"]).reset_index(drop=True)


def predicted_vs_human(
    distributions: pd.DataFrame,
    pairs: pd.DataFrame,
    methods: Sequence[str] | None = None,
    exclude: Sequence[str] = ("uniform",),
    question_text: dict[str, str] | None = None,
) -> Figure:
    """Small multiples: the held-out humans' answer distribution (grey bars) and each
    method's predicted distribution (markers) for the items in ``pairs`` (see
    :func:`example_pairs`)."""
    meths = [m for m in _order(distributions["method"], methods) if m not in set(exclude)]
    styles = method_styles(_order(distributions["method"], methods))
    n = len(pairs)
    ncol = min(n, 3)
    nrow = int(np.ceil(n / ncol))
    with _style():
        fig, axes = _subplots(nrow, ncol, figsize=(4.1 * ncol, 4.1 * nrow + 0.8),
                                 squeeze=False)  # fmt: skip
        for k, pair in enumerate(pairs.itertuples(index=False)):
            ax = axes[k // ncol][k % ncol]
            item = distributions[(distributions["split"] == pair.split)
                                 & (distributions["item_id"] == pair.item_id)]  # fmt: skip
            options = list(dict.fromkeys(item["option"]))
            x = np.arange(len(options))
            human = item.drop_duplicates("option").set_index("option")["human"]
            ax.bar(x, human.reindex(options).to_numpy(float), width=0.75, color="#d9d9d9",
                   edgecolor="#8c8c8c", lw=0.6, zorder=1)  # fmt: skip
            offsets = np.linspace(-0.25, 0.25, len(meths)) if len(meths) > 1 else [0.0]
            for off, m in zip(offsets, meths, strict=True):
                pm = item[item["method"] == m].set_index("option")["predicted"]
                if pm.empty:
                    continue
                color, marker = styles[m]
                ax.plot(x + off, pm.reindex(options).to_numpy(float), ls="none", marker=marker,
                        color=color, ms=5, mec="white", mew=0.5, zorder=3)  # fmt: skip
            ax.set_xticks(x)
            rotate = len(options) > 3 or max(len(str(o)) for o in options) > 12
            ax.set_xticklabels(
                [shorten(o, 24) if rotate else _tick(o) for o in options],
                rotation=40 if rotate else 0, ha="right" if rotate else "center",
                rotation_mode="anchor",
            )  # fmt: skip
            ax.grid(axis="x", visible=False)
            ax.set_ylim(0, 1)
            ax.set_ylabel("share of the group (0–1)")
            text = (question_text or {}).get(pair.question_id)
            q = f"{pair.question_id}: {text}" if text else str(pair.question_id)
            lines = textwrap.wrap(q, 52)
            q = "\n".join(lines[:2]) + ("…" if len(lines) > 2 else "")
            where = SPLIT_LABELS.get(pair.split, pair.split).replace(" × ", ", ")
            title = f"{q}\n{_wrap(pair.group, 52)}\nn = {int(pair.n)}; {where}"
            ax.set_title(title, fontsize=8.5)
        for k in range(n, nrow * ncol):
            axes[k // ncol][k % ncol].set_visible(False)
        handles: list[Patch | Line2D] = [Patch(facecolor="#d9d9d9", edgecolor="#8c8c8c",
                                               label="held-out humans")]  # fmt: skip
        handles += [Line2D([], [], ls="none", marker=styles[m][1], color=styles[m][0], ms=6,
                           label=m) for m in meths]  # fmt: skip
        _legend_below(fig, handles, min(len(handles), 4))
        rows = int(np.ceil(len(handles) / min(len(handles), 4)))
        fig.tight_layout(rect=(0, 0.035 * rows / nrow + 0.02, 1, 1))
    return fig


def data_efficiency(
    worth: pd.DataFrame, metric: str = "tv", methods: Sequence[str] | None = None
) -> Figure:
    """Error against the fraction of training respondents, per method, with the run's
    bands (``band_low``–``band_high``: 95% bootstrap over items); the training data itself
    (black) is the yardstick, and each method's *equivalent fraction* at full data (how
    much real data it is worth; DSA, Huang, Li, Shao 2025) is written at the end of its curve."""
    meths = _order(worth["method"], methods)
    ref = "training data"
    others = [m for m in meths if m != ref]
    styles = method_styles([m for m in (methods or others) if m != ref])
    styles[ref] = ("#000000", "o")
    with _style():
        fig, ax = _subplots(1, 1, figsize=(7.4, 4.2))
        labels: list[tuple[float, float, str, str]] = []
        for m in [ref, *others] if ref in meths else others:
            part = worth[worth["method"] == m].sort_values("fraction")
            color, marker = styles[m]
            f = part["fraction"].to_numpy(float) * 100
            ax.plot(f, part["value"], marker=marker, color=color, lw=2 if m == ref else 1.5,
                    ms=5, label=m, mec="white", mew=0.5)  # fmt: skip
            if {"band_low", "band_high"} <= set(part.columns):
                ax.fill_between(f, part["band_low"], part["band_high"], color=color, alpha=0.15,
                                lw=0)  # fmt: skip
            if m != ref and "equivalent_fraction" in part and len(part):
                last = part.iloc[-1]
                labels.append((float(last["value"]), f[-1], color,
                               _worth(last["equivalent_fraction"], worth["fraction"])))  # fmt: skip

        ax.set_xscale("log")
        ticks = sorted(set(np.round(worth["fraction"].astype(float) * 100, 6)))
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}%" for t in ticks])
        ax.minorticks_off()
        lo, hi = min(ticks), max(ticks)
        ax.set_xlim(lo / 1.25, hi * 1.9)
        ax.set_xlabel("training respondents used (% of the training half, log scale)")
        label = metric_label(metric)
        ax.set_ylabel(f"{label}\nto held-out group distributions")
        ax.set_ylim(bottom=0)
        _spread_labels(ax, labels)
        handles, _ = ax.get_legend_handles_labels()
        _legend_below(fig, handles, min(len(handles), 4))
        fig.tight_layout(rect=(0, 0.08 * int(np.ceil(len(handles) / 4)), 1, 1))
    return fig


def training_curves(curves: pd.DataFrame, methods: Sequence[str] | None = None) -> Figure:
    """Train and validation loss against the optimiser step, one panel per fitted LM
    method (``curves``: ``method, step, epoch, split, loss``); the validation curve starts
    at the untrained state (step 0) and the best step is marked — the state the fit
    restored (DESIGN.md, "Fitting")."""
    meths = _order(curves["method"], methods)
    styles = method_styles(list(methods or meths))
    n = len(meths)
    with _style():
        fig, axes = _subplots(1, n, figsize=(3.6 * n + 0.6, 3.2), squeeze=False)
        for ax, m in zip(axes[0], meths, strict=True):
            part = curves[curves["method"] == m]
            color = styles[m][0]
            train = part[part["split"] == "train"].sort_values("step")
            val = part[part["split"] == "validation"].sort_values("step")
            ax.plot(train["step"], train["loss"], color=color, lw=1, alpha=0.55, label="train")
            if len(val):
                ax.plot(val["step"], val["loss"], color=color, lw=2, marker="o", ms=3.5,
                        label="validation")  # fmt: skip
                best = val.loc[val["loss"].idxmin()]
                ax.scatter([best["step"]], [best["loss"]], s=70, facecolor="none",
                           edgecolor="black", zorder=5, label="restored (best)")  # fmt: skip
            ax.set_title(_wrap(m, 34), fontsize=9)
            ax.set_xlabel("optimiser step")
        axes[0][0].set_ylabel("loss (forward KL, nats)")
        handles, _ = axes[0][0].get_legend_handles_labels()
        _legend_below(fig, handles, len(handles))
        fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def _spread_labels(ax, labels: list[tuple[float, float, str, str]], gap: float = 0.05) -> None:
    """Write ``(y, x, colour, text)`` labels right of their curve ends, moved apart
    vertically (at least ``gap`` of the y-range) so that close curves stay legible."""
    lo, hi = ax.get_ylim()
    step = gap * (hi - lo)
    placed: list[float] = []
    for y, x, color, text in sorted(labels):
        y_text = max(y, placed[-1] + step) if placed else y
        placed.append(y_text)
        ax.annotate(text, (x, y), xytext=(x * 1.08, y_text), textcoords="data", va="center",
                    fontsize=8, color=color)  # fmt: skip


def _worth(fraction: float, fractions: pd.Series) -> str:
    """``worth 29%``; ``≤``/``≥`` where the training-data curve was never reached (the
    equivalent fraction is clipped to the fractions that were run)."""
    lo, hi = float(fractions.min()), float(fractions.max())
    sign = "≤ " if np.isclose(fraction, lo) else "≥ " if np.isclose(fraction, hi) else ""
    return f"worth {sign}{100 * fraction:.0f}%"


# -- output -------------------------------------------------------------------------------
def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = 110) -> bytes:
    """The figure rendered to PNG or SVG bytes."""
    buf = io.BytesIO()
    with _style():
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight",
                    metadata={"Date": None} if fmt == "svg" else None)  # fmt: skip
    return buf.getvalue()


def save_figure(fig: Figure, stem: str | Path, dpi: int = 110) -> dict[str, bytes]:
    """Write ``stem.png`` and ``stem.svg`` atomically and return the
    bytes written by format (the PNG is what the report embeds)."""
    from surveylm.io.atomic import atomic_write_bytes

    stem = Path(stem)
    out = {}
    for fmt in ("png", "svg"):
        out[fmt] = figure_bytes(fig, fmt, dpi)
        atomic_write_bytes(stem.with_name(f"{stem.name}.{fmt}"), out[fmt])
    return out
