"""The metric registry: every metric has a defining function, labels and a direction, and
the metric lists, table headers and figure labels come from it."""

from __future__ import annotations

import numpy as np
import pytest

from surveylm.evaluation import evaluate
from surveylm.metrics import (
    METRICS,
    distribution_metrics,
    respondent_metrics,
)
from surveylm.metrics.registry import (
    LEVELS,
    get_metric,
    header,
    label,
    lower_is_better,
    names,
)


@pytest.mark.parametrize("name", list(METRICS))
def test_every_metric_has_a_function_labels_and_a_direction(name: str) -> None:
    m = METRICS[name]
    assert callable(m.resolve()), m.function
    assert m.levels and set(m.levels) <= set(LEVELS)
    assert m.label and m.short and m.direction in ("lower", "higher", "target")


def test_metric_lists_are_the_registry_and_match_what_the_functions_compute() -> None:
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    q = np.array([[0.4, 0.4, 0.2], [0.2, 0.5, 0.3]])
    # the batch functions compute exactly the registry's metrics of their level, in order
    assert tuple(distribution_metrics(p, q, [1.0, 2.0, 3.0])) == names("distribution")
    assert tuple(respondent_metrics([0, 1], q)) == names("respondent")
    # and each entry's function is the single-item reference of the same number
    batch = distribution_metrics(p, q, [1.0, 2.0, 3.0])
    for name in names("distribution"):
        fn = get_metric(name).resolve()
        args = (p[1], q[1], [1.0, 2.0, 3.0]) if name == "wd" else (p[1], q[1])
        assert fn(*args) == pytest.approx(batch[name][1]), name
    scores = respondent_metrics([0, 1], q, [1.0, 2.0])
    for name in names("respondent"):
        assert get_metric(name).resolve()([0, 1], q, [1.0, 2.0]) == pytest.approx(scores[name])


def test_headers_labels_and_directions() -> None:
    assert header("tv") == "TV ↓" and header("simbench") == "SimBench ↑"
    assert header("balanced_accuracy") == "bal. accuracy ↑" and header("coverage") == "MI coverage"
    assert header("not a metric") == "not a metric" and label("nope") == "nope"
    assert label("log_loss") == "log loss (nats per respondent)"
    assert lower_is_better("log_loss") and not lower_is_better("accuracy")
    assert not lower_is_better("coverage")  # closest to the nominal level is best
    with pytest.raises(KeyError, match="unknown metric"):
        get_metric("nope")


def test_evaluation_writes_only_registry_metrics(toy_survey) -> None:
    """Group and respondent items, with a format mass: every metric evaluate() writes is
    in the registry, at the level it is written for, and its table header is the registry's."""
    from surveylm.items import ItemSet, build_group_items, build_respondent_items
    from surveylm.models.base import Predictions

    items = ItemSet.concat([
        build_group_items(toy_survey, ["vote"], by="party", min_n=5),
        build_respondent_items(toy_survey, "vote", ["party"]),
    ])  # fmt: skip
    n = len(items)
    preds = Predictions(
        items.item_ids, [np.full(2, 0.5)] * n, "half", format_mass=np.full(n, 0.9)
    )
    ev = evaluate(items, preds, n_boot=5)
    level = {"group": "distribution", "respondent": "respondent"}
    for r in ev.overall.itertuples(index=False):
        levels = get_metric(r.metric).levels
        assert level[r.kind] in levels or levels == ("model",), (r.kind, r.metric)
    headers = list(ev.table(ci=False).columns)
    for m in set(ev.overall["metric"]):
        assert any(h.startswith(header(m)) for h in headers), m
