"""Simulation data that is not one survey split in halves: the unseen-survey protocol and
distribution files.

* **Unseen survey** (SubPOP, Suh et al. 2025: train on Pew's American Trends Panel, test on
  the GSS; Cao et al. 2025: train on the World Values Survey, test on Pew's Global
  Attitudes): every group item of the training survey trains; the test survey's group
  items are the truth, one split ``unseen_survey``. Its questions are unseen by
  construction (an id that is also a training question is refused). Its groups are put in
  the training survey's terms by a small declared table (``group_map``: ``age3 = 35 - 64``
  → ``age_group ∈ {35 - 49, 50 - 64}``, plain renames, groups with no counterpart left out)
  plus conditions true of the whole test population (``context``); the item keeps the test
  survey's group label, the model sees the mapped conditions, labelled by the training
  survey's attribute questions. The noise floor is that of the test survey's groups.
* **A distribution file as the dataset** (SubPOP JSONL, Cao et al. JSON...): there are no
  respondents to split, so its items are crossed by held-out questions and groups
  (:func:`surveylm.splits.crossed_split`) without a seen/seen cell; the noise floor uses the
  file's ``n`` where it has one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from surveylm.errors import ConfigError, DataError, preview
from surveylm.items import ItemSet, build_group_items, item_frame
from surveylm.splits import crossed_split
from surveylm.survey import Survey

if TYPE_CHECKING:
    from surveylm.experiments.simulation_config import SimulationConfig, UnseenSurveyConfig

__all__ = ["UNSEEN_SURVEY", "cross_survey_split", "file_split", "is_distribution_file", "side"]

#: Name of the split of the unseen-survey protocol.
UNSEEN_SURVEY = "unseen_survey"


def is_distribution_file(dataset: str) -> bool:
    """Whether ``dataset`` names a distribution file (by content) rather than a survey."""
    from pathlib import Path

    from surveylm.datasets import DATASETS

    if dataset in DATASETS or not Path(dataset).is_file():
        return False
    from surveylm.errors import FileFormatError
    from surveylm.io.distributions import LAYOUTS, sniff_layout

    try:
        return sniff_layout(dataset) in (*LAYOUTS, "parquet")
    except FileFormatError:
        return False


def _by(group_by: list[str | list[str]]) -> list[str | list[str]]:
    return [g if isinstance(g, str) else list(g) for g in group_by]


def side(
    dataset: str,
    codebook: str | None,
    questions: list[str] | None,
    group_by: list[str | list[str]],
    min_n: int,
    labels: Any = None,
) -> tuple[ItemSet, Survey | None]:
    """Group items of one survey or distribution file (and the survey, if it is one)."""
    if is_distribution_file(dataset):
        from surveylm.io.distributions import read_items

        items = read_items(dataset, labels=labels)
        wanted = {g if isinstance(g, str) else "×".join(g) for g in group_by}
        keep = items.frame["group_var"].isin(wanted).to_numpy()
        if questions is not None:
            keep &= items.frame["question_id"].isin(questions).to_numpy()
        if not keep.any():
            raise DataError(
                f"file '{dataset}': no items of the questions and group_by asked for (its "
                f"grouping variables are {preview(sorted(set(items.frame['group_var'])))})"
            )
        return items.subset(keep), None
    from surveylm.io.sources import load_survey_source

    survey = load_survey_source(dataset, codebook)
    return build_group_items(survey, questions, by=_by(group_by), min_n=min_n), survey


def file_split(
    items: ItemSet, config: SimulationConfig
) -> tuple[ItemSet, dict[str, ItemSet], dict[str, Any]]:
    """A distribution file's items crossed by held-out questions and groups."""
    from surveylm.experiments.simulation import held_out

    tq, tg = held_out(items, config)
    cells = crossed_split(items, tq, tg, near_duplicate_threshold=config.near_duplicate_threshold)
    train = cells.pop("train")
    sized = int((items.frame["n"] > 0).sum())
    facts = {"dataset_kind": "distribution file", "test_questions": tq, "test_groups": tg,
             "train_items": len(train), "test_items": {k: len(v) for k, v in cells.items()},
             "items_with_n": sized, "noise_floor": _floor_note(sized, len(items))}  # fmt: skip
    return train, {k: v for k, v in cells.items() if len(v)}, facts


def _floor_note(sized: int, total: int) -> str:
    if sized == total:
        return "from each group's n"
    if sized == 0:
        return "not available: the file gives no group sizes (n)"
    return f"from the n of the {sized} of {total} items that give one; NaN for the rest"


