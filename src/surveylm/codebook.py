"""Codebooks: what each column of a survey file means.

A codebook (YAML or JSON) gives each question's text, the order and labels of its
options, how raw codes map to labels, whether the options are ordinal, and which values
mean "not answered". Example::

    name: my-survey
    id_column: respid
    weight: wt
    missing: ["Don't know", "Refused", -1, -9]   # replaces DEFAULT_MISSING_VALUES
    covariates:                      # or a plain list: [age, income]
      age: {label: Age in years}     # the name prompts and profiles show
      income:                        # no label: the file's column label, else the name
    questions:
      pid:
        text: Generally speaking, do you think of yourself as a ...?
        codes: {1: Democrat, 2: Independent, 3: Republican}
        ordinal: true                # values 1..K in option order
      vote:
        text: Who did you vote for?
        options: [Clinton, Dole, Perot]   # omitted ``ordinal`` = nominal
        label: Vote

The models are pydantic models with ``extra="forbid"``, so a misspelt key is an error
rather than a silently ignored setting. :func:`load_codebook` also refuses duplicate keys
(YAML and JSON parsers would otherwise keep the last one silently), naming the file and
the duplicated question id.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from surveylm.errors import CodebookError, FileFormatError, where
from surveylm.survey import Question

#: Answer labels treated as "not answered" unless a codebook or the ``missing`` argument of
#: :func:`surveylm.io.surveys.read_survey` says otherwise. Matching ignores case and
#: surrounding spaces. Numeric codes (-1, 9, 99...) are deliberately *not* in this list:
#: their meaning differs between surveys, so they must be configured explicitly.
DEFAULT_MISSING_VALUES: tuple[str, ...] = (
    "Don't know",
    "Refused",
    "No answer",
    "DK",
    "NA",
    "Skipped",
)

RawValue = str | int | float


def value_key(value: Any) -> str:
    """Canonical key of a raw answer value, used to match codes and missing values.

    Numbers (and strings that parse as numbers) become their shortest integer-or-float
    form (``1``, ``1.0`` and ``"1"`` all give ``"1"``); other strings are stripped and
    case-folded, so ``"don't know"`` matches ``"Don't know"``.
    """
    if isinstance(value, bool):
        return str(value).casefold()
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalar
        value = value.item()
    if isinstance(value, int | float):
        return _num_key(float(value))
    text = str(value).strip()
    try:
        return _num_key(float(text))
    except ValueError:
        return text.casefold()


def option_label(value: Any) -> str:
    """Render a raw answer as an option label: ``3.0`` → ``"3"``, other values ``str``-ed."""
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _num_key(x: float) -> str:
    if math.isfinite(x) and x.is_integer():
        return str(int(x))
    return repr(x)


class QuestionSpec(BaseModel):
    """One question of a codebook.

    Attributes:
        text: The question as asked (default: the column label in the file, else the id).
        options: Option labels in order. Labels listed here are never treated as missing,
            even when they appear in the missing-value list (give them a negative ordinal
            value to mark them non-substantive instead).
        codes: Raw value → label (keys may be numbers or strings; ``1``, ``1.0`` and
            ``"1"`` are the same code). Without ``options``, the order of ``codes`` is the
            option order.
        ordinal: A list of numeric values (one per option), ``true`` for 1..K, or
            ``"nominal"``/``false``. Omitted means *nominal*: an order is never guessed.
        missing: Extra raw values or labels that mean "not answered" for this question,
            on top of the codebook's global ``missing`` list.
        label: Short display name used when the question is a respondent feature.
    """

    model_config = ConfigDict(extra="forbid")

    text: str | None = None
    options: list[str] | None = None
    codes: dict[str | int | float, str] | None = None
    ordinal: list[float] | Literal["nominal"] | bool | None = None
    missing: list[RawValue] = []
    label: str | None = None

    @field_validator("options", mode="before")
    @classmethod
    def _options_as_str(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [str(o) for o in v]
        return v

    def code_map(self) -> dict[str, str]:
        """``codes`` keyed by :func:`value_key`."""
        return {value_key(k): str(v) for k, v in (self.codes or {}).items()}

    def ordinal_values(self, options: Sequence[str]) -> tuple[float, ...] | None:
        """The ordinal values for ``options`` (``None`` = nominal)."""
        if self.ordinal is None or self.ordinal is False or self.ordinal == "nominal":
            return None
        if self.ordinal is True:
            return tuple(float(i) for i in range(1, len(options) + 1))
        return tuple(float(v) for v in self.ordinal)


class CovariateSpec(BaseModel):
    """One covariate (a column kept as it is, e.g. numeric age) of a codebook.

    Attributes:
        label: Display name in prompts and respondent profiles (``Age in years``);
            default: the file's column label, else the column name.
    """

    model_config = ConfigDict(extra="forbid")

    label: str | None = None


class Codebook(BaseModel):
    """What the columns of a survey file mean.

    Attributes:
        name: The survey's name (the ``source`` of its questions).
        id_column: Column holding respondent ids (default: row numbers).
        weight: Column holding survey weights (default: every weight is 1).
        missing: Raw values or labels that mean "not answered" in every question
            (default :data:`DEFAULT_MISSING_VALUES`; numeric codes such as -1 must be
            listed explicitly). Setting it replaces the default list.
        questions: Question id (= column name) → :class:`QuestionSpec`, in survey order.
            Only these columns become questions.
        covariates: Extra columns to keep as they are (e.g. numeric age): a list of
            names, or name → :class:`CovariateSpec` (a label).
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    id_column: str | None = None
    weight: str | None = None
    missing: list[RawValue] = list(DEFAULT_MISSING_VALUES)
    questions: dict[str, QuestionSpec] = {}
    covariates: dict[str, CovariateSpec] = {}

    @field_validator("covariates", mode="before")
    @classmethod
    def _covariate_list(cls, v: Any) -> Any:
        # ``[age, income]`` names covariates without labels; ``age:`` alone means defaults
        if isinstance(v, list | tuple):
            names = [str(c) for c in v]
            dups = sorted({c for c in names if names.count(c) > 1})
            if dups:
                raise ValueError(f"covariates listed twice: {dups}")
            return {c: {} for c in names}
        if isinstance(v, Mapping):
            return {str(k): ({} if spec is None else spec) for k, spec in v.items()}
        return v

    @property
    def covariate_labels(self) -> dict[str, str]:
        """Covariate → label, for the covariates that have one."""
        return {c: spec.label for c, spec in self.covariates.items() if spec.label}

    @field_validator("questions", mode="before")
    @classmethod
    def _empty_specs(cls, v: Any) -> Any:
        # ``q1:`` with nothing under it in YAML means "all defaults".
        if isinstance(v, Mapping):
            return {str(k): ({} if spec is None else spec) for k, spec in v.items()}
        return v

    def missing_keys(self, question: str | None = None) -> set[str]:
        """Canonical keys (see :func:`value_key`) of the values that mean "not answered"."""
        keys = {value_key(v) for v in self.missing}
        if question is not None and question in self.questions:
            keys |= {value_key(v) for v in self.questions[question].missing}
        return keys

    @classmethod
    def from_questions(
        cls,
        questions: Iterable[Question],
        *,
        name: str | None = None,
        id_column: str | None = None,
        weight: str | None = None,
        covariates: Sequence[str] = (),
        missing: Sequence[RawValue] | None = None,
        covariate_labels: Mapping[str, str] | None = None,
    ) -> Codebook:
        """A codebook describing existing questions (e.g. to save a survey's codebook)."""
        specs = {
            q.id: QuestionSpec(
                text=q.text,
                options=list(q.options),
                ordinal="nominal" if q.ordinal is None else list(q.ordinal),
                label=q.label,
            )
            for q in questions
        }
        labels = covariate_labels or {}
        return cls(
            name=name,
            id_column=id_column,
            weight=weight,
            missing=list(DEFAULT_MISSING_VALUES if missing is None else missing),
            questions=specs,
            covariates={c: CovariateSpec(label=labels.get(c)) for c in covariates},
        )

    def to_dict(self) -> dict[str, Any]:
        """A plain-data form (what :meth:`write` saves), without unset optional fields;
        covariates without labels are a plain list of names."""
        data = self.model_dump(mode="json", exclude_none=True)
        if not self.covariate_labels:
            data["covariates"] = list(self.covariates)
        return data

    def to_yaml(self) -> str:
        """The codebook as YAML text (strings such as ``Yes``/``No`` stay quoted strings)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def write(self, path: str | Path) -> Path:
        """Save as YAML (``.yaml``/``.yml``) or JSON (``.json``), atomically."""
        from surveylm.io.atomic import atomic_write_text

        path = Path(path)
        data = self.to_dict()
        if path.suffix.lower() == ".json":
            text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        elif path.suffix.lower() in (".yaml", ".yml"):
            text = self.to_yaml()
        else:
            raise CodebookError(f"{where(file=path)}codebook files end in .yaml, .yml or .json")
        return atomic_write_text(path, text)


def load_codebook(path: str | Path) -> Codebook:
    """Read a codebook from a YAML or JSON file.

    Raises:
        FileFormatError: the file is missing, not valid YAML/JSON, or not UTF-8.
        CodebookError: a duplicated key (e.g. a question id given twice), or a field that
            fails validation (misspelt key, wrong type) — one line naming file and field.
    """
    path = Path(path)
    loc = where(file=path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileFormatError(f"{loc}no such codebook file") from None
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{loc}not UTF-8 (byte offset {exc.start})") from None
    except OSError as exc:
        raise FileFormatError(f"{loc}cannot read codebook ({exc.strerror})") from None
    data = _load_json(text, path) if path.suffix.lower() == ".json" else _load_yaml(text, path)
    if not isinstance(data, Mapping):
        raise CodebookError(f"{loc}a codebook must be a mapping with a 'questions' key")
    return codebook_from_dict(data, file=path)


def codebook_from_dict(data: Mapping[str, Any], *, file: object | None = None) -> Codebook:
    """Validate a codebook given as plain data; errors become one-line CodebookErrors."""
    try:
        return Codebook.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        more = exc.error_count() - 1
        extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise CodebookError(
            f"{where(file=file)}field '{field}': {err['msg']} (got {err.get('input')!r}){extra}"
        ) from None


# -- duplicate-key-aware parsing ------------------------------------------------------------
def _dup_message(path: Path, keys: list[str], key: str, line: int | None = None) -> str:
    at = f" (line {line})" if line is not None else ""
    if keys == ["questions"]:
        return f"{where(file=path, question=key)}duplicate question id{at}"
    inside = f" in '{'.'.join(keys)}'" if keys else ""
    return f"{where(file=path)}duplicate key '{key}'{inside}{at}"


def _load_yaml(text: str, path: Path) -> Any:
    from surveylm.io.yaml_files import parse_yaml  # the one YAML reader (YAML 1.2 booleans)

    return parse_yaml(text, path, check=lambda root: _check_yaml_node(root, [], path))


def _check_yaml_node(node: yaml.Node, keys: list[str], path: Path) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise CodebookError(_dup_message(path, keys, key, key_node.start_mark.line + 1))
            seen.add(key)
            _check_yaml_node(value_node, [*keys, key], path)
    elif isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            _check_yaml_node(child, [*keys, str(i)], path)


class _Pairs(list):
    """A JSON object kept as its list of pairs, so duplicates can be found with their path."""


def _load_json(text: str, path: Path) -> Any:
    try:
        raw = json.loads(text, object_pairs_hook=_Pairs)
    except json.JSONDecodeError as exc:
        raise FileFormatError(
            f"{where(file=path)}invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    return _dedupe(raw, [], path)


def _dedupe(value: Any, keys: list[str], path: Path) -> Any:
    if isinstance(value, _Pairs):
        out: dict[str, Any] = {}
        for k, v in value:
            if k in out:
                raise CodebookError(_dup_message(path, keys, k))
            out[k] = _dedupe(v, [*keys, k], path)
        return out
    if isinstance(value, list):
        return [_dedupe(v, [*keys, str(i)], path) for i, v in enumerate(value)]
    return value
