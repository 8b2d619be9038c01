"""Metrics: distribution, respondent and population level, and sampling-noise floors.

The definitions are the ones of DESIGN.md ("Reference definitions") and are tested
against independent implementations (scipy, scikit-learn):

* :mod:`~surveylm.metrics.distribution` — for one item, human distribution ``p`` (the
  target) against model distribution ``q``: ordinal Wasserstein distance (SubPOP,
  OpinionQA), total variation, SimBench score, Jensen–Shannon divergence (bits), KL(p‖q)
  (nats); and the sampling-noise floors (multinomial and respondent bootstrap).
* :mod:`~surveylm.metrics.respondent` — for imputation (Holtdirk et al. 2025): accuracy,
  balanced accuracy, macro F1, log loss, multiclass Brier score, survey-weighted.
* :mod:`~surveylm.metrics.population` — weighted option shares of the full population
  against the estimate from observed + imputed answers.
* :mod:`~surveylm.metrics.bootstrap` — paired percentile bootstrap of (weighted) means.
* :mod:`~surveylm.metrics.registry` — the one registry of every metric's level, labels,
  direction and defining function, which evaluation, runners and report read.
"""

from surveylm.metrics.distribution import (
    DISTRIBUTION_METRICS,
    KL_FLOOR,
    SIMBENCH_MIN_TV,
    bootstrap_floor,
    check_ordinal,
    distribution_metrics,
    entropy,
    floor_sample_size,
    js_distance,
    js_divergence,
    kl_divergence,
    noise_floor,
    noise_floor_matrix,
    simbench_score,
    total_variation,
    wasserstein,
)
from surveylm.metrics.population import population_errors, weighted_shares
from surveylm.metrics.registry import METRICS, Metric, get_metric
from surveylm.metrics.respondent import (
    RESPONDENT_METRICS,
    accuracy,
    balanced_accuracy,
    brier_score,
    class_metrics,
    log_loss,
    macro_f1,
    respondent_metrics,
    respondent_values,
)

__all__ = [
    "DISTRIBUTION_METRICS",
    "KL_FLOOR",
    "METRICS",
    "RESPONDENT_METRICS",
    "SIMBENCH_MIN_TV",
    "Metric",
    "accuracy",
    "balanced_accuracy",
    "bootstrap_floor",
    "brier_score",
    "check_ordinal",
    "class_metrics",
    "distribution_metrics",
    "entropy",
    "floor_sample_size",
    "get_metric",
    "js_distance",
    "js_divergence",
    "kl_divergence",
    "log_loss",
    "macro_f1",
    "noise_floor",
    "noise_floor_matrix",
    "population_errors",
    "respondent_metrics",
    "respondent_values",
    "simbench_score",
    "total_variation",
    "wasserstein",
    "weighted_shares",
]
