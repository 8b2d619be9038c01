"""ItemSet: the one table everything flows through.

An *item* is one prediction task, ``p(option | question, context)``:

* a **respondent item** — one respondent × one target question; the context is that
  respondent's answers to chosen feature questions (and covariates), the target a one-hot
  distribution (or unknown, for a respondent to impute);
* a **group item** — one question × one group ("PID = Strong Democrat & educ = College
  degree"); the target is the group's *weighted* answer distribution, with the unweighted
  n and Kish's effective n. Cells with fewer than ``min_n`` respondents are suppressed
  (survey practice and a privacy floor) and counted in :attr:`ItemSet.summary`.

Forward KL to a one-hot target is cross-entropy, so the same training objective serves
both kinds (see DESIGN.md).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from surveylm.distribution_checks import check_distribution, one_hot
from surveylm.errors import DataError, FileFormatError, preview, where
from surveylm.survey import Question, Survey, kish_effective_n

#: Default minimum unweighted cell size below which group items are suppressed.
DEFAULT_MIN_N = 30

ITEM_COLUMNS = [
    "item_id", "kind", "question_id", "source", "respondent_id", "group_var", "group",
    "context", "target", "n", "n_eff", "weight",
]  # fmt: skip


@dataclass(frozen=True)
class Group:
    """A subpopulation defined by ``attribute = value(s)`` conditions, all of which hold.

    ``Group.of(PID=["Strong Democrat", "Weak Democrat"], educ="College degree")`` is the
    intersection "PID ∈ {Strong Democrat, Weak Democrat} & educ = College degree".
    """

    conditions: tuple[tuple[str, tuple[str, ...]], ...]
    name: str | None = None

    @classmethod
    def of(cls, name: str | None = None, **conditions: str | Sequence[str]) -> Group:
        """Build a group from keyword conditions ``attribute=value`` or ``=[values]``."""
        return cls.from_mapping(conditions, name=name)

    @classmethod
    def from_mapping(
        cls, conditions: Mapping[str, str | Sequence[str]], name: str | None = None
    ) -> Group:
        """Build a group from a mapping ``{attribute: value or [values]}``."""
        if not conditions:
            raise DataError("a group needs at least one attribute = value condition")
        conds = []
        for attr, vals in conditions.items():
            values = (vals,) if isinstance(vals, str) else tuple(str(v) for v in vals)
            if not values:
                raise DataError(f"group condition on '{attr}' lists no values")
            conds.append((str(attr), values))
        return cls(tuple(conds), name)

    @property
    def attributes(self) -> tuple[str, ...]:
        """The attributes the group conditions on."""
        return tuple(a for a, _ in self.conditions)

    @property
    def group_var(self) -> str:
        """The grouping variable(s), e.g. ``"PID×educ"`` for an intersection."""
        return "×".join(self.attributes)

    @property
    def label(self) -> str:
        """Human-readable label (the ``name`` if given)."""
        if self.name:
            return self.name
        parts = []
        for attr, vals in self.conditions:
            parts.append(
                f"{attr} = {vals[0]}" if len(vals) == 1 else f"{attr} ∈ {{{', '.join(vals)}}}"
            )
        return " & ".join(parts)

    def as_context(self) -> dict[str, list[str]]:
        """The structured context stored in group items."""
        return {attr: list(vals) for attr, vals in self.conditions}

    def mask(self, survey: Survey) -> np.ndarray:
        """Boolean mask of the survey's respondents who belong to the group."""
        keep = np.ones(survey.n_respondents, dtype=bool)
        for attr, vals in self.conditions:
            q = survey.question(attr)
            for v in vals:
                q.index(v)  # raises a clear error for a value that is not an option
            keep &= survey.answers(attr).isin(vals).to_numpy()
        return keep


