"""Key findings, computed from a run's tables: short, plain sentences that never claim more
than the intervals allow ("intervals overlap" rather than "A beats B" when they do).

Each function returns a list of sentences (plain text; the page escapes them) and an
empty list when its tables are absent.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from surveylm.report.data import SPLIT_LABELS, RunData

__all__ = [
    "data_efficiency_findings",
    "findings",
    "imputation_findings",
    "simulation_findings",
    "vote_share_findings",
]


def _overlap(a: pd.Series, b: pd.Series) -> bool:
    """Whether two rows' ``[ci_low, ci_high]`` intervals overlap (True when unknown)."""
    if not all(np.isfinite([a["ci_low"], a["ci_high"], b["ci_low"], b["ci_high"]])):
        return True
    return bool(a["ci_low"] <= b["ci_high"] and b["ci_low"] <= a["ci_high"])


def _ci(r: pd.Series, digits: int = 3) -> str:
    if np.isfinite(r["ci_low"]) and np.isfinite(r["ci_high"]):
        return f"{r['value']:.{digits}f} [{r['ci_low']:.{digits}f}, {r['ci_high']:.{digits}f}]"
    return f"{r['value']:.{digits}f}"


def _join(names: Sequence[str]) -> str:
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _models(config: dict, model: str) -> list[str]:
    return [m["name"] for m in config.get("methods") or [] if m.get("model") == model]


def imputation_findings(respondent: pd.DataFrame | None, config: dict) -> list[str]:
    """Per scenario: the lowest log loss (and whether the runner-up's interval overlaps),
    and the methods whose log loss is worse than predicting every option equally."""
    if respondent is None:
        return []
    ll = respondent[respondent["metric"] == "log_loss"]
    ll = (ll.groupby(["scenario", "method"], sort=False)[["value", "ci_low", "ci_high"]]
          .mean().reset_index())  # fmt: skip
    uniform = set(_models(config, "uniform"))
    out = []
    for scenario, part in ll.groupby("scenario", sort=False):
        ranked = part[~part["method"].isin(uniform)].sort_values("value")
        if ranked.empty:
            continue
        best = ranked.iloc[0]
        text = f"{scenario}: {best['method']} imputes with the lowest log loss, {_ci(best)}"
        if len(ranked) > 1:
            second = ranked.iloc[1]
            verdict = ("the intervals overlap, so the two are not clearly apart"
                       if _overlap(best, second) else "the intervals do not overlap")  # fmt: skip
            text += f"; next is {second['method']}, {_ci(second)} ({verdict})"
        ref = part[part["method"].isin(uniform)]
        if len(ref):
            worse = ranked[ranked["ci_low"] > ref["value"].iloc[0]]["method"].tolist()
            if worse:
                text += (f". Worse than the uniform guess ({ref['value'].iloc[0]:.3f}): "
                         f"{_join(worse)}")  # fmt: skip
        out.append(text + ".")
    return out


def vote_share_findings(population: pd.DataFrame | None, target: str = "") -> list[str]:
    """Per scenario: the estimate closest to the true full-sample share (first option) and
    which methods' Rubin intervals contain it in every draw."""
    if population is None:
        return []
    full = population[population["group"].isna()]
    if full.empty:
        return []
    option = next(iter(dict.fromkeys(full["option"])))
    full = full[full["option"] == option]
    truth = float(full["truth"].iloc[0])
    out = [f"The true full-sample share of “{option}”{' (' + target + ')' if target else ''} "
           f"is {100 * truth:.1f}%."]  # fmt: skip
    for scenario, part in full.groupby("scenario", sort=False):
        err = part.assign(err=(part["estimate"] - part["truth"]).abs())
        by = err.groupby("method", sort=False).agg(
            err=("err", "mean"), est=("estimate", "mean"), covered=("covered", "all")
        )
        best = by["err"].idxmin()
        miss = by.index[~by["covered"].astype(bool)].tolist()
        text = (f"{scenario}: closest is {best} ({100 * by.loc[best, 'est']:.1f}%, off by "
                f"{100 * by.loc[best, 'err']:.1f} points)")  # fmt: skip
        text += (f"; intervals miss the truth for {_join(miss)}" if miss
                 else "; every method's interval contains the truth")  # fmt: skip
        out.append(text + ".")
    return out


