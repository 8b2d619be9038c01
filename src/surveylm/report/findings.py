"""Key findings, computed from a run's tables: short, plain sentences that never claim more
than the intervals allow ("intervals overlap" rather than "A beats B" when they do).

Each function returns a list of sentences (plain text; the page escapes them) and an
empty list when its tables are absent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from surveylm.metrics.registry import lower_is_better
from surveylm.report.data import SPLIT_LABELS, RunData
from surveylm.report.labels import (
    MIN_RANK_QUESTIONS,
    is_reference,
    observed_imputed,
    split_sizes,
)

__all__ = [
    "bottom_line",
    "data_efficiency_findings",
    "findings",
    "imputation_findings",
    "simulation_findings",
    "target_share_findings",
]

#: The metric imputation methods are ranked by (its direction comes from the registry).
IMPUTATION_METRIC = "log_loss"
#: The metric simulation methods are ranked by.
SIMULATION_METRIC = "tv"


def _ranked(part: pd.DataFrame, lower: bool) -> pd.DataFrame:
    """``part`` best first: ascending values where lower is better."""
    return part.sort_values("value", ascending=lower)


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


def _worse(ranked: pd.DataFrame, ref: pd.Series, name: str, metric: str) -> str:
    """``". Worse than NAME (v): a (v), b (v)"`` — every method whose estimate is worse
    than the reference's ("clearly" where its whole interval is)."""
    higher_better = not lower_is_better(metric)
    sign = -1 if higher_better else 1
    worse = ranked[sign * (ranked["value"] - ref["value"]) > 0]
    if worse.empty:
        return ""
    parts = []
    for r in worse.itertuples(index=False):
        clear = (r.ci_high < ref["value"]) if higher_better else (r.ci_low > ref["value"])
        parts.append(f"{r.method} ({r.value:.3f}{', clearly' if clear else ''})")
    return f". Worse than {name} ({ref['value']:.3f}): {_join(parts)}"


def _sizes_text(sizes: pd.DataFrame | None, scenario: str) -> str:
    if sizes is None or scenario not in set(sizes["scenario"]):
        return ""
    r = sizes.set_index("scenario").loc[scenario]
    draws = f"{r['draws']} draw{'s' if r['draws'] != 1 else ''}"
    return f" (n = {r['observed']} observed, {r['imputed']} imputed per draw; {draws})"


def _log_loss(respondent: pd.DataFrame) -> pd.DataFrame:
    ll = respondent[respondent["metric"] == IMPUTATION_METRIC]
    cols = ["value", "ci_low", "ci_high", "n_items"]
    return ll.groupby(["scenario", "method"], sort=False)[cols].mean().reset_index()


def imputation_findings(
    respondent: pd.DataFrame | None, config: dict, timings: pd.DataFrame | None = None
) -> list[str]:
    """Per scenario (with its observed / imputed n): the lowest log loss among the methods
    (references never ranked), whether the runner-up's interval overlaps, and every method
    whose log loss is worse than the uniform guess (ref)."""
    if respondent is None:
        return []
    sizes = observed_imputed(timings)
    out = []
    for scenario, part in _log_loss(respondent).groupby("scenario", sort=False):
        refs = part[part["method"].map(is_reference)]
        ranked = _ranked(part[~part["method"].map(is_reference)],
                         lower_is_better(IMPUTATION_METRIC))  # fmt: skip
        if ranked.empty:
            continue
        best = ranked.iloc[0]
        text = (f"{scenario}{_sizes_text(sizes, scenario)}: {best['method']} imputes with the "
                f"lowest log loss, {_ci(best)}")  # fmt: skip
        if len(ranked) > 1:
            second = ranked.iloc[1]
            verdict = ("the intervals overlap, so the two are not clearly apart"
                       if _overlap(best, second) else "the intervals do not overlap")  # fmt: skip
            text += f"; next is {second['method']}, {_ci(second)} ({verdict})"
        for r in refs.itertuples(index=False):
            text += _worse(ranked, pd.Series(r._asdict()), r.method, IMPUTATION_METRIC)
        out.append(text + ".")
    return out


def target_share_findings(population: pd.DataFrame | None, target: str = "") -> list[str]:
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
        methods = by[~by.index.map(is_reference)]
        best = (methods if len(methods) else by)["err"].idxmin()
        miss = by.index[~by["covered"].astype(bool)].tolist()
        text = (f"{scenario}: closest is {best} ({100 * by.loc[best, 'est']:.1f}%, off by "
                f"{100 * by.loc[best, 'err']:.1f} points)")  # fmt: skip
        text += (f"; intervals miss the truth for {_join(miss)}" if miss
                 else "; every method's interval contains the truth")  # fmt: skip
        out.append(text + ".")
    return out


