"""A group's distribution from a simulation model plus k real respondents of the group.

The simulation benchmark's models predict group distributions p(option | question, group)
from the training half of the respondents; a methodologist usually also has a small
*pilot*: k real answers from members of the group. Prediction-powered inference
(:mod:`surveylm.correct`; Angelopoulos et al. 2023, PPI++ 2024) combines the two into a
share with a valid interval — but only through predictions that *differ between members*:
with the same prediction for every member (a group-level distribution) the rectifier
cancels it exactly and PPI++ returns the pilot's own share (``λ = 0``, effective n = k). So
each member of a group is predicted as the model's distribution for the member's **cell**,
the intersection of every grouping attribute of the config (``party × educ3 × age_group``
for a member of the group "party = Democrat"): the model's knowledge of how the group's
parts differ is what the pilot can leverage. A member whose cell is undefined (an
attribute unanswered) gets the group's own prediction.

For every test cell (question × group, in every split, so unseen questions and unseen
groups too) with at least ``k + MIN_UNLABELLED`` members in the held-out half: ``draws``
times, k members drawn at random are the labelled pilot and the rest of the group the
unlabelled part; the truth is the group's full held-out share (the simulation truth). The
models never saw held-out answers, so no cross-fitting is needed. Reported per split ×
method × k: coverage of the truth by the PPI++ and the pilot-only (classical) intervals
over draws × options, their mean widths and ratio, mean effective sample size, and the TV
distance to the truth of the PPI++ estimate, of the pilot alone and of the model alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from surveylm.correct import normal_quantile, ppi_shares
from surveylm.errors import ConfigError
from surveylm.items import Group, ItemSet, build_group_items
from surveylm.models.base import Predictions, derive_seed
from surveylm.splits import split_respondents
from surveylm.survey import Survey

__all__ = ["COLUMNS", "COMMON_SHARE", "MIN_UNLABELLED", "cell_attributes", "pilot_rows",
           "summarise_pilot"]  # fmt: skip

COLUMNS = ("split", "method", "item_id", "question_id", "group", "k", "draw", "option",
           "truth", "model", "estimate", "lower", "upper", "lam", "classical",
           "classical_lower", "classical_upper", "effective_n", "n_group")  # fmt: skip
#: Options at least this common in the truth count towards ``coverage_common``.
COMMON_SHARE = 0.1
#: A test cell needs at least ``k + MIN_UNLABELLED`` members for a pilot of size k.
MIN_UNLABELLED = 10


def cell_attributes(group_by: list[Any]) -> list[str]:
    """Every grouping attribute of a config, once each, in order of first use."""
    attrs: list[str] = []
    for spec in group_by:
        for a in [spec] if isinstance(spec, str) else list(spec):
            if a not in attrs:
                attrs.append(str(a))
    return attrs


def held_out_half(config: Any, survey: Survey) -> Survey:
    """The respondents whose group distributions are the simulation truth (the same split
    as :func:`surveylm.experiments.simulation.build_split`)."""
    if config.unseen_survey is not None:
        raise ConfigError("pilot: needs respondents of the surveyed population (a survey "
                          "split in halves, not an unseen survey)")  # fmt: skip
    return split_respondents(survey, config.test_fraction, seed=config.seed)[1]


def cell_items(survey: Survey, questions: list[str], attrs: list[str]) -> ItemSet:
    """Group items of every question × cell (intersection of ``attrs``) with a member."""
    return build_group_items(survey, questions, by=[attrs], min_n=1)


def member_cells(survey: Survey, attrs: list[str]) -> np.ndarray:
    """Each respondent's cell label (as :class:`~surveylm.items.Group` writes it), or
    ``""`` when an attribute is unanswered."""
    answers = [survey.answers(a) for a in attrs]
    out = []
    for i in range(survey.n_respondents):
        vals = [a.iloc[i] for a in answers]
        if any(pd.isna(v) for v in vals):
            out.append("")
            continue
        out.append(Group.from_mapping(dict(zip(attrs, map(str, vals), strict=True))).label)
    return np.asarray(out, dtype=object)


def pilot_rows(
    name: str,
    group_pred: Predictions,
    cell_pred: Predictions,
    tests: dict[str, ItemSet],
    survey: Survey,
    cells: np.ndarray,
    *,
    sizes: list[int],
    draws: int,
    seed: int,
    level: float = 0.95,
) -> pd.DataFrame:
    """One row per split × test cell × k × draw × option (see module docstring).

    Args:
        name: The method's display name.
        group_pred: The method's predictions of the test cells (the group distributions).
        cell_pred: Its predictions of the cell items (:func:`cell_items`).
        tests: Split → test items.
        survey: The held-out half (the truth's respondents).
        cells: :func:`member_cells` of ``survey``.
        sizes, draws, seed, level: Pilot sizes k, draws per size, seed, interval level.

    Returns:
        The columns of :data:`COLUMNS` (``model``: the method's group distribution;
        ``classical``: the pilot's own share).
    """
    w_all = survey.weights.to_numpy(dtype=np.float64)
    g_dist = dict(zip(group_pred.item_ids, group_pred.distributions, strict=True))
    c_dist = dict(zip(cell_pred.item_ids, cell_pred.distributions, strict=True))
    cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    for n_split, (split, items) in enumerate(tests.items()):
        frame = items.frame
        for i in range(len(items)):
            meta = frame.iloc[i]
            qid, iid = str(meta["question_id"]), str(meta["item_id"])
            options = items.item_question(i).options
            codes = survey.codes(qid)
            members = Group.from_mapping(meta["context"]).mask(survey) & (codes >= 0)
            idx = np.flatnonzero(members)
            own = np.asarray(g_dist[iid], dtype=np.float64)
            p = np.vstack([np.asarray(c_dist.get(f"{qid}|{c}", own), dtype=np.float64)
                           if c else own for c in cells[idx]])  # fmt: skip
            y, w = codes[idx], w_all[idx]
            truth = np.bincount(y, weights=w, minlength=len(options)) / w.sum()
            n_opt = len(options)
            for k in sizes:
                if len(idx) < k + MIN_UNLABELLED:
                    continue
                for d in range(draws):
                    rng = np.random.default_rng(derive_seed(seed, k, d, n_split, i))
                    lab = np.zeros(len(idx), dtype=bool)
                    lab[rng.choice(len(idx), k, replace=False)] = True
                    s = ppi_shares(y[lab], p[lab], p[~lab], labelled_weights=w[lab],
                                   unlabelled_weights=w[~lab], options=options,
                                   level=level)  # fmt: skip
                    z = normal_quantile(level, s.df)
                    for col, v in (
                        ("split", split), ("method", name), ("item_id", iid),
                        ("question_id", qid), ("group", meta["group"]), ("k", k),
                        ("draw", d), ("n_group", len(idx)),
                    ):
                        cols[col].append([v] * n_opt)
                    for col, v in (
                        ("option", options), ("truth", truth), ("model", own),
                        ("estimate", s.estimate), ("lower", s.lower), ("upper", s.upper),
                        ("lam", s.lam), ("classical", s.classical),
                        ("classical_lower", np.clip(s.classical - z * s.classical_se, 0, 1)),
                        ("classical_upper", np.clip(s.classical + z * s.classical_se, 0, 1)),
                        ("effective_n", s.effective_n),
                    ):  # fmt: skip
                        cols[col].append(list(v))
    return pd.DataFrame({c: [x for part in v for x in part] for c, v in cols.items()},
                        columns=list(COLUMNS))  # fmt: skip


def summarise_pilot(rows: pd.DataFrame) -> pd.DataFrame:
    """Per split × method × k, over ``cells`` test cells: ``coverage`` (PPI++) and
    ``classical_coverage`` over draws × options; ``coverage_common`` (PPI++, options whose
    true share is at least :data:`COMMON_SHARE`: Wald-type intervals, the pilot's alone
    included, undercover rarer options at small k, where a pilot often has none of their
    answers); mean ``width`` / ``classical_width`` and their ``width_ratio``; mean
    ``effective_n`` and ``lam``; and mean TV to the truth of the PPI++ estimate
    (``tv_ppi``), the pilot alone (``tv_pilot``) and the model alone (``tv_model``)."""
    cols = ["split", "method", "k", "cells", "coverage", "classical_coverage",
            "coverage_common", "width",
            "classical_width", "width_ratio", "effective_n", "lam", "tv_ppi", "tv_pilot",
            "tv_model"]  # fmt: skip
    if rows.empty:
        return pd.DataFrame(columns=cols)
    r = rows.assign(
        covered=(rows["lower"] <= rows["truth"]) & (rows["truth"] <= rows["upper"]),
        classical_covered=(rows["classical_lower"] <= rows["truth"])
        & (rows["truth"] <= rows["classical_upper"]),
        width=rows["upper"] - rows["lower"],
        classical_width=rows["classical_upper"] - rows["classical_lower"],
        covered_common=lambda r: r["covered"].astype(float).where(r["truth"] >= COMMON_SHARE),
        ae_ppi=(rows["estimate"] - rows["truth"]).abs() / 2,
        ae_pilot=(rows["classical"] - rows["truth"]).abs() / 2,
        ae_model=(rows["model"] - rows["truth"]).abs() / 2,
    )
    keys = ["split", "method", "k"]
    # TV of one draw = half the summed absolute errors over its options.
    tv = r.groupby([*keys, "item_id", "draw"], sort=False)[["ae_ppi", "ae_pilot", "ae_model"]]
    tv = tv.sum().groupby(keys, sort=False).mean()
    tv.columns = ["tv_ppi", "tv_pilot", "tv_model"]
    g = r.groupby(keys, sort=False)
    out = g.agg(
        cells=("item_id", "nunique"), coverage=("covered", "mean"),
        classical_coverage=("classical_covered", "mean"), width=("width", "mean"),
        coverage_common=("covered_common", "mean"),
        classical_width=("classical_width", "mean"), effective_n=("effective_n", "mean"),
        lam=("lam", "mean"),
    )  # fmt: skip
    out["width_ratio"] = out["width"] / out["classical_width"]
    out = out.join(tv)
    return out.reset_index()[cols]
