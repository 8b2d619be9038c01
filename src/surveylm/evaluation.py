"""Evaluate predictions against items: per item, question and group, and overall with CIs.

:func:`evaluate` scores any number of models' :class:`~surveylm.models.base.Predictions`
on the items of an :class:`~surveylm.items.ItemSet` whose target is known, with the
metrics of :mod:`surveylm.metrics`, and always reports two reference points beside them
(DESIGN.md): the **uniform** distribution, and — for group items — the **sampling-noise
floor**, the expected score of a model that knows each group's true distribution, given
that the human target is a finite sample (multinomial draws of the group's Kish n_eff).

Group items get the distribution metrics (means over items, every item counting once, as
in SubPOP; WD over ordinal items only). Respondent items get the survey-weighted
respondent metrics; when several target questions are pooled, a class is a
(question, option) pair, so balanced accuracy and macro F1 equal scikit-learn's on those
pairs. Confidence intervals are percentile bootstraps with the same resamples for every
model (paired), so differences between rows are comparable: respondents are resampled for
respondent items; group items are resampled by **question** (a cluster bootstrap: the groups
of one question share its difficulty, so 12 items from 2 questions are closer to 2
observations than to 12) when they span two or more questions, else item by item.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from surveylm.distribution_checks import uniform
from surveylm.errors import DataError
from surveylm.items import ItemSet
from surveylm.metrics import (
    DISTRIBUTION_METRICS,
    RESPONDENT_METRICS,
    class_metrics,
    distribution_metrics,
    floor_sample_size,
    noise_floor_matrix,
    respondent_metrics,
    respondent_values,
)
from surveylm.metrics.bootstrap import bootstrap_means, count_chunks, percentile_interval
from surveylm.metrics.registry import header as metric_header
from surveylm.models.base import Predictions

#: Model name of the uniform-distribution reference row.
REFERENCE_UNIFORM = "uniform (ref)"
#: Model name of the sampling-noise-floor reference row (group items only).
REFERENCE_NOISE_FLOOR = "noise floor (ref)"
REFERENCES = (REFERENCE_UNIFORM, REFERENCE_NOISE_FLOOR)

OVERALL_COLUMNS = ["model", "kind", "metric", "value", "ci_low", "ci_high", "n_items", "reference"]
_EMPTY = {
    "per_item": ["model", "item_id", "question_id", "group_var", "group", "n", "n_eff",
                 *DISTRIBUTION_METRICS, "entropy", "format_mass"],
    "per_respondent": ["model", "item_id", "question_id", "respondent_id", "weight", "answer",
                       "predicted", "p_answer", "correct", "log_loss", "brier", "format_mass"],
    "per_group": ["model", "group_var", "group", "metric", "value", "n_items"],
}  # fmt: skip


@dataclass(eq=False)
class Evaluation:
    """Tidy results of :func:`evaluate`.

    Attributes:
        overall: One row per model × metric: ``model, kind, metric, value, ci_low,
            ci_high, n_items, reference`` (``n_items`` = items, or respondents, the
            value is a mean over; ``reference`` marks the uniform / noise-floor rows).
        per_item: Group items: ``model, item_id, question_id, group_var, group, n, n_eff,
            wd, tv, jsd, kl, simbench, entropy, format_mass``.
        per_respondent: Respondent items: ``model, item_id, question_id, respondent_id,
            weight, answer, predicted, p_answer, correct, log_loss, brier, format_mass``.
        per_question: ``model, kind, question_id, metric, value, n_items``.
        per_group: Group items: ``model, group_var, group, metric, value, n_items``.
        settings: ``n_boot, seed, ci, n_floor_draws`` and item counts.
    """

    overall: pd.DataFrame
    per_item: pd.DataFrame
    per_respondent: pd.DataFrame
    per_question: pd.DataFrame
    per_group: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        """Model names in report order (evaluated models first, then references)."""
        return list(dict.fromkeys(self.overall["model"]))

    def value(self, model: str, metric: str) -> float:
        """The overall value of ``metric`` for ``model`` (KeyError if absent)."""
        sel = self.overall[(self.overall["model"] == model) & (self.overall["metric"] == metric)]
        if sel.empty:
            raise KeyError(f"no {metric!r} for model {model!r}")
        return float(sel["value"].iat[0])

    def table(self, *, digits: int = 3, ci: bool = True) -> pd.DataFrame:
        """Wide, human-readable table: rows = models (references last), columns = metrics
        as ``"value [lo, hi]"`` strings; a header carries ``n=`` when every row's mean is
        over the same number of items."""
        cols: dict[str, dict[str, str]] = {}
        for metric, sub in self.overall.groupby("metric", sort=False):
            header = metric_header(str(metric))
            if sub["n_items"].nunique() == 1:
                header += f" (n={int(sub['n_items'].iat[0])})"
            d = 1 if metric == "simbench" else digits
            cols[header] = {
                str(r.model): _cell(r.value, r.ci_low, r.ci_high, d, ci)
                for r in sub.itertuples(index=False)
            }
        out = pd.DataFrame(cols).reindex(self.models)
        out.index.name = "model"
        return out.fillna("")

    def to_files(self, directory: str | Path) -> list[Path]:
        """Write every table as Parquet and CSV, the wide table as CSV and the settings
        as JSON into ``directory`` (each file atomically); returns the paths."""
        from surveylm.io.atomic import atomic_path, atomic_write_text
        from surveylm.io.tables import write_table

        directory = Path(directory)
        paths: list[Path] = []
        for name in ("overall", "per_item", "per_respondent", "per_question", "per_group"):
            paths += write_table(getattr(self, name), directory / name)
        path = directory / "table.csv"
        with atomic_path(path) as tmp:
            self.table().to_csv(tmp)
        paths.append(path)
        settings = json.dumps(self.settings, indent=2, default=str)
        paths.append(atomic_write_text(directory / "settings.json", settings))
        return paths


def evaluate(
    items: ItemSet,
    predictions: Predictions | Sequence[Predictions] | Mapping[str, Predictions],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    include_references: bool = True,
    ci: float = 0.95,
    n_floor_draws: int = 200,
) -> Evaluation:
    """Score predictions on the items whose target is known.

    Args:
        items: The items (group and/or respondent); items without a target are skipped.
        predictions: One model's predictions, a list of them (named by their ``model``),
            or a mapping ``{name: predictions}``. Each must cover every scored item.
        n_boot: Bootstrap resamples for the confidence intervals (0: no intervals).
        seed: Seed of the bootstrap and the noise-floor draws.
        include_references: Add the uniform and noise-floor reference rows.
        ci: Confidence level of the percentile intervals.
        n_floor_draws: Multinomial draws averaged per item for the noise floor.

    Raises:
        DataError: no scored items, duplicate or reserved model names, or predictions
            that miss an item or have the wrong number of options.
    """
    if not 0 < ci < 1 or n_boot < 0 or n_floor_draws < 1:
        raise DataError("need 0 < ci < 1, n_boot >= 0 and n_floor_draws >= 1")
    named = _named(predictions)
    scored = items.filter(known_target=True)
    if len(scored) == 0:
        raise DataError("no items with a known target to evaluate")
    aligned: dict[str, list[np.ndarray]] = {}
    mass: dict[str, np.ndarray | None] = {}
    for name, pred in named.items():
        try:
            a = pred.for_items(scored)
        except DataError as exc:
            raise DataError(f"model '{name}': {exc}") from None
        aligned[name], mass[name] = a.distributions, a.format_mass
    if include_references:
        aligned[REFERENCE_UNIFORM] = [uniform(q.n_options) for q in scored.item_questions()]
        mass[REFERENCE_UNIFORM] = None
    floor_ss, *boot_ss = np.random.SeedSequence(seed).spawn(3)
    kinds = scored.frame["kind"].to_numpy()
    parts = []
    runs = (("group", _evaluate_groups), ("respondent", _evaluate_respondents))
    for (kind, fn), boot_seed in zip(runs, boot_ss, strict=True):
        pos = np.flatnonzero(kinds == kind)
        if pos.size:
            sub = scored.subset(pos)
            preds = {m: [d[i] for i in pos] for m, d in aligned.items()}
            masses = {m: None if v is None else v[pos] for m, v in mass.items()}
            floor_rng = np.random.default_rng(floor_ss) if include_references else None
            parts.append(fn(sub, preds, masses, boot_seed, n_boot, ci, floor_rng, n_floor_draws))
    keys = dict.fromkeys(k for p in parts for k in p)
    frames = {k: pd.concat([p[k] for p in parts if k in p], ignore_index=True) for k in keys}
    overall = frames["overall"]
    overall["reference"] = overall["model"].isin(REFERENCES)
    order = {m: i for i, m in enumerate([*named, *REFERENCES])}
    overall = overall.sort_values("model", key=lambda s: s.map(order), kind="stable")
    settings = {
        "n_boot": n_boot, "seed": seed, "ci": ci, "n_floor_draws": n_floor_draws,
        "items_scored": len(scored), "items_without_target": len(items) - len(scored),
        "models": list(named),
    }  # fmt: skip
    return Evaluation(
        overall=overall[OVERALL_COLUMNS].reset_index(drop=True),
        per_item=frames.get("per_item", pd.DataFrame(columns=_EMPTY["per_item"])),
        per_respondent=frames.get("per_respondent", pd.DataFrame(columns=_EMPTY["per_respondent"])),
        per_question=frames["per_question"],
        per_group=frames.get("per_group", pd.DataFrame(columns=_EMPTY["per_group"])),
        settings=settings,
    )


# -- group items -----------------------------------------------------------------------
def _evaluate_groups(
    items: ItemSet,
    preds: dict[str, list[np.ndarray]],
    mass: dict[str, np.ndarray | None],
    boot_seed: np.random.SeedSequence,
    n_boot: int,
    ci: float,
    floor_rng: np.random.Generator | None,
    n_floor_draws: int,
) -> dict[str, pd.DataFrame]:
    f = items.frame
    qids = f["question_id"].to_numpy()
    names = [*preds, *([REFERENCE_NOISE_FLOOR] if floor_rng is not None else [])]
    values = {
        name: {m: np.full(len(f), np.nan) for m in (*DISTRIBUTION_METRICS, "entropy")}
        for name in names
    }
    mass = {**mass, REFERENCE_NOISE_FLOOR: None}
    sizes = np.array([floor_sample_size(n, e) for n, e in zip(f["n"], f["n_eff"], strict=True)])
    for qid in items.question_ids:
        pos = np.flatnonzero(qids == qid)
        q = items.questions[qid]
        target = np.vstack([f["target"].iat[i] for i in pos])
        for name, dists in preds.items():
            pred = np.vstack([dists[i] for i in pos])
            for m, v in distribution_metrics(target, pred, q.ordinal, context=f"{qid}: ").items():
                values[name][m][pos] = v
            nz = np.where(pred > 0, pred, 1.0)
            values[name]["entropy"][pos] = -(pred * np.log2(nz)).sum(axis=1)
        if floor_rng is not None:
            ordinal = None if q.ordinal is None else np.asarray(q.ordinal)
            floor = noise_floor_matrix(
                target, sizes[pos], ordinal, n_draws=n_floor_draws, rng=floor_rng
            )
            for m, v in floor.items():
                values[REFERENCE_NOISE_FLOOR][m][pos] = v
    keys = f[["item_id", "question_id", "group_var", "group", "n", "n_eff"]]
    per_item = pd.concat(
        [keys.assign(model=name, **vals, format_mass=_mass(mass[name], len(f)))
         for name, vals in values.items()], ignore_index=True,
    )[["model", *keys.columns, *DISTRIBUTION_METRICS, "entropy", "format_mass"]]  # fmt: skip
    # Overall means with paired item bootstrap: one matrix product per chunk of resamples.
    cols = [(name, m) for name in values for m in (*DISTRIBUTION_METRICS, "format_mass")]
    v = np.column_stack([per_item.loc[per_item["model"] == n, m].to_numpy(float) for n, m in cols])
    clusters = qids if len(set(qids)) > 1 else None  # by question where items cluster
    point, low, high, count = bootstrap_means(v, np.ones(len(f)), boot_seed, n_boot, ci, clusters)
    overall = pd.DataFrame({
        "model": [c[0] for c in cols], "kind": "group", "metric": [c[1] for c in cols],
        "value": point, "ci_low": low, "ci_high": high, "n_items": count,
    })  # fmt: skip
    overall = overall[overall["n_items"] > 0]
    tidy = per_item.melt(
        id_vars=["model", "question_id", "group_var", "group"],
        value_vars=[*DISTRIBUTION_METRICS, "format_mass"],
        var_name="metric",
    )
    return {
        "overall": overall,
        "per_item": per_item,
        "per_question": _means(tidy, ["model", "question_id", "metric"]).assign(kind="group")[
            ["model", "kind", "question_id", "metric", "value", "n_items"]
        ],
        "per_group": _means(tidy, ["model", "group_var", "group", "metric"]),
    }


def _means(tidy: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    out = tidy.groupby(keys, sort=False, dropna=False)["value"].agg(["mean", "count"])
    out = out.reset_index().rename(columns={"mean": "value", "count": "n_items"})
    return out[out["n_items"] > 0].reset_index(drop=True)


def _mass(m: np.ndarray | None, n: int) -> np.ndarray:
    return np.full(n, np.nan) if m is None else np.asarray(m, dtype=float)


# -- respondent items ------------------------------------------------------------------
def _evaluate_respondents(
    items: ItemSet,
    preds: dict[str, list[np.ndarray]],
    mass: dict[str, np.ndarray | None],
    boot_seed: np.random.SeedSequence,
    n_boot: int,
    ci: float,
    floor_rng: np.random.Generator | None,
    n_floor_draws: int,
) -> dict[str, pd.DataFrame]:
    f = items.frame
    n = len(f)
    qids = f["question_id"].to_numpy()
    w = f["weight"].to_numpy(float)
    offsets, n_classes = {}, 0
    for qid in items.question_ids:
        offsets[qid] = n_classes
        n_classes += items.questions[qid].n_options
    y_local = np.array([int(np.argmax(t)) for t in f["target"]])
    y = y_local + np.array([offsets[q] for q in qids])
    rows, per_question, overall = [], [], []
    onehot_y = _onehot(y, n_classes)
    for name, dists in preds.items():
        fmass = mass[name]
        pred, correct, ll, brier = (np.zeros(n, int), np.zeros(n), np.zeros(n), np.zeros(n))
        p_ans = np.zeros(n)
        for qid in items.question_ids:
            pos = np.flatnonzero(qids == qid)
            q = np.vstack([dists[i] for i in pos])
            vals = respondent_values(y_local[pos], q)
            pred[pos] = vals["pred"] + offsets[qid]
            correct[pos], ll[pos], brier[pos] = vals["correct"], vals["log_loss"], vals["brier"]
            p_ans[pos] = q[np.arange(len(pos)), y_local[pos]]
            for metric, value in respondent_metrics(y_local[pos], q, w[pos]).items():
                per_question.append((name, "respondent", qid, metric, value, len(pos)))
            if fmass is not None:
                fm = float(np.mean(fmass[pos]))
                per_question.append((name, "respondent", qid, "format_mass", fm, len(pos)))
        labels = [items.questions[q].options for q in qids]
        rows.append(pd.DataFrame({
            "model": name, "item_id": f["item_id"], "question_id": qids,
            "respondent_id": f["respondent_id"], "weight": w,
            "answer": [o[k] for o, k in zip(labels, y_local, strict=True)],
            "predicted": [o[k - offsets[q]] for o, k, q in zip(labels, pred, qids, strict=True)],
            "p_answer": p_ans, "correct": correct, "log_loss": ll, "brier": brier,
            "format_mass": _mass(mass[name], n),
        }))  # fmt: skip
        onehot_pred = _onehot(pred, n_classes)
        reps: dict[str, list[np.ndarray]] = {m: [] for m in RESPONDENT_METRICS}
        for counts in [np.ones((1, n)), *count_chunks(n, n_boot, boot_seed)]:
            wb = counts * w
            total = wb.sum(axis=1)
            t = (onehot_y.T @ wb.T).T
            tp = (onehot_y.T @ (wb * correct).T).T
            pr = (onehot_pred.T @ wb.T).T
            present = ((onehot_y + onehot_pred).T @ counts.T).T > 0
            bal, mf1 = class_metrics(tp, t, pr, present)
            reps["accuracy"].append(np.clip(wb @ correct / total, 0.0, 1.0))
            reps["balanced_accuracy"].append(bal)
            reps["macro_f1"].append(mf1)
            reps["log_loss"].append(wb @ ll / total)
            reps["brier"].append(wb @ brier / total)
        for metric, chunks in reps.items():
            allv = np.concatenate(chunks)
            low, high = percentile_interval(allv[1:, None], ci)
            overall.append((name, "respondent", metric, allv[0], low[0], high[0], n))
        if fmass is not None:
            point, low, high, count = bootstrap_means(
                fmass[:, None], np.ones(n), boot_seed, n_boot, ci
            )
            overall.append((name, "respondent", "format_mass", point[0], low[0], high[0], count[0]))
    return {
        "overall": pd.DataFrame(overall, columns=OVERALL_COLUMNS[:-1]),
        "per_respondent": pd.concat(rows, ignore_index=True),
        "per_question": pd.DataFrame(
            per_question, columns=["model", "kind", "question_id", "metric", "value", "n_items"]
        ),
    }


def _onehot(labels: np.ndarray, n_classes: int) -> sp.csr_matrix:
    n = len(labels)
    return sp.csr_matrix((np.ones(n), (np.arange(n), labels)), shape=(n, n_classes))


# -- helpers ---------------------------------------------------------------------------
def _named(
    predictions: Predictions | Sequence[Predictions] | Mapping[str, Predictions],
) -> dict[str, Predictions]:
    if isinstance(predictions, Predictions):
        pairs = [(predictions.model or "model", predictions)]
    elif isinstance(predictions, Mapping):
        pairs = [(str(k), v) for k, v in predictions.items()]
    else:
        pairs = [(p.model or f"model {i + 1}", p) for i, p in enumerate(predictions)]
    if not pairs:
        raise DataError("no predictions to evaluate")
    names = [n for n, _ in pairs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(
            f"several predictions are named {dup}; pass a mapping {{name: predictions}}"
        )
    clash = sorted(set(names) & set(REFERENCES))
    if clash:
        raise DataError(f"model names {clash} are reserved for the reference rows")
    for name, p in pairs:
        if not isinstance(p, Predictions):
            raise DataError(f"model '{name}': expected Predictions, got {type(p).__name__}")
    return dict(pairs)


def _cell(value: float, low: float, high: float, digits: int, ci: bool) -> str:
    if not np.isfinite(value):
        return "n/a"

    def fmt(x: float) -> str:
        return f"{x + 0.0:.{digits}f}".replace("-0." + "0" * digits, "0." + "0" * digits)

    text = fmt(value)
    if ci and np.isfinite(low) and np.isfinite(high):
        text += f" [{fmt(low)}, {fmt(high)}]"
    return text
