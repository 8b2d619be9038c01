"""Label tables for the attributes and groups of a distribution file.

A distribution file names its grouping attributes by code (SubPOP: ``CREGION``,
``POLPARTY``), so prompts would read "What is your CREGION?". A label table, a YAML/JSON
file or a mapping, gives each attribute a label, optionally the question that defines it
and display names for its groups::

    CREGION:
      label: region of residence
      question: In which region of the United States do you live?
      values: {Northeast: the Northeast}
    POLPARTY: political party        # a plain string is the label

:func:`apply_labels` adds one :class:`~surveylm.survey.Question` per labelled attribute to
the item set (its options: the group values, in the table's order, then as they appear),
so every prompt format shows the label (and the QA format the question with lettered
options); ``values`` renames the groups themselves (item ids follow).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from surveylm.errors import ConfigError, DataError
from surveylm.items import ItemSet, item_frame
from surveylm.survey import Question

__all__ = ["apply_labels", "load_labels"]


def load_labels(source: str | Path | Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A label table as ``{attribute: {"label", "question", "values"}}`` (module docstring).

    Raises:
        ConfigError: an unreadable file or an entry that is neither a string nor a mapping
            of ``label`` / ``question`` / ``values``.
    """
    if isinstance(source, str | Path):
        from surveylm.io.yaml_files import read_yaml

        source = read_yaml(source) or {}
        if not isinstance(source, Mapping):
            raise ConfigError("a label table maps attributes to labels")
    out = {}
    for attr, spec in source.items():
        if isinstance(spec, str):
            spec = {"label": spec}
        if not isinstance(spec, Mapping) or set(spec) - {"label", "question", "values"}:
            raise ConfigError(
                f"label table, attribute '{attr}': expected a label or a mapping with label, "
                f"question, values; got {spec!r}"
            )
        values = {str(k): str(v) for k, v in (spec.get("values") or {}).items()}
        out[str(attr)] = {"label": spec.get("label"), "question": spec.get("question"),
                          "values": values}  # fmt: skip
    return out


def apply_labels(items: ItemSet, labels: str | Path | Mapping[str, Any]) -> ItemSet:
    """The items with the label table applied (module docstring).

    Raises:
        DataError: a labelled attribute that is also a target question of the items.
    """
    table = load_labels(labels)
    rows, renamed = [], {}
    for row in items.frame.to_dict("records"):
        ctx = {a: [table.get(a, {}).get("values", {}).get(v, v) for v in vals]
               for a, vals in row["context"].items()}  # fmt: skip
        if row["kind"] == "group" and ctx != row["context"]:
            label = " & ".join(f"{a} = {v[0]}" if len(v) == 1 else f"{a} ∈ {{{', '.join(v)}}}"
                               for a, v in ctx.items())  # fmt: skip
            new_id = f"{row['question_id']}|{label}"
            renamed[row["item_id"]] = new_id
            row = {**row, "context": ctx, "group": label, "item_id": new_id}
        rows.append(row)
    questions = dict(items.questions)
    targets = set(items.frame["question_id"])
    for attr, spec in table.items():
        seen = [v for ctx in (r["context"] for r in rows) for v in ctx.get(attr, [])]
        if not seen:
            continue
        if attr in targets:
            raise DataError(f"label table: '{attr}' is a target question, not a group attribute")
        options = list(dict.fromkeys([*spec["values"].values(), *seen]))
        options = [o for o in options if o in set(seen)]
        if len(options) < 2:  # a question needs two options; one group shows its key
            continue
        label = spec["label"] or attr
        text = spec["question"] or f"What is your {label}?"
        questions[attr] = Question(attr, text, tuple(options), label=label)
    summary = {k: ({renamed.get(i, i): x for i, x in v.items()} if isinstance(v, dict)
                   and any(i in renamed for i in v) else v)
               for k, v in items.summary.items()}  # fmt: skip
    return ItemSet(item_frame(rows), questions, {**summary, "labels": sorted(table)})
