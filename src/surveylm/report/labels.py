"""What the report calls things: references marked "(ref)", sample sizes, weighting.

A *reference* is a yardstick, not a method a user could pick: the uniform guess, the
sampling-noise floor, and a random share of the real training respondents ("training data
25%", built from raw respondents of every group and question, held-out ones included).
:func:`mark_references` renames them ``"… (ref)"`` in every table of a run, so figures,
tables and findings show the mark and no ranking ever counts them among the methods.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from surveylm.report.data import RunData

__all__ = [
    "MIN_COVERAGE_DRAWS",
    "MIN_RANK_QUESTIONS",
    "REF",
    "is_reference",
    "mark_references",
    "observed_imputed",
    "split_sizes",
    "weighting",
]

#: Suffix of a reference's name.
REF = " (ref)"
#: Registry names of the models that are references when a config runs them as methods.
REFERENCE_MODELS = ("uniform", "training-data")
#: Fewer missing-data draws than this: coverage is "too few draws", not a rate.
MIN_COVERAGE_DRAWS = 10
#: A split whose items come from fewer questions than this is too small to rank methods on.
MIN_RANK_QUESTIONS = 3


def is_reference(name: object) -> bool:
    """Whether a (marked) method name is a reference."""
    return str(name).endswith("(ref)")


def _marked(name: str) -> str:
    return name if is_reference(name) else name + REF


def _rename(cfg: dict[str, Any]) -> dict[str, str]:
    """``{method name: marked name}`` of the config's reference methods (and marks them)."""
    out = {}
    for m in cfg.get("methods") or []:
        if isinstance(m, dict) and m.get("model") in REFERENCE_MODELS and m.get("name"):
            out[str(m["name"])] = _marked(str(m["name"]))
            m["name"] = out[str(m["name"])]
    return out


def mark_references(data: RunData) -> RunData:
    """Rename the reference methods ``"… (ref)"`` in the run's tables and configs (in
    place; returns ``data``). A config's uniform method in a simulation becomes the same
    ``uniform (ref)`` row the evaluation adds itself, so its duplicate rows are dropped."""
    for section in (data.imputation, data.simulation):
        if not section:
            continue
        names = _rename(section.get("config") or {})
        if not names:
            continue
        for key, frame in list(section.items()):
            if not isinstance(frame, pd.DataFrame) or "method" not in frame:
                continue
            renamed = frame.assign(method=frame["method"].replace(names))
            if "reference" in renamed:  # evaluation's own references win over a copy
                ref = renamed["reference"].astype(bool)
                dup = ~ref & renamed["method"].isin(set(renamed.loc[ref, "method"]))
                renamed = renamed[~dup].reset_index(drop=True)
            section[key] = renamed
    return data


def observed_imputed(timings: pd.DataFrame | None) -> pd.DataFrame | None:
    """Per scenario: missing-data draws and respondents observed / imputed per draw."""
    if timings is None or not {"n_train", "n_imputed"} <= set(timings.columns):
        return None
    per = timings.drop_duplicates(["scenario", "rep", "unit"])
    out = per.groupby("scenario", sort=False).agg(
        draws=("unit", "size"), observed=("n_train", "mean"), imputed=("n_imputed", "mean")
    )
    return out.round().astype(int).reset_index()


def split_sizes(distributions: pd.DataFrame | None) -> pd.DataFrame | None:
    """Per simulation split: scored items, questions and groups."""
    if distributions is None or "split" not in distributions:
        return None
    items = distributions.drop_duplicates(["split", "item_id"])
    return items.groupby("split", sort=False).agg(
        items=("item_id", "size"), questions=("question_id", "nunique"), groups=("group", "nunique")
    ).reset_index()


def weighting(data: RunData) -> str:
    """``"survey-weighted"``, ``"unweighted"`` (every weight is 1, or all equal) or ``""``
    (unknown), from the imputed respondents' weights and the groups' n_eff against n."""
    weighted = []
    pred = data.table("imputation", "predictions")
    if pred is not None and "weight" in pred:
        weighted.append(pred["weight"].astype(float).nunique() > 1)
    per_item = (data.simulation or {}).get("per_item")
    if isinstance(per_item, pd.DataFrame) and {"n", "n_eff"} <= set(per_item.columns):
        f = per_item.dropna(subset=["n", "n_eff"])
        if len(f):
            weighted.append(not np.allclose(f["n"].astype(float), f["n_eff"].astype(float)))
    if not weighted:
        return ""
    return "survey-weighted" if any(weighted) else "unweighted"
