"""Reading surveys from CSV, Parquet, SPSS ``.sav`` and Stata ``.dta`` files.

:func:`read_survey` turns a file (plus, optionally, a :class:`~surveylm.codebook.Codebook`)
into a :class:`~surveylm.survey.Survey`; :func:`survey_from_dataframe` does the same for a
pandas DataFrame. Nothing is half-read: a file that cannot be used raises a
:class:`~surveylm.errors.SurveyLMError` naming the file, row, column or question.

**With a codebook**, exactly its questions and covariates are kept; each question's
options, codes, ordinal values and missing values come from the codebook (an omitted
``ordinal`` means nominal).

**Without a codebook** the columns are classified as follows:

* a value-labelled numeric column (SPSS/Stata) is a question whose options are the value
  labels in code order (codes seen in the data without a label keep the code as label).
  Its ordinal values are the codes when the SPSS measure level is *ordinal* or *scale*
  (shifted to start at 0 if a code is negative, since negative values mark
  non-substantive options); Stata has no measure level, so Stata questions are nominal;
* a pandas categorical column is a nominal question with the categories' order;
* any other non-numeric column (text, booleans) with 2 to ``max_options`` distinct
  answers is a nominal question with its answers sorted (numerically when they all look
  like numbers); text columns with more distinct values (free text, ids) are covariates;
* numeric columns are covariates.

**Missing values.** An answer is "not answered" when it is NaN or empty, when its raw
value or its label matches the missing-value list (by default
:data:`~surveylm.codebook.DEFAULT_MISSING_VALUES`, case-insensitive; numeric codes such as
-1 only when configured, through the codebook or the ``missing`` argument), or when SPSS
declares it user-missing (``missing_ranges``). Stata's extended missing values (``.a`` to
``.z``) are read as missing. The same list is applied to covariates.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from surveylm.codebook import (
    DEFAULT_MISSING_VALUES,
    Codebook,
    QuestionSpec,
    RawValue,
    load_codebook,
    option_label,
    value_key,
)
from surveylm.errors import CodebookError, DataError, FileFormatError, preview, where
from surveylm.io.statfiles import (
    FileMeta,
    answer_label,
    apply_user_missing,
    options_from_value_labels,
    read_stat_file,
)
from surveylm.io.textfiles import csv_rows, read_text
from surveylm.survey import Question, Survey

#: File suffixes :func:`read_survey` understands.
SURVEY_SUFFIXES = (".csv", ".parquet", ".pq", ".sav", ".zsav", ".dta")


def read_survey(
    path: str | Path,
    codebook: Codebook | str | Path | None = None,
    *,
    missing: Sequence[RawValue] | None = None,
    name: str | None = None,
    weight: str | None = None,
    id_column: str | None = None,
    encoding: str = "utf-8",
    max_options: int = 50,
) -> Survey:
    """Read a survey from a ``.csv``, ``.parquet``, ``.sav``/``.zsav`` or ``.dta`` file.

    Args:
        path: The survey file.
        codebook: A :class:`Codebook`, a path to a YAML/JSON codebook, or ``None`` to
            infer questions from the data (see module docstring).
        missing: Raw values or labels meaning "not answered"; replaces the codebook's
            (or the default) list, e.g. ``[*DEFAULT_MISSING_VALUES, -1, -9]``.
        name: The survey's name (default: the codebook's, else the file name's stem).
        weight: Weight column (default: the codebook's; none = all weights 1).
        id_column: Respondent id column (default: the codebook's; none = row numbers).
        encoding: Text encoding of a CSV file (and of SPSS/Stata strings, if not UTF-8).
        max_options: Most distinct answers an inferred text question may have.

    Raises:
        FileFormatError: missing, unreadable, truncated or malformed file, wrong encoding.
        CodebookError: a codebook question or covariate with no column, duplicate ids.
        DataError: duplicate columns, an answer not among the codebook's options, bad
            weights or respondent ids.
    """
    path = Path(path)
    if not path.exists():
        raise FileFormatError(f"{where(file=path)}no such file")
    if path.is_dir():
        raise FileFormatError(f"{where(file=path)}is a folder, expected a survey file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        df, meta = _read_csv(path, encoding), FileMeta()
    elif suffix in (".parquet", ".pq"):
        df, meta = _read_parquet(path), FileMeta()
    elif suffix in (".sav", ".zsav", ".dta"):
        df, meta = read_stat_file(
            path, encoding if encoding.lower() not in ("utf-8", "utf8") else None
        )
    else:
        raise FileFormatError(
            f"{where(file=path)}unsupported file type '{path.suffix}', expected one of "
            f"{', '.join(SURVEY_SUFFIXES)}"
        )
    return _build(
        df, meta, codebook, missing=missing, name=name, weight=weight, id_column=id_column,
        file=str(path), default_name=path.stem, max_options=max_options,
    )  # fmt: skip


def survey_from_dataframe(
    df: pd.DataFrame,
    codebook: Codebook | str | Path | None = None,
    *,
    missing: Sequence[RawValue] | None = None,
    name: str | None = None,
    weight: str | None = None,
    id_column: str | None = None,
    max_options: int = 50,
    meta: FileMeta | None = None,
) -> Survey:
    """Build a survey from a DataFrame; arguments as in :func:`read_survey`.

    ``meta`` passes SPSS/Stata-style value labels, measure levels, column labels and
    user-missing ranges for a DataFrame read by other means.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
    return _build(
        df, meta or FileMeta(), codebook, missing=missing, name=name, weight=weight,
        id_column=id_column, file=None, default_name="survey", max_options=max_options,
    )  # fmt: skip


# -- file readers -----------------------------------------------------------------------------
def _read_csv(path: Path, encoding: str) -> pd.DataFrame:
    text = read_text(path, encoding)
    csv_rows(text, path, keep=False)  # duplicate headers, truncated or ragged rows
    try:
        return pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        msg = " ".join(str(exc).split())
        raise FileFormatError(f"{where(file=path)}malformed CSV: {msg}") from None


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        msg = " ".join(str(exc).split())
        raise FileFormatError(
            f"{where(file=path)}not a readable Parquet file (corrupt or truncated?): {msg}"
        ) from None


# -- building the survey ----------------------------------------------------------------------
def _build(
    df: pd.DataFrame,
    meta: FileMeta,
    codebook: Codebook | str | Path | None,
    *,
    missing: Sequence[RawValue] | None,
    name: str | None,
    weight: str | None,
    id_column: str | None,
    file: str | None,
    default_name: str,
    max_options: int,
) -> Survey:
    cb = load_codebook(codebook) if isinstance(codebook, str | Path) else codebook
    loc = where(file=file)
    df = df.copy()
    df.columns = [str(c) for c in df.columns]
    if df.columns.duplicated().any():
        dup = sorted(set(df.columns[df.columns.duplicated()]))
        raise DataError(f"{loc}duplicate column names {preview(dup)}; question ids must be unique")
    if len(df) == 0:
        raise DataError(f"{loc}no respondents (the data has no rows)")
    weight = weight or (cb.weight if cb else None)
    id_column = id_column or (cb.id_column if cb else None)
    for role, col in (("weight", weight), ("id", id_column)):
        if col is not None and col not in df.columns:
            raise DataError(
                f"{loc}no {role} column '{col}'; columns are {preview(list(df.columns), 10)}"
            )
    index = _respondent_ids(df, id_column, file) if id_column else df.index
    weights = df[weight] if weight else None  # checked (and located) by Survey
    global_missing = (
        list(missing)
        if missing is not None
        else (cb.missing if cb else list(DEFAULT_MISSING_VALUES))
    )
    global_keys = {value_key(v) for v in global_missing} | {""}
    apply_user_missing(df, meta)

    reserved = {c for c in (weight, id_column) if c}
    if cb is not None:
        absent = [c for c in [*cb.questions, *cb.covariates] if c not in df.columns]
        if absent:
            what = "question" if absent[0] in cb.questions else "covariate"
            raise CodebookError(
                f"{where(file=file, question=absent[0] if what == 'question' else None)}"
                f"codebook {what} '{absent[0]}' has no column in the data (columns: "
                f"{preview(list(df.columns), 10)})"
            )
        specs: dict[str, QuestionSpec | None] = dict(cb.questions)
        covariates = list(cb.covariates)
    else:
        specs, covariates = {}, []
        for col in df.columns:
            if col in reserved:
                continue
            if _infer_is_question(df[col], col in meta.value_labels, global_keys, max_options):
                specs[col] = None
            else:
                covariates.append(col)

    columns: dict[str, np.ndarray] = {}
    questions: list[Question] = []
    for qid, spec in specs.items():
        labels, q = _question(df[qid], qid, spec, meta, global_keys, file=file)
        columns[qid] = labels.to_numpy()
        questions.append(q)
    survey_name = name or (cb.name if cb and cb.name else default_name)
    questions = [_with_source(q, survey_name) for q in questions]
    for col in covariates:
        columns[col] = df[col].mask(_missing_mask(df[col], global_keys)).to_numpy()
    out = pd.DataFrame(columns, index=index)
    labels = {c: meta.column_labels[c] for c in covariates if meta.column_labels.get(c)}
    labels.update(cb.covariate_labels if cb is not None else {})
    return Survey(out, questions, weights, name=survey_name, covariates=covariates,
                  covariate_labels=labels, file=file)  # fmt: skip


def _respondent_ids(df: pd.DataFrame, col: str, file: str | None) -> pd.Index:
    ids = df[col]
    if ids.isna().any():
        row = int(np.flatnonzero(ids.isna().to_numpy())[0]) + 1
        raise DataError(f"{where(file=file, row=row, column=col)}respondent id is missing")
    dup = ids.duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0]) + 1
        raise DataError(
            f"{where(file=file, row=row, column=col)}respondent id {ids.iloc[row - 1]!r} "
            "appears twice; ids must be unique"
        )
    values = [_plain_id(v) for v in ids]
    return pd.Index(values, dtype=object, name=col)


