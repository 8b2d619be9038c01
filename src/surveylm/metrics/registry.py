"""The one registry of metrics: name, level, labels, direction and defining function.

Every place that names, labels or ranks a metric reads it from here: the metric lists of
:mod:`~surveylm.metrics.distribution` and :mod:`~surveylm.metrics.respondent`, the
evaluation's table headers, the runners' summary columns, the report's axis labels and
its findings (which way is better). A new metric is one :class:`Metric` entry in
:data:`METRICS`, the function that computes it, and a test of that function.

Levels:

* ``distribution`` — a group's human distribution against the model's, per item;
* ``respondent`` — a respondent's answer against the predicted distribution;
* ``population`` — the full sample's (or a subgroup's) weighted shares estimated from
  observed + imputed answers against the true shares, and the Rubin intervals around them;
* ``model`` — a property of the model's output alone (no human target).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "LEVELS",
    "METRICS",
    "Direction",
    "Level",
    "Metric",
    "get_metric",
    "header",
    "higher_is_better",
    "label",
    "lower_is_better",
    "names",
]

Level = Literal["distribution", "respondent", "population", "model"]
#: ``lower`` / ``higher`` is better; ``target``: closest to a nominal value is best (the
#: coverage of a 95% interval should be 0.95, not 1).
Direction = Literal["lower", "higher", "target"]
LEVELS: tuple[Level, ...] = ("distribution", "respondent", "population", "model")
_ARROWS = {"lower": " ↓", "higher": " ↑", "target": ""}


@dataclass(frozen=True)
class Metric:
    """One metric's metadata.

    Attributes:
        name: The column / ``metric`` value the runners and :func:`~surveylm.evaluation.
            evaluate` write.
        levels: The levels it is computed at (:data:`LEVELS`); the first is its home.
        label: Long, self-explaining label with range or unit (figure axes).
        short: Short name for table headers (the direction arrow is added by
            :func:`header`).
        direction: Which way is better (:data:`Direction`).
        function: ``"module:qualified.name"`` of the function that defines it (the
            reference implementation; resolved by :meth:`resolve`).
        headline: Shown in the runners' terminal tables (the simulation table's
            metrics; the imputation summary's columns).
    """

    name: str
    levels: tuple[Level, ...]
    label: str
    short: str
    direction: Direction
    function: str
    headline: bool = True

    @property
    def level(self) -> Level:
        """The metric's home level (the first of :attr:`levels`)."""
        return self.levels[0]

    @property
    def header(self) -> str:
        """``short`` with the direction arrow: ``"TV ↓"``, ``"accuracy ↑"``."""
        return self.short + _ARROWS[self.direction]

    def resolve(self) -> Callable[..., Any]:
        """Import and return :attr:`function`."""
        module, _, qualname = self.function.partition(":")
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj


_D = "surveylm.metrics.distribution"
_R = "surveylm.metrics.respondent"
_METRICS = (
    # distribution level, in report order (DISTRIBUTION_METRICS)
    Metric("wd", ("distribution",), "Wasserstein distance (ordinal, 0–1)", "WD", "lower",
           f"{_D}:wasserstein"),
    Metric("tv", ("distribution", "population"), "total variation distance (0–1)", "TV",
           "lower", f"{_D}:total_variation"),
    Metric("jsd", ("distribution",), "Jensen–Shannon divergence (bits, 0–1)", "JSD bits",
           "lower", f"{_D}:js_divergence"),
    Metric("kl", ("distribution",), "KL divergence (nats)", "KL nats", "lower",
           f"{_D}:kl_divergence", headline=False),
    Metric("simbench", ("distribution",), "SimBench score (100 = perfect, 0 = uniform)",
           "SimBench", "higher", f"{_D}:simbench_score", headline=False),
    # respondent level, in report order (RESPONDENT_METRICS)
    Metric("accuracy", ("respondent",), "accuracy (weighted share correct, 0–1)", "accuracy",
           "higher", f"{_R}:accuracy"),
    Metric("balanced_accuracy", ("respondent",), "balanced accuracy (0–1)", "bal. accuracy",
           "higher", f"{_R}:balanced_accuracy"),
    Metric("macro_f1", ("respondent",), "macro F1 (0–1)", "macro F1", "higher",
           f"{_R}:macro_f1"),
    Metric("log_loss", ("respondent",), "log loss (nats per respondent)", "log loss", "lower",
           f"{_R}:log_loss"),
    Metric("brier", ("respondent",), "Brier score (0–2)", "Brier", "lower", f"{_R}:brier_score"),
    # population level: the imputation summary's columns (tv above)
    Metric("max_abs_error", ("population",), "largest absolute share error (0–1)",
           "max abs error", "lower", "surveylm.metrics.population:population_errors"),
    Metric("mi_tv", ("population",), "total variation of the Rubin-pooled shares (0–1)",
           "MI share TV", "lower", f"{_D}:total_variation"),
    Metric("coverage", ("population",), "share of draws whose Rubin interval holds the truth",
           "MI coverage", "target", "surveylm.mi_pooling:summarise_coverage"),
    Metric("mean_width", ("population",), "mean Rubin interval width (0–1)", "mean width",
           "lower", "surveylm.mi_pooling:summarise_coverage"),
    Metric("subgroup_tv", ("population",), "total variation of subgroup shares (0–1)",
           "subgroup share TV", "lower", f"{_D}:total_variation"),
    # the model's own output
    Metric("format_mass", ("model",), "format mass (probability on the options, 0–1)",
           "format mass", "higher", "surveylm.models.causal_lm:CausalLMAnswerModel.predict",
           headline=False),
)  # fmt: skip
#: Every metric by name, in report order.
METRICS: dict[str, Metric] = {m.name: m for m in _METRICS}


def get_metric(name: str) -> Metric:
    """The registry entry of ``name`` (KeyError naming the known metrics if absent)."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {sorted(METRICS)}") from None


def names(level: Level, *, headline: bool | None = None) -> tuple[str, ...]:
    """Metrics computed at ``level``, in report order (``headline``: only those shown, or
    not shown, in the terminal tables)."""
    return tuple(
        m.name
        for m in METRICS.values()
        if level in m.levels and (headline is None or m.headline == headline)
    )


def label(name: str) -> str:
    """The long label of a metric (figure axes); an unknown name is returned as is."""
    m = METRICS.get(name)
    return m.label if m else name


def header(name: str) -> str:
    """The table header of a metric (``"TV ↓"``); an unknown name is returned as is."""
    m = METRICS.get(name)
    return m.header if m else name


def lower_is_better(name: str) -> bool:
    """Whether a lower value of the metric is better."""
    return get_metric(name).direction == "lower"


def higher_is_better(name: str) -> bool:
    """Whether a higher value of the metric is better."""
    return get_metric(name).direction == "higher"
