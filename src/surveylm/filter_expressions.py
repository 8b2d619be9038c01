"""A small, safe filter-expression language over a survey's respondents.

:func:`evaluate_filter` turns an expression such as ``age < 30``,
``educ3 == "Bachelor's degree or more"`` or ``party in ["Democrat"]`` into a boolean
mask over respondents. It defines the convenience samples of
:func:`surveylm.missingness.convenience` (Holtdirk et al. 2025, "Learning from
Convenience Samples": only respondents matching the filter answer) and picks subgroups
elsewhere. Nothing is executed: the expression is parsed with :mod:`ast` and only
comparisons, ``and`` / ``or`` / ``not`` and literals are interpreted.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from surveylm.errors import DataError, preview
from surveylm.survey import Survey

__all__ = ["evaluate_filter"]


_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
    ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
}  # fmt: skip
_FLIP = {ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE}


def evaluate_filter(survey: Survey, expression: str) -> np.ndarray:
    """Which respondents match a small, safe filter expression.

    The language: comparisons of one column (a question or covariate; names that are not
    Python identifiers go in backticks) with literals — ``==``, ``!=``, ``<``, ``<=``,
    ``>``, ``>=``, ``in [...]``, ``not in [...]`` — combined with ``and``, ``or``, ``not``
    and parentheses. Nothing is executed: the expression is parsed with :mod:`ast` and
    only these nodes are interpreted. Questions compare by option label (a label that is
    not an option is an error, to catch typos); ``<``/``>`` on a question need an ordinal
    question and compare ordinal values (non-substantive options never match). A missing
    value never matches a comparison.

    Returns:
        Boolean mask over respondents.

    Raises:
        DataError: a syntax error, a construct outside the language, an unknown column or
            option — the message quotes the expression.
    """
    names: dict[str, str] = {}

    def _quote(m: re.Match[str]) -> str:
        key = f"_col{len(names)}_"
        names[key] = m.group(1)
        return key

    text = re.sub(r"`([^`]+)`", _quote, str(expression))
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise DataError(f"filter {expression!r}: not a valid expression ({exc.msg})") from None
    return _FilterEval(survey, str(expression), names).mask(tree.body)


class _FilterEval:
    def __init__(self, survey: Survey, expression: str, names: dict[str, str]) -> None:
        self.survey, self.expr, self.names = survey, expression, names

    def fail(self, msg: str) -> DataError:
        return DataError(f"filter {self.expr!r}: {msg}")

    def mask(self, node: ast.AST) -> np.ndarray:
        if isinstance(node, ast.BoolOp):
            parts = [self.mask(v) for v in node.values]
            op = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            return op.reduce(parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return ~self.mask(node.operand)
        if isinstance(node, ast.Compare):
            out = np.ones(self.survey.n_respondents, dtype=bool)
            left = node.left
            for cmp, right in zip(node.ops, node.comparators, strict=True):
                out &= self.compare(left, cmp, right)
                left = right
            return out
        raise self.fail(
            f"'{ast.unparse(node)}' is not allowed; use comparisons such as age < 30 or "
            'party in ["Democrat"], combined with and / or / not'
        )

    def column(self, node: ast.AST) -> str | None:
        if not isinstance(node, ast.Name):
            return None
        name = self.names.get(node.id, node.id)
        if name not in self.survey.questions and name not in self.survey.covariates:
            cols = [*self.survey.question_ids, *self.survey.covariates]
            raise self.fail(f"unknown column '{name}' (columns: {preview(cols, 15)})")
        return name

    def literal(self, node: ast.AST) -> Any:
        try:
            value = ast.literal_eval(node)
        except ValueError:
            raise self.fail(f"'{ast.unparse(node)}' is not a literal value") from None
        return value

    def compare(self, left: ast.AST, op: ast.cmpop, right: ast.AST) -> np.ndarray:
        col, other = self.column(left), right
        if col is None:
            col, other = self.column(right), left
            if col is None or isinstance(op, ast.In | ast.NotIn):
                raise self.fail(f"'{ast.unparse(left)}': compare a column with a value")
            op = _FLIP.get(type(op), type(op))()
        if isinstance(other, ast.Name):
            raise self.fail(f"'{ast.unparse(other)}': compare a column with a literal")
        value = self.literal(other)
        if isinstance(op, ast.In | ast.NotIn):
            if not isinstance(value, list | tuple | set):
                raise self.fail(f"'in' needs a list, e.g. {col} in [...]")
            values = list(value)
        else:
            values = [value]
        x, present = self._values(col, op, values)
        if isinstance(op, ast.In | ast.NotIn):
            hit = np.isin(x, np.asarray(values, dtype=x.dtype))
            return present & (hit if isinstance(op, ast.In) else ~hit)
        with np.errstate(invalid="ignore"):
            try:
                return present & np.asarray(_OPS[type(op)](x, values[0]), dtype=bool)
            except TypeError:
                raise self.fail(f"cannot compare '{col}' with {values[0]!r}") from None

    def _values(self, col: str, op: ast.cmpop, values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """The column as comparable values, with the literals converted alike."""
        if col in self.survey.questions:
            q = self.survey.questions[col]
            bad = [v for v in values if str(v) not in q.options]
            if bad:
                raise self.fail(
                    f"{preview(bad)} not an option of '{col}' ({preview(q.options, 8)})"
                )
            codes = self.survey.codes(col)
            if isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn):
                values[:] = [q.options.index(str(v)) for v in values]
                return codes, codes >= 0
            if q.ordinal is None:
                raise self.fail(f"'{col}' is nominal: use == or in, not an order comparison")
            o = np.asarray(q.ordinal)
            values[:] = [o[q.options.index(str(values[0]))]]
            x = np.where(codes >= 0, o[np.maximum(codes, 0)], -1.0)
            return x, (codes >= 0) & (x >= 0) & (values[0] >= 0)
        raw = self.survey.data[col]
        present = raw.notna().to_numpy()
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            x = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            return x, present & np.isfinite(x)
        return raw.astype(object).map(str).to_numpy(dtype=object), present