class ItemSet:
    """A table of items (see module docstring) plus the questions they refer to.

    Attributes:
        frame: One row per item with the columns of :data:`ITEM_COLUMNS`. ``context`` is
            a dict, ``target`` a float array over the question's options (``None`` when
            unknown, e.g. a respondent to impute).
        questions: Every question referenced — targets and respondent features.
        summary: Facts about how the set was built (suppressed cells, ``min_n``...).
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        questions: Mapping[str, Question],
        summary: Mapping[str, Any] | None = None,
    ) -> None:
        missing = [c for c in ITEM_COLUMNS if c not in frame.columns]
        if missing:
            raise DataError(f"item table lacks columns {preview(missing)}")
        self.frame = frame[ITEM_COLUMNS].reset_index(drop=True)
        self.questions = dict(questions)
        self.summary = dict(summary or {})
        if self.frame["item_id"].duplicated().any():
            dup = self.frame.loc[self.frame["item_id"].duplicated(), "item_id"].tolist()
            raise DataError(f"duplicate item ids {preview(dup)}")
        unknown = set(self.frame["question_id"]) - set(self.questions)
        if unknown:
            raise DataError(f"items refer to unknown questions {preview(sorted(unknown))}")
        for qid, target, iid in zip(
            self.frame["question_id"], self.frame["target"], self.frame["item_id"], strict=True
        ):
            if target is not None:
                check_distribution(
                    target,
                    self.questions[qid].n_options,
                    context=where(item=iid, question=qid),
                    renormalise=False,
                )

    # -- access ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        kinds = self.frame["kind"].value_counts().to_dict()
        return (
            f"ItemSet(items={len(self)}, kinds={kinds}, "
            f"questions={self.frame['question_id'].nunique()})"
        )

    @property
    def item_ids(self) -> np.ndarray:
        """The item ids, in order."""
        return self.frame["item_id"].to_numpy()

    @property
    def question_ids(self) -> list[str]:
        """Target question ids, in order of first appearance."""
        return list(dict.fromkeys(self.frame["question_id"]))

    def item_question(self, i: int) -> Question:
        """The target question of item ``i``."""
        return self.questions[self.frame["question_id"].iat[i]]

    def item_questions(self) -> list[Question]:
        """The target question of every item, in order."""
        return [self.questions[q] for q in self.frame["question_id"]]

    @property
    def targets(self) -> list[np.ndarray | None]:
        """Target distributions (``None`` where unknown)."""
        return list(self.frame["target"])

    @property
    def has_target(self) -> np.ndarray:
        """Boolean mask of items whose target is known."""
        return np.array([t is not None for t in self.frame["target"]], dtype=bool)

    @property
    def contexts(self) -> list[dict[str, Any]]:
        """Structured contexts (feature → value, or attribute → values)."""
        return list(self.frame["context"])

    @property
    def kinds(self) -> set[str]:
        """The item kinds present (``"respondent"``, ``"group"``)."""
        return set(self.frame["kind"])

    def context_text(self, i: int) -> str:
        """Plain-text rendering of item ``i``'s context (one ``label: value`` line each)."""
        row = self.frame.iloc[i]
        lines = []
        for key, value in row["context"].items():
            label = self.questions[key].display_label if key in self.questions else key
            shown = ", ".join(value) if isinstance(value, list) else _fmt_value(value)
            lines.append(f"{label}: {shown}")
        return "\n".join(lines)

    # -- selection -------------------------------------------------------------------
    def subset(self, rows: np.ndarray | Sequence[int] | pd.Series) -> ItemSet:
        """The items selected by a boolean mask or integer positions."""
        rows = np.asarray(rows)
        frame = self.frame.loc[rows] if rows.dtype == bool else self.frame.iloc[rows]
        return ItemSet._trusted(frame.reset_index(drop=True), self.questions, self.summary)

    def filter(
        self,
        *,
        questions: Iterable[str] | None = None,
        kind: str | None = None,
        group_vars: Iterable[str] | None = None,
        known_target: bool | None = None,
    ) -> ItemSet:
        """Items matching all of the given criteria."""
        keep = np.ones(len(self), dtype=bool)
        if questions is not None:
            keep &= self.frame["question_id"].isin(list(questions)).to_numpy()
        if kind is not None:
            keep &= (self.frame["kind"] == kind).to_numpy()
        if group_vars is not None:
            keep &= self.frame["group_var"].isin(list(group_vars)).to_numpy()
        if known_target is not None:
            keep &= self.has_target == known_target
        return self.subset(keep)

    @staticmethod
    def concat(sets: Sequence[ItemSet]) -> ItemSet:
        """Stack item sets (item ids must stay unique)."""
        if not sets:
            raise DataError("nothing to concatenate")
        questions: dict[str, Question] = {}
        for s in sets:
            for qid, q in s.questions.items():
                if qid in questions and questions[qid] != q:
                    raise DataError(f"{where(question=qid)}defined differently in two item sets")
                questions[qid] = q
        frame = pd.concat([s.frame for s in sets], ignore_index=True)
        return ItemSet(frame, questions, {"parts": [s.summary for s in sets]})

    @classmethod
    def _trusted(
        cls, frame: pd.DataFrame, questions: Mapping[str, Question], summary: Mapping[str, Any]
    ) -> ItemSet:
        """Build without re-validating (for subsets of a validated set)."""
        out = object.__new__(cls)
        out.frame = frame
        out.questions = dict(questions)
        out.summary = dict(summary)
        return out

    # -- files -----------------------------------------------------------------------
    def to_parquet(self, path: str | Path) -> Path:
        """Write the items and their questions to one Parquet file (atomically)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from surveylm.io.atomic import atomic_path

        frame = self.frame.copy()
        frame["context"] = [json.dumps(c, ensure_ascii=False) for c in frame["context"]]
        frame["target"] = [None if t is None else [float(x) for x in t] for t in frame["target"]]
        table = pa.Table.from_pandas(frame, preserve_index=False)
        meta = {
            b"surveylm.questions": json.dumps(
                [q.to_dict() for q in self.questions.values()], ensure_ascii=False
            ).encode(),
            b"surveylm.summary": json.dumps(self.summary, default=str).encode(),
        }
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return Path(path)

    @classmethod
    def read_parquet(cls, path: str | Path) -> ItemSet:
        """Read an item set written by :meth:`to_parquet`."""
        import pyarrow.parquet as pq

        path = Path(path)
        try:
            table = pq.read_table(path)
        except FileNotFoundError:
            raise FileFormatError(f"{where(file=path)}no such file") from None
        except Exception as exc:  # pyarrow raises several types for corrupt files
            msg = f"{where(file=path)}not a readable Parquet file ({exc})"
            raise FileFormatError(msg) from None
        meta = table.schema.metadata or {}
        if b"surveylm.questions" not in meta:
            msg = f"{where(file=path)}not a surveylm item set (no question metadata)"
            raise FileFormatError(msg)
        questions = {
            d["id"]: Question.from_dict(d) for d in json.loads(meta[b"surveylm.questions"])
        }
        summary = json.loads(meta.get(b"surveylm.summary", b"{}"))
        frame = table.to_pandas()
        frame["context"] = [json.loads(c) for c in frame["context"]]
        frame["target"] = [
            None if t is None else np.asarray(t, dtype=np.float64) for t in frame["target"]
        ]
        for col in ("respondent_id", "group_var", "group"):
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
        return cls(frame, questions, summary)


# -- builders ------------------------------------------------------------------------
def build_respondent_items(
    survey: Survey,
    targets: str | Sequence[str],
    features: Sequence[str],
    *,
    include_unanswered: bool = False,
) -> ItemSet:
    """One item per respondent × target question, with the respondent's features as context.

    Args:
        survey: The survey.
        targets: Question id(s) to predict.
        features: Question ids and/or covariate columns describing each respondent. A
            missing feature answer is left out of that respondent's context.
        include_unanswered: Also emit items (with unknown target) for respondents who did
            not answer the target — the ones an imputation fills in.

    Raises:
        DataError: unknown question or feature, a target used as its own feature, or a
            target nobody answered.
    """
    targets = [targets] if isinstance(targets, str) else list(targets)
    for f in features:
        if f not in survey.questions and f not in survey.covariates:
            raise DataError(
                f"feature '{f}' is neither a question nor a covariate of survey '{survey.name}'"
            )
    rows: list[dict[str, Any]] = []
    feature_cols = {f: survey.data[f].astype(object).to_numpy() for f in features}
    rids = [str(r) for r in survey.data.index]
    weights = survey.weights.to_numpy()
    for qid in targets:
        q = survey.question(qid)
        if qid in features:
            raise DataError(f"{where(question=qid)}cannot be both a target and a feature")
        codes = survey.codes(qid)
        if not (codes >= 0).any():
            raise DataError(f"{where(question=qid)}no valid answers in survey '{survey.name}'")
        for r, rid in enumerate(rids):
            if codes[r] < 0 and not include_unanswered:
                continue
            context = {
                f: _plain(col[r]) for f, col in feature_cols.items() if not _is_missing(col[r])
            }
            rows.append({
                "item_id": f"{qid}|r={rid}", "kind": "respondent", "question_id": qid,
                "source": q.source or survey.name, "respondent_id": rid, "group_var": None,
                "group": None, "context": context,
                "target": one_hot(int(codes[r]), q.n_options) if codes[r] >= 0 else None,
                "n": 1, "n_eff": 1.0, "weight": float(weights[r]),
            })  # fmt: skip
    questions = {qid: survey.questions[qid] for qid in targets}
    questions.update({f: survey.questions[f] for f in features if f in survey.questions})
    labels = survey.covariate_labels
    summary = {
        "kind": "respondent",
        "survey": survey.name,
        "targets": targets,
        "features": list(features),
        "feature_labels": {f: labels[f] for f in features if f in labels},
        "items": len(rows),
    }
    return ItemSet(item_frame(rows), questions, summary)


def build_group_items(
    survey: Survey,
    questions: Sequence[str] | None = None,
    *,
    by: str | Sequence[str | Sequence[str]] | None = None,
    groups: Sequence[Group] | None = None,
    min_n: int = DEFAULT_MIN_N,
    weighted: bool = True,
) -> ItemSet:
    """One item per question × group, with the group's (weighted) answer distribution.

    Args:
        survey: The survey.
        questions: Target question ids (default: every question not used to define groups).
        by: Grouping variables; each entry is one attribute (``"PID"``) or an intersection
            (``["PID", "educ"]``), and every combination of their options becomes a group.
        groups: Explicit groups (see :class:`Group`), in addition to ``by``.
        min_n: Cells with fewer respondents answering are suppressed (counted in
            ``summary["suppressed"]``).
        weighted: Use the survey weights (``False``: plain shares).

    Raises:
        DataError: no grouping given, an explicit group with no respondents, a question
            nobody answered, or an unknown question/attribute/value.
    """
    if by is None and not groups:
        raise DataError("build_group_items needs `by` (grouping variables) or `groups`")
    all_groups: list[Group] = []
    explicit = list(groups or [])
    for spec in [by] if isinstance(by, str) else list(by or []):
        attrs = [spec] if isinstance(spec, str) else list(spec)
        opts = [survey.question(a).options for a in attrs]
        for combo in itertools.product(*opts):
            all_groups.append(Group(tuple((a, (v,)) for a, v in zip(attrs, combo, strict=True))))
    for g in explicit:
        if not g.mask(survey).any():
            raise DataError(f"group '{g.label}' is empty: no respondent matches it")
    all_groups += explicit
    labels = [g.label for g in all_groups]
    dup = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dup:
        raise DataError(f"duplicate groups {preview(dup)}")
    used = {a for g in all_groups for a in g.attributes}
    qids = (
        list(questions)
        if questions is not None
        else [q for q in survey.question_ids if q not in used]
    )
    survey_w = survey.weights.to_numpy() if weighted else np.ones(survey.n_respondents)
    masks = [g.mask(survey) for g in all_groups]
    rows: list[dict[str, Any]] = []
    suppressed: list[dict[str, Any]] = []
    for qid in qids:
        q = survey.question(qid)
        codes = survey.codes(qid)
        answered = codes >= 0
        if not answered.any():
            raise DataError(f"{where(question=qid)}no valid answers in survey '{survey.name}'")
        for g, mask in zip(all_groups, masks, strict=True):
            keep = mask & answered
            n = int(keep.sum())
            w = survey_w[keep]
            if n < min_n or w.sum() <= 0:
                suppressed.append({"question": qid, "group": g.label, "n": n})
                continue
            shares = np.bincount(codes[keep], weights=w, minlength=q.n_options) / w.sum()
            rows.append({
                "item_id": f"{qid}|{g.label}", "kind": "group", "question_id": qid,
                "source": q.source or survey.name, "respondent_id": None,
                "group_var": g.group_var, "group": g.label, "context": g.as_context(),
                "target": shares, "n": n, "n_eff": kish_effective_n(w),
                "weight": float(w.sum()),
            })  # fmt: skip
    qset = {qid: survey.questions[qid] for qid in qids}
    qset.update({a: survey.questions[a] for a in used})
    summary = {
        "kind": "group", "survey": survey.name, "min_n": min_n, "weighted": weighted,
        "groups": len(all_groups), "questions": len(qids), "items": len(rows),
        "suppressed": len(suppressed), "suppressed_cells": suppressed,
    }  # fmt: skip
    return ItemSet(item_frame(rows), qset, summary)


def feature_labels(items: ItemSet) -> dict[str, str]:
    """Display names of the items' covariate features (the survey's
    :attr:`~surveylm.survey.Survey.covariate_labels`, kept in ``summary`` so they survive
    Parquet files, subsets and concatenation)."""

    def collect(summary: Mapping[str, Any]) -> dict[str, str]:
        out: dict[str, str] = {}
        for part in summary.get("parts", []):
            out.update(collect(part))
        out.update(summary.get("feature_labels") or {})
        return out

    return collect(items.summary)


def item_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The item table of ``rows`` (dicts with the keys of :data:`ITEM_COLUMNS`), typed."""
    frame = pd.DataFrame(rows, columns=ITEM_COLUMNS)
    for col in (
        "item_id",
        "kind",
        "question_id",
        "source",
        "respondent_id",
        "group_var",
        "group",
        "context",
        "target",
    ):
        frame[col] = frame[col].astype(object)
    frame["n"] = frame["n"].astype(np.int64)
    frame["n_eff"] = frame["n_eff"].astype(np.float64)
    frame["weight"] = frame["weight"].astype(np.float64)
    return frame


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA


def _plain(v: Any) -> Any:
    """Numpy scalars → Python scalars (so contexts serialise as JSON)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)