def simulation_findings(overall: pd.DataFrame | None, config: dict) -> list[str]:
    """On unseen groups: the best method by TV against the references, and DSA against
    the KL fine-tuned encoder (the comparison of Huang, Li, Shao 2025)."""
    if overall is None:
        return []
    tv = overall[overall["metric"] == "tv"]
    is_ref = tv["reference"].astype(bool)
    out = []
    uniform = set(_models(config, "uniform"))
    for split in ("seen_q/unseen_g", "unseen_q/unseen_g"):
        part = tv[(tv["split"] == split) & ~is_ref & ~tv["method"].isin(uniform)]
        if part.empty:
            continue
        best = part.sort_values("value").iloc[0]
        refs = tv[(tv["split"] == split) & is_ref].set_index("method")["value"]
        text = f"{SPLIT_LABELS[split].capitalize()}: lowest TV is {best['method']}, {_ci(best)}"
        if "noise floor (ref)" in refs and "uniform (ref)" in refs:
            text += (f" (uniform {refs['uniform (ref)']:.3f}, sampling-noise floor "
                     f"{refs['noise floor (ref)']:.3f})")  # fmt: skip
        out.append(text + ".")
    dsa = _models(config, "dsa")
    kl = [m["name"] for m in config.get("methods") or []
          if m.get("model") == "encoder" and m.get("fit", True)]  # fmt: skip
    if dsa and kl:
        for split in ("seen_q/unseen_g", "unseen_q/unseen_g"):
            rows = tv[(tv["split"] == split) & tv["method"].isin([dsa[0], kl[0]])]
            rows = rows.set_index("method")
            if len(rows) < 2:
                continue
            a, b = rows.loc[dsa[0]], rows.loc[kl[0]]
            if _overlap(a, b):
                verdict = "no clear difference (intervals overlap)"
            else:
                verdict = f"{dsa[0] if a['value'] < b['value'] else kl[0]} is better"
            out.append(f"DSA vs KL fine-tuning, {SPLIT_LABELS[split]}: {dsa[0]} TV {_ci(a)} "
                       f"vs {kl[0]} {_ci(b)}: {verdict}.")  # fmt: skip
    return out


def data_efficiency_findings(worth: pd.DataFrame | None) -> list[str]:
    """What each method is worth in training data at the largest fraction run."""
    if worth is None or "equivalent_fraction" not in worth:
        return []
    top = worth["fraction"].max()
    lo = worth["fraction"].min()
    last = worth[(worth["fraction"] == top) & (worth["method"] != "training data")]
    parts = []
    for r in last.itertuples(index=False):
        sign = "≤ " if np.isclose(r.equivalent_fraction, lo) else "≈ "
        parts.append(f"{r.method} {sign}{100 * r.equivalent_fraction:.0f}%")
    if not parts:
        return []
    return [f"Data efficiency: trained on {100 * top:.0f}% of the training respondents, each "
            f"method is worth this share of real training data: {'; '.join(parts)}."]  # fmt: skip


def findings(data: RunData) -> list[tuple[str, list[str]]]:
    """The run's findings by topic (topics without results have an empty list)."""
    imp_cfg = (data.imputation or {}).get("config") or {}
    sim_cfg = (data.simulation or {}).get("config") or {}
    pop = data.table("imputation", "population")
    worth = data.data_efficiency[0] if data.data_efficiency else None
    return [
        ("Who gets the share right", vote_share_findings(pop, imp_cfg.get("target", ""))),
        ("Imputing respondents", imputation_findings(data.table("imputation", "respondent"),
                                                     imp_cfg)),
        ("Simulating groups", simulation_findings(data.table("simulation", "overall"), sim_cfg)
         + data_efficiency_findings(worth)),
    ]  # fmt: skip