def cross_survey_split(
    config: SimulationConfig,
) -> tuple[ItemSet, dict[str, ItemSet], Survey | None, dict[str, Any]]:
    """``(train items, {"unseen_survey": test items}, training survey, facts)``."""
    test_cfg = config.unseen_survey
    assert test_cfg is not None
    train, train_survey = side(config.dataset, config.codebook, config.questions,
                               config.group_by, config.min_n, config.labels)  # fmt: skip
    test, _ = side(test_cfg.dataset, test_cfg.codebook, test_cfg.questions, test_cfg.group_by,
                   test_cfg.min_n or config.min_n)  # fmt: skip
    clash = sorted(set(test.question_ids) & set(train.question_ids))
    if clash:
        raise ConfigError(
            f"unseen_survey: question id(s) {preview(clash)} are also training questions; the "
            "unseen survey's questions must be unseen"
        )
    mapped, dropped = map_groups(test, train, test_cfg)
    if len(mapped) == 0:
        raise DataError("unseen_survey: no test group maps onto the training groups")
    facts = {
        "protocol": UNSEEN_SURVEY, "train_dataset": config.dataset,
        "test_dataset": test_cfg.dataset, "train_items": len(train),
        "train_questions": len(train.question_ids), "test_questions": test.question_ids,
        "test_groups": sorted(set(mapped.frame["group"])), "groups_not_mapped": dropped,
        "test_items": {UNSEEN_SURVEY: len(mapped)},
        "respondents": None if train_survey is None else train_survey.n_respondents,
    }  # fmt: skip
    return train, {UNSEEN_SURVEY: mapped}, train_survey, facts


def _values(spec: str | list[str] | None) -> list[str] | None:
    if spec is None:
        return None
    parts = spec.split("|") if isinstance(spec, str) else spec
    return [str(p).strip() for p in parts if str(p).strip()]


def map_groups(test: ItemSet, train: ItemSet, cfg: UnseenSurveyConfig) -> tuple[ItemSet, list[str]]:
    """The test items with contexts in the training survey's attributes (see module
    docstring), and the labels of the test groups that map to nothing.

    Raises:
        ConfigError: a test attribute or value with no training counterpart, or a mapping to
            an attribute or value the training data does not have.
    """
    known: dict[str, set[str]] = {}
    for context in train.contexts:
        for attr, vals in context.items():
            known.setdefault(attr, set()).update(vals)

    def check(attr: str, vals: list[str], what: str) -> None:
        if attr not in known:
            raise ConfigError(
                f"unseen_survey: {what} maps to attribute '{attr}', which the training groups "
                f"do not have ({preview(sorted(known))}); declare it in group_map"
            )
        unknown = [v for v in vals if v not in known[attr]]
        if unknown:
            raise ConfigError(
                f"unseen_survey: {what} maps to {attr} value(s) {preview(unknown)} that no "
                f"training group has ({preview(sorted(known[attr]), 8)}); map them in group_map"
            )

    fixed = {attr: _values(v) or [] for attr, v in cfg.context.items()}
    for attr, vals in fixed.items():
        check(attr, vals, f"context '{attr}'")
    rows, dropped = [], []
    for row in test.frame.to_dict("records"):
        ctx: dict[str, list[str]] = {}
        for attr, vals in row["context"].items():
            spec = cfg.group_map.get(attr, attr)
            to, table = (spec, {}) if isinstance(spec, str) else (spec.to, spec.values)
            out: list[str] = []
            for v in vals:
                mapped = _values(table[v]) if v in table else [v]
                if mapped is not None:
                    out += [m for m in mapped if m not in out]
            if not out:
                ctx = {}
                break
            check(to, out, f"test group '{attr} = {', '.join(vals)}'")
            ctx[to] = list(dict.fromkeys([*ctx.get(to, []), *out]))
        if not ctx:
            dropped.append(row["group"])
            continue
        for attr, vals in fixed.items():
            ctx.setdefault(attr, vals)
        rows.append({**row, "context": ctx, "item_id": f"{row['question_id']}|{row['group']}"})
    attrs = {a for r in rows for a in r["context"]}
    questions = {q: test.questions[q] for q in test.question_ids}
    questions.update({a: train.questions[a] for a in attrs if a in train.questions})
    items = ItemSet(item_frame(rows), questions, {**test.summary, "mapped_from": "unseen_survey"})
    return items, sorted(set(dropped))
