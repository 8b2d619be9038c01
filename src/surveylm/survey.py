"""Questions and surveys: the data model everything else is built on.

A :class:`Question` is a closed-form survey question: its text, its answer options in
codebook order, and — for ordinal questions — the numeric value of each option (used
by the Wasserstein distance; options with a *negative* value such as "Don't know" are
non-substantive and dropped by ordinal metrics, as in SubPOP/OpinionQA).

A :class:`Survey` holds one row per respondent: the answers to its questions as
categorical columns (missing = not answered), optional covariates (e.g. numeric age),
and survey weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from surveylm.errors import CodebookError, DataError, preview, where


@dataclass(frozen=True)
class Question:
    """A closed-form survey question.

    Attributes:
        id: Unique identifier (column name in the survey data).
        text: The question as asked.
        options: Answer options in codebook order.
        ordinal: Numeric value of each option for ordinal questions, ``None`` for nominal
            ones. Negative values mark non-substantive options ("Don't know", "Refused").
            The values may be fractional, descending or unequally spaced: the scale's order
            and spacing are the values' own.
        source: Name of the survey the question comes from (used by unseen-survey splits).
        label: Short name used when the question is shown as a respondent feature
            ("Party identification: Strong Democrat"); defaults to the id.
    """

    id: str
    text: str
    options: tuple[str, ...]
    ordinal: tuple[float, ...] | None = None
    source: str = ""
    label: str | None = None

    def __post_init__(self) -> None:
        loc = where(question=self.id)
        if not isinstance(self.id, str) or not self.id:
            raise CodebookError(f"question id must be a non-empty string, got {self.id!r}")
        if isinstance(self.options, str | bytes) or not isinstance(self.options, Iterable):
            raise CodebookError(f"{loc}options must be a list of option labels, got "
                                f"{self.options!r}")  # fmt: skip
        object.__setattr__(self, "options", tuple(str(o) for o in self.options))
        if len(self.options) < 2:
            raise CodebookError(f"{loc}needs at least 2 options, got {list(self.options)}")
        if len(set(self.options)) != len(self.options):
            dup = sorted({o for o in self.options if self.options.count(o) > 1})
            raise CodebookError(f"{loc}duplicate options {preview(dup)}")
        if self.ordinal is not None:
            values = tuple(float(v) for v in self.ordinal)
            if len(values) != len(self.options):
                raise CodebookError(
                    f"{loc}{len(values)} ordinal values for {len(self.options)} options"
                )
            if not all(math.isfinite(v) for v in values):
                raise CodebookError(f"{loc}ordinal values must be finite, got {list(values)}")
            # The scale's order comes from the values, not the option order: SubPOP's files
            # list e.g. "Too little / About right / Too much" as 2.0 / 1.5 / 1.0.
            if len({v for v in values if v >= 0}) < 2:
                raise CodebookError(
                    f"{loc}an ordinal question needs 2+ distinct non-negative values, got "
                    f"{list(values)}"
                )
            object.__setattr__(self, "ordinal", values)

    @property
    def n_options(self) -> int:
        """Number of answer options."""
        return len(self.options)

    @property
    def is_ordinal(self) -> bool:
        """Whether the options have an order (and the Wasserstein distance is defined)."""
        return self.ordinal is not None

    @property
    def display_label(self) -> str:
        """The short name shown when the question is a respondent feature."""
        return self.label or self.id

    def index(self, option: str) -> int:
        """Position of ``option`` in :attr:`options`."""
        try:
            return self.options.index(option)
        except ValueError:
            raise DataError(
                f"{where(question=self.id)}answer {option!r} is not one of its options "
                f"{preview(self.options, 8)}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-friendly representation (inverse of :meth:`from_dict`)."""
        return {
            "id": self.id,
            "text": self.text,
            "options": list(self.options),
            "ordinal": None if self.ordinal is None else list(self.ordinal),
            "source": self.source,
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Question:
        """Build a question from :meth:`to_dict` output."""
        ordinal = d.get("ordinal")
        return cls(
            id=str(d["id"]),
            text=str(d.get("text") or d["id"]),
            options=tuple(d["options"]),
            ordinal=None if ordinal is None else tuple(ordinal),
            source=str(d.get("source") or ""),
            label=d.get("label"),
        )


@dataclass(eq=False)
class Survey:
    """Respondents' answers to a set of questions, with survey weights.

    Args:
        data: One row per respondent. Question columns hold option labels (or NaN when
            not answered); other columns listed in ``covariates`` are kept as they are.
            The index is the respondent id.
        questions: The questions, in order; their ids must be columns of ``data``.
        weights: Survey weights, one per respondent (defaults to 1).
        name: The survey's name (the ``source`` of its questions).
        covariates: Extra, non-question columns to keep (e.g. numeric age).
        covariate_labels: Covariate → display name in prompts and profiles
            (``Age in years``; default: the column name).

    Raises:
        CodebookError: duplicate question ids, or a question id that is not a column.
        DataError: an answer that is not one of its question's options; negative, NaN or
            all-zero weights.
    """

    data: pd.DataFrame
    questions: dict[str, Question]
    weights: pd.Series
    name: str = "survey"
    covariates: list[str] = field(default_factory=list)
    covariate_labels: dict[str, str] = field(default_factory=dict)

    def __init__(
        self,
        data: pd.DataFrame,
        questions: Iterable[Question] | Mapping[str, Question],
        weights: Sequence[float] | np.ndarray | pd.Series | None = None,
        name: str = "survey",
        covariates: Sequence[str] = (),
        *,
        covariate_labels: Mapping[str, str] | None = None,
        file: str | None = None,
    ) -> None:
        qlist = list(questions.values()) if isinstance(questions, Mapping) else list(questions)
        ids = [q.id for q in qlist]
        dups = sorted({i for i in ids if ids.count(i) > 1})
        if dups:
            raise CodebookError(f"{where(file=file)}duplicate question ids {preview(dups)}")
        if not isinstance(data, pd.DataFrame):
            raise DataError(f"{where(file=file)}survey data must be a pandas DataFrame")
        if data.columns.duplicated().any():
            dupc = sorted(set(data.columns[data.columns.duplicated()].astype(str)))
            raise DataError(f"{where(file=file)}duplicate columns {preview(dupc)}")
        if data.index.has_duplicates:
            raise DataError(f"{where(file=file)}respondent ids (the index) must be unique")
        missing_cols = [i for i in ids if i not in data.columns]
        missing_cols += [c for c in covariates if c not in data.columns]
        if missing_cols:
            raise CodebookError(
                f"{where(file=file)}no column for {preview(missing_cols)}; columns are "
                f"{preview(list(data.columns), 10)}"
            )
        self.questions = {q.id: q for q in qlist}
        self.name = name
        self.covariates = list(covariates)
        unknown = sorted(set(covariate_labels or {}) - set(self.covariates))
        if unknown:
            raise CodebookError(f"{where(file=file)}labels for columns that are not covariates: "
                                f"{preview(unknown)}")  # fmt: skip
        self.covariate_labels = {str(k): str(v) for k, v in (covariate_labels or {}).items()}
        columns: dict[str, Any] = {q.id: _as_categorical(data[q.id], q, file=file) for q in qlist}
        columns.update({c: data[c].to_numpy(copy=True) for c in self.covariates})
        self.data = pd.DataFrame(columns, index=data.index.copy())
        self.weights = _check_weights(weights, data.index, file=file)

    # -- basic facts ---------------------------------------------------------------
    @property
    def n_respondents(self) -> int:
        """Number of respondents (rows)."""
        return len(self.data)

    @property
    def question_ids(self) -> list[str]:
        """Question ids in survey order."""
        return list(self.questions)

    def question(self, qid: str) -> Question:
        """The question with id ``qid``; a clear error when it does not exist."""
        try:
            return self.questions[qid]
        except KeyError:
            raise DataError(
                f"{where(question=qid)}not in survey '{self.name}' (questions: "
                f"{preview(self.question_ids, 10)})"
            ) from None

    def answers(self, qid: str) -> pd.Series:
        """The answers to ``qid`` as a categorical series (NaN = not answered)."""
        self.question(qid)
        return self.data[qid]

    def codes(self, qid: str) -> np.ndarray:
        """Option indices of the answers to ``qid`` (-1 = not answered)."""
        return self.answers(qid).cat.codes.to_numpy().astype(np.int64)

    def answered(self, qid: str) -> np.ndarray:
        """Boolean mask of respondents who answered ``qid``."""
        return self.codes(qid) >= 0

    def subset(self, mask: np.ndarray | pd.Series) -> Survey:
        """The survey restricted to the respondents where ``mask`` is true."""
        mask = np.asarray(mask, dtype=bool)
        out = object.__new__(Survey)
        out.data = self.data.loc[mask].copy()
        out.questions = dict(self.questions)
        out.weights = self.weights.loc[mask].copy()
        out.name = self.name
        out.covariates = list(self.covariates)
        out.covariate_labels = dict(self.covariate_labels)
        return out

    def with_answers(self, qid: str, answers: pd.Series | Sequence[Any]) -> Survey:
        """A copy in which question ``qid`` takes ``answers`` (labels or NaN)."""
        out = self.subset(np.ones(self.n_respondents, dtype=bool))
        values = pd.Series(list(answers), index=out.data.index)
        out.data[qid] = _as_categorical(values, self.question(qid))
        return out

    def weighted_distribution(
        self, qid: str, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, int, float]:
        """Weighted answer shares of ``qid`` among (masked) respondents who answered.

        Returns:
            ``(shares, n, n_eff)``: the weighted distribution over options, the unweighted
            number of answers and Kish's effective sample size ``(Σw)² / Σw²``.

        Raises:
            DataError: when nobody (in the mask) answered the question.
        """
        q = self.question(qid)
        codes = self.codes(qid)
        keep = codes >= 0
        if mask is not None:
            keep &= np.asarray(mask, dtype=bool)
        w = self.weights.to_numpy()[keep]
        if keep.sum() == 0 or w.sum() <= 0:
            raise DataError(f"{where(question=qid)}no valid (weighted) answers")
        shares = np.bincount(codes[keep], weights=w, minlength=q.n_options) / w.sum()
        return shares, int(keep.sum()), kish_effective_n(w)

    def describe(self) -> pd.DataFrame:
        """One row per question: text, options, type, answered count and weighted shares."""
        rows = []
        for q in self.questions.values():
            answered = self.answered(q.id)
            try:
                shares, _, n_eff = self.weighted_distribution(q.id)
                top = ", ".join(f"{o} {s:.0%}" for o, s in zip(q.options, shares, strict=True))
            except DataError:
                n_eff, top = 0.0, "(no answers)"
            rows.append(
                {
                    "question": q.id,
                    "text": q.text,
                    "type": "ordinal" if q.is_ordinal else "nominal",
                    "options": q.n_options,
                    "answered": int(answered.sum()),
                    "missing": int((~answered).sum()),
                    "n_eff": round(n_eff, 1),
                    "weighted shares": top,
                }
            )
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return (
            f"Survey(name={self.name!r}, respondents={self.n_respondents}, "
            f"questions={len(self.questions)}, covariates={self.covariates})"
        )


def kish_effective_n(weights: np.ndarray) -> float:
    """Kish's effective sample size ``(Σw)² / Σw²`` (0 for no weight)."""
    w = np.asarray(weights, dtype=np.float64)
    denom = float(np.sum(w * w))
    return float(np.sum(w) ** 2 / denom) if denom > 0 else 0.0


def _as_categorical(values: pd.Series, q: Question, *, file: str | None = None) -> pd.Series:
    """Convert answer labels to a categorical with the question's options as categories."""
    # Label each distinct raw value once (fast on large files), then map codes back.
    raw_codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
    option_pos = {o: i for i, o in enumerate(q.options)}
    labels = [_label_str(u) for u in uniques]
    lookup = np.array([option_pos.get(lab, -2) for lab in labels] + [-1], dtype=np.int64)
    codes = lookup[raw_codes]  # raw_codes == -1 (missing) picks the trailing -1
    bad = codes == -2
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        bad_values = sorted({lab for lab, c in zip(labels, lookup[:-1], strict=True) if c == -2})
        raise DataError(
            f"{where(file=file, row=pos + 1, column=q.id)}answer {labels[raw_codes[pos]]!r} is "
            f"not in the codebook options {preview(q.options, 8)} (unknown labels: "
            f"{preview(bad_values)})"
        )
    return pd.Series(
        pd.Categorical.from_codes(codes, categories=list(q.options)), index=values.index
    )


def _label_str(v: Any) -> str:
    """Render a raw answer as an option label: ``3.0`` → ``"3"``, strings unchanged."""
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _check_weights(
    weights: Sequence[float] | np.ndarray | pd.Series | None,
    index: pd.Index,
    *,
    file: str | None = None,
) -> pd.Series:
    if weights is None:
        return pd.Series(np.ones(len(index)), index=index, name="weight")
    w = (
        np.asarray(weights, dtype=np.float64)
        if not isinstance(weights, pd.Series)
        else (pd.to_numeric(weights, errors="coerce").to_numpy(dtype=np.float64))
    )
    if w.shape != (len(index),):
        raise DataError(f"{where(file=file)}{w.shape[0]} weights for {len(index)} respondents")
    column = weights.name if isinstance(weights, pd.Series) and weights.name else "weight"
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raw = weights.iloc[i] if isinstance(weights, pd.Series) else w[i]
        raise DataError(
            f"{where(file=file, row=i + 1, column=column)}weights must be finite, non-negative "
            f"numbers, got {raw!r} ({int(bad.sum())} bad weights in all)"
        )
    if w.sum() <= 0:
        raise DataError(f"{where(file=file, column=column)}all weights are zero")
    return pd.Series(w, index=index, name="weight")