def _missing_mask(values: pd.Series, keys: set[str]) -> np.ndarray:
    """True where a value is NaN or its :func:`value_key` is one of ``keys``."""
    present = values.notna().to_numpy()
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        codes = [float(k) for k in keys if _is_float(k)]  # only numeric keys can match
        return ~present | np.isin(values.to_numpy(dtype=np.float64, na_value=np.nan), codes)
    uniques = pd.unique(values[present].astype(object))
    bad = {u for u in uniques if value_key(u) in keys}
    hit = values.astype(object).isin(bad).to_numpy() if bad else np.zeros(len(values), bool)
    return ~present | hit


def _infer_is_question(col: pd.Series, labelled: bool, keys: set[str], max_options: int) -> bool:
    if labelled or isinstance(col.dtype, pd.CategoricalDtype):
        return True
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return False
    answers = col[~_missing_mask(col, keys)]
    return 2 <= answers.astype(object).map(option_label).nunique() <= max_options


def _question(
    col: pd.Series,
    qid: str,
    spec: QuestionSpec | None,
    meta: FileMeta,
    global_keys: set[str],
    *,
    file: str | None,
) -> tuple[pd.Series, Question]:
    """Turn one raw column into answer labels (NaN = missing) and its Question."""
    spec = spec or QuestionSpec()
    keys = global_keys | {value_key(v) for v in spec.missing}
    keys -= {value_key(o) for o in spec.options or []}  # listed options are never missing
    file_labels = meta.value_labels.get(qid, {}) if spec.codes is None else {}
    codes = spec.code_map() or {value_key(k): v for k, v in file_labels.items()}
    raw = col.astype(object)
    mapping: dict[Any, Any] = {}
    for v in pd.unique(raw[raw.notna()]):
        label = answer_label(v, codes, keys)
        mapping[v] = np.nan if label is None else label
    labels = raw.map(mapping) if mapping else pd.Series(np.nan, index=col.index, dtype=object)

    ordinal = None
    if spec.options is not None:
        options = list(spec.options)
    elif spec.codes is not None:
        options = [lab for lab in dict.fromkeys(spec.code_map().values())
                   if value_key(lab) not in keys]  # fmt: skip
    elif file_labels:
        options, ordinal = options_from_value_labels(raw, file_labels, keys, meta, qid)
    elif isinstance(col.dtype, pd.CategoricalDtype):
        options = [option_label(c) for c in col.cat.categories if value_key(c) not in keys]
    else:
        options = _sorted_labels(labels.dropna().unique())
    if spec.ordinal is not None:
        ordinal = spec.ordinal_values(options)
    text = spec.text or meta.column_labels.get(qid) or qid
    try:
        q = Question(qid, text, tuple(options), ordinal, label=spec.label)
    except CodebookError as exc:
        raise CodebookError(f"{where(file=file)}{exc}") from None
    return labels, q


def _sorted_labels(labels: Sequence[Any]) -> list[str]:
    """Distinct labels, sorted numerically when all look like numbers, else alphabetically."""
    labels = [str(v) for v in labels]
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)


def _with_source(q: Question, source: str) -> Question:
    return Question(q.id, q.text, q.options, q.ordinal, source=source, label=q.label)


def _plain_id(v: Any) -> Any:
    if hasattr(v, "item") and not isinstance(v, str):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