def _split_n(sizes: pd.DataFrame | None, split: str) -> tuple[str, int | None]:
    """``"n = 12 items from 2 questions, 3 groups"`` and the number of questions."""
    if sizes is None or split not in set(sizes["split"]):
        return "", None
    r = sizes.set_index("split").loc[split]
    q = int(r["questions"])
    return (f"n = {int(r['items'])} items from {q} question{'s' if q != 1 else ''}, "
            f"{int(r['groups'])} groups"), q  # fmt: skip


def simulation_findings(
    overall: pd.DataFrame | None, config: dict, distributions: pd.DataFrame | None = None
) -> list[str]:
    """Per split (with its items and questions): the lowest TV among the methods against
    the references (never ranked), every method worse than a reference other than the
    noise floor, or that the split is too small to rank; and DSA against the KL fine-tuned
    encoder (the comparison of Huang, Li, Shao 2025)."""
    if overall is None:
        return []
    tv = overall[overall["metric"] == SIMULATION_METRIC]
    sizes = split_sizes(distributions)
    out = []
    for split in [s for s in SPLIT_LABELS if s in set(tv["split"])]:
        part = tv[tv["split"] == split]
        is_ref = part["method"].map(is_reference)
        ranked, refs = _ranked(part[~is_ref], lower_is_better(SIMULATION_METRIC)), part[is_ref]
        if ranked.empty:
            continue
        n_text, n_questions = _split_n(sizes, split)
        label = SPLIT_LABELS[split].capitalize() + (f" ({n_text})" if n_text else "")
        ref_text = ", ".join(f"{r.method} {r.value:.3f}" for r in refs.itertuples(index=False))
        best = ranked.iloc[0]
        if n_questions is not None and n_questions < MIN_RANK_QUESTIONS:
            text = (f"{label}: too few questions to rank methods (fewer than "
                    f"{MIN_RANK_QUESTIONS}); lowest TV {best['method']} {_ci(best)}")  # fmt: skip
        else:
            text = f"{label}: lowest TV is {best['method']}, {_ci(best)}"
        text += f" ({ref_text})" if ref_text else ""
        for r in refs.itertuples(index=False):
            if not str(r.method).startswith("noise floor"):
                text += _worse(ranked, pd.Series(r._asdict()), r.method, SIMULATION_METRIC)
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
        share = f"{100 * r.equivalent_fraction:.0f}%"
        if np.isclose(r.equivalent_fraction, lo):
            parts.append(f"{r.method} is no better than {share} of them or fewer")
        else:
            parts.append(f"{r.method} is as accurate as about {share} of them")
    if not parts:
        return []
    return [f"Data efficiency: trained on {100 * top:.0f}% of the training respondents, and "
            "compared with the group shares of a random part of those respondents: "
            f"{'; '.join(parts)}."]  # fmt: skip


def findings(data: RunData) -> list[tuple[str, list[str]]]:
    """The run's findings by topic (topics without results have an empty list)."""
    imp_cfg = (data.imputation or {}).get("config") or {}
    sim_cfg = (data.simulation or {}).get("config") or {}
    pop = data.table("imputation", "population")
    worth = data.data_efficiency[0] if data.data_efficiency else None
    return [
        ("Who gets the share right", target_share_findings(pop, imp_cfg.get("target", ""))),
        ("Imputing respondents", imputation_findings(data.table("imputation", "respondent"),
                                                     imp_cfg, data.table("imputation", "timings"))),
        ("Simulating groups", simulation_findings(data.table("simulation", "overall"), sim_cfg,
                                                  data.table("simulation", "distributions"))
         + data_efficiency_findings(worth)),
    ]  # fmt: skip


# -- the bottom line ------------------------------------------------------------------------
#: Registry names of the simple baselines a method has to beat to be worth its cost.
BASELINE_MODELS = ("question-marginal", "group-marginal")
COMPLETE_CASE = "complete case"


