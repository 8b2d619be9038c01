"""The report's prediction-powered sections: PPI++ shares beside multiple imputation, and
group distributions from a simulation model plus a pilot of k real respondents.

Drawn from ``RUN/imputation/ppi.(parquet|csv)``, which the imputation benchmark writes when
its config sets ``ppi_folds`` (:mod:`surveylm.experiments.ppi_imputation`); a run without it
gets no section. One row per scenario × method × option, averaged over the missing-data
draws: the PPI++ share and interval, the multiple-imputation share beside it, how often the
MI share fell outside the PPI++ interval, and the effective sample size — how many real
respondents the method's predictions are worth — with its bootstrap interval.
"""

from __future__ import annotations

from surveylm.report.data import RunData
from surveylm.report.html import Section, render, table_html

__all__ = ["pilot_sections", "ppi_sections"]


def ppi_sections(data: RunData) -> list[Section]:
    """The PPI section (``templates/ppi.html.j2``), or ``[]`` when the run has no PPI table."""
    ppi = data.table("imputation", "ppi")
    if ppi is None:
        return []
    keys = ["scenario", "method", "option"]
    g = ppi.groupby(keys, sort=False)
    table = g.agg(
        ppi=("estimate", "mean"), lower=("lower", "mean"), upper=("upper", "mean"),
        classical=("classical", "mean"), mi=("mi_estimate", "mean"), truth=("truth", "mean"),
        disagree=("disagree", "mean"), effective_n=("effective_n", "mean"),
        effective_low=("effective_n_low", "mean"), effective_high=("effective_n_high", "mean"),
        labelled=("n_labelled", "mean"), draws=("rep", "size"),
    ).reset_index()  # fmt: skip
    ess = zip(table["effective_n"], table["effective_low"], table["effective_high"], strict=True)
    table["effective n [95% CI]"] = [f"{e:.0f} [{lo:.0f}, {hi:.0f}]" for e, lo, hi in ess]
    table["PPI++ [95% CI]"] = [
        f"{e:.3f} [{lo:.3f}, {hi:.3f}]"
        for e, lo, hi in zip(table["ppi"], table["lower"], table["upper"], strict=True)
    ]
    shown = table[["scenario", "method", "option", "PPI++ [95% CI]", "mi", "classical",
                   "truth", "disagree", "effective n [95% CI]", "labelled", "draws"]]  # fmt: skip
    names = {"mi": "MI", "classical": "answers alone", "disagree": "MI outside PPI++",
             "labelled": "answers"}  # fmt: skip
    shown = shown.rename(columns=names)
    worst = table.loc[table["disagree"] > 0, ["scenario", "method"]].drop_duplicates()
    flagged = "; ".join(f"{s} · {m}" for s, m in worst.itertuples(index=False)) or "none"
    shown_html = table_html(shown, digits={"answers": 0, "draws": 0})
    body = render("ppi.html.j2", flagged=flagged, table=shown_html)
    return [Section("ppi", "Prediction-powered shares beside multiple imputation", body, "ppi")]


def pilot_sections(data: RunData) -> list[Section]:
    """The pilot section (``templates/pilot.html.j2``) from ``RUN/simulation/pilot``
    (:mod:`surveylm.experiments.pilot`), or ``[]`` when the run has none."""
    from surveylm.report.data import SPLIT_LABELS

    pilot = data.table("simulation", "pilot")
    if pilot is None:
        return []
    shown = pilot.assign(split=pilot["split"].map(lambda s: SPLIT_LABELS.get(s, s)))
    shown = shown[["split", "method", "k", "cells", "coverage", "classical_coverage",
                   "coverage_common", "width_ratio", "effective_n", "tv_ppi", "tv_pilot",
                   "tv_model"]]  # fmt: skip
    names = {"coverage": "PPI++ coverage", "classical_coverage": "pilot-alone coverage",
             "coverage_common": "PPI++ coverage, options ≥ 10%",
             "width_ratio": "width / pilot's", "effective_n": "effective n",
             "tv_ppi": "TV PPI++", "tv_pilot": "TV pilot alone", "tv_model": "TV model alone",
             "k": "pilot k", "cells": "test cells"}  # fmt: skip
    ratio = pilot.assign(gain=pilot["effective_n"] / pilot["k"])
    best = ratio.loc[ratio.groupby("method", sort=False)["gain"].idxmax()]
    best = best[best["gain"] > 1.005].sort_values("gain", ascending=False)
    gains = "; ".join(f"{r.method} ×{r.gain:.2f} (k = {r.k}: {r.effective_n:.1f}, "
                      f"{SPLIT_LABELS.get(r.split, r.split)})"
                      for r in best.itertuples(index=False)) or "none"  # fmt: skip
    cfg = (data.simulation or {}).get("config") or {}
    level = float((cfg.get("pilot") or {}).get("level", 0.95))
    table = table_html(shown.rename(columns=names), digits={"pilot k": 0, "test cells": 0})
    body = render("pilot.html.j2", level=f"{level:.0%}", gains=gains, table=table)
    return [Section("pilot", "A model plus a pilot of k real respondents per group", body,
                    "pilot")]