def _verdict(
    part: pd.DataFrame, baselines: set[str], unit: str = "", digits: int = 3, lower: bool = True
) -> str:
    """Which method to trust on one job (rows ``method, value, ci_low, ci_high``; ``lower``:
    lower is better): the best method, whether it clearly beats the simple baselines (by its
    interval; by the point estimates where there are none), and every method worse than a
    reference (the noise floor aside: nothing should beat it)."""
    is_ref = part["method"].map(is_reference)
    ranked, refs = _ranked(part[~is_ref], lower), part[is_ref]
    if ranked.empty:
        return "no method was run"

    def v(r: Any) -> str:  # a row: a Series or an itertuples() namedtuple
        value = r["value"] if isinstance(r, pd.Series) else r.value
        return f"{value:.{digits}f}{unit}"

    best = ranked.iloc[0]
    base = ranked[ranked["method"].isin(baselines)]
    known = bool(np.isfinite([best["ci_low"], best["ci_high"]]).all())
    if best["method"] in baselines:
        text = f"no method beats the simple baselines; {best['method']} is best ({v(best)})"
    elif len(base) and not known:
        text = (f"{best['method']} is closest ({v(best)}), ahead of the simple baselines (best "
                f"{base.iloc[0]['method']}, {v(base.iloc[0])}); no intervals")  # fmt: skip
    elif len(base) and _overlap(best, base.iloc[0]):
        text = (f"{best['method']} is best ({v(best)}) but not clearly better than the simple "
                f"baseline {base.iloc[0]['method']} ({v(base.iloc[0])})")  # fmt: skip
    else:
        text = f"use {best['method']} ({v(best)})"
        if len(base):
            text += (f", clearly better than the simple baselines (best "
                     f"{base.iloc[0]['method']}, {v(base.iloc[0])})")  # fmt: skip
    for r in refs.itertuples(index=False):
        if str(r.method).startswith("noise floor"):
            continue
        worse = ranked[(ranked["value"] > r.value) if lower else (ranked["value"] < r.value)]
        worse = worse["method"].tolist()
        if worse:
            text += f"; worse than {r.method} ({v(r)}): {_join(worse)}"
    return text


def _share_errors(population: pd.DataFrame) -> tuple[str, pd.DataFrame] | None:
    full = population[population["group"].isna()]
    if full.empty:
        return None
    option = next(iter(dict.fromkeys(full["option"])))
    err = full[full["option"] == option].assign(
        value=lambda f: 100 * (f["estimate"] - f["truth"]).abs()
    )
    by = err.groupby(["scenario", "method"], sort=False)["value"].mean().reset_index()
    return option, by.assign(ci_low=np.nan, ci_high=np.nan)


def bottom_line(data: RunData) -> list[str]:
    """Plain-language verdicts for the top of the report: per job (imputing respondents,
    estimating the share, simulating groups per split), which method to trust on this
    data, where no method beats the simple baselines, and every method worse than a
    reference; a split on too few questions is called too small to rank."""
    imp_cfg = (data.imputation or {}).get("config") or {}
    sim_cfg = (data.simulation or {}).get("config") or {}
    out = []
    resp = data.table("imputation", "respondent")
    target = imp_cfg.get("target", "the target")
    if resp is not None:
        base = {n for b in BASELINE_MODELS for n in _models(imp_cfg, b)}
        for scenario, part in _log_loss(resp).groupby("scenario", sort=False):
            n = int(part["n_items"].max())
            verdict = _verdict(part, base, lower=lower_is_better(IMPUTATION_METRIC))
            out.append(f"Imputing individual answers to {target} ({scenario}, {n} imputed "
                       f"respondents scored, log loss): {verdict}.")  # fmt: skip
    pop = data.table("imputation", "population")
    shares = None if pop is None else _share_errors(pop)
    if shares is not None:
        option, err = shares
        base = {n for b in BASELINE_MODELS for n in _models(imp_cfg, b)} | {COMPLETE_CASE}
        for scenario, part in err.groupby("scenario", sort=False):
            out.append(f"Estimating the full-sample share of “{option}” ({scenario}, error in "
                       f"points, mean over draws): {_verdict(part, base, ' pts', 1)}.")  # fmt: skip
    overall = data.table("simulation", "overall")
    if overall is not None:
        base = {n for b in BASELINE_MODELS for n in _models(sim_cfg, b)}
        sizes = split_sizes(data.table("simulation", "distributions"))
        tv = overall[overall["metric"] == SIMULATION_METRIC]
        for split in [s for s in SPLIT_LABELS if s in set(tv["split"])]:
            n_text, n_questions = _split_n(sizes, split)
            head = f"Simulating groups, {SPLIT_LABELS[split]} ({n_text or 'TV'}, TV)"
            verdict = _verdict(tv[tv["split"] == split], base,
                               lower=lower_is_better(SIMULATION_METRIC))  # fmt: skip
            if n_questions is not None and n_questions < MIN_RANK_QUESTIONS:
                verdict = f"too few questions to rank methods — as measured, {verdict}"
            out.append(f"{head}: {verdict}.")
    return out
