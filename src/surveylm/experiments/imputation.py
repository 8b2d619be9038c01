"""The imputation comparison: methods × non-response scenarios, scored like a methodologist would.

Reproduces, for any survey, the design of Holtdirk et al. (2025, "Learning from
Convenience Samples"): hide the answers to a target question under random (MCAR,
stratified k-fold) or systematic (convenience sample) non-response, impute them with each
method, and score

* **respondents**: accuracy, balanced accuracy, macro F1, log loss and Brier score on the
  hidden respondents (:func:`surveylm.evaluation.evaluate`, survey-weighted, with paired
  bootstrap intervals);
* **population**: the weighted option shares of the full sample estimated from observed +
  imputed answers (the expected shares under the predicted distributions) against the true
  shares — absolute error per option and total variation, overall and within subgroups;
* **multiple imputation**: ``m`` completed datasets drawn from each method's distributions
  and pooled by Rubin's rules (Rubin 1987; Barnard & Rubin 1999 degrees of freedom), with
  the coverage of the true full-sample share over repeated scenario draws
  (:func:`surveylm.mi_pooling.multiple_imputation_shares`). A confident but wrong model
  shows up as intervals that miss.

Respondents who never answered the target have no truth and are dropped first, so the
"full sample" is the respondents with a known answer.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from surveylm.errors import ConfigError, SurveyLMError, where
from surveylm.evaluation import evaluate
from surveylm.experiments.imputation_config import (
    ImputationConfig,
    MethodConfig,
    load_imputation_config,
)
from surveylm.experiments.ppi_imputation import ppi_rows, with_mi
from surveylm.io.tables import columns_first
from surveylm.items import ItemSet, build_respondent_items
from surveylm.metrics.registry import names as metric_names
from surveylm.mi_pooling import multiple_imputation_shares, summarise_coverage
from surveylm.missingness import apply_missingness
from surveylm.missingness_config import MCARConfig
from surveylm.models import make_run_model, model_class
from surveylm.models.base import Predictions, derive_seed
from surveylm.progress import progress_bar
from surveylm.splits import kfold_respondents
from surveylm.survey import Survey
from surveylm.threads import apply_thread_policy

#: The respondent metrics of the summary, in report order (from the metric registry).
RESPONDENT_COLUMNS = list(metric_names("respondent", headline=True))
_VERSIONED = (
    "surveylm", "numpy", "pandas", "scipy", "scikit-learn", "statsmodels", "catboost",
    "torch", "transformers", "peft", "sentence-transformers", "pydantic",
)  # fmt: skip


@dataclass(eq=False)
class ImputationResults:
    """Tidy results of :func:`run_imputation_benchmark`.

    Attributes:
        respondent: ``scenario, method, rep, metric, value, ci_low, ci_high, n_items``.
        population: One row per scenario × method × rep × unit (a missing-data draw, e.g. a
            fold) × subgroup × option: ``truth``, ``expected`` (observed + predicted
            distributions), ``abs_error``, ``tv``, and the Rubin-pooled ``estimate``,
            ``se``, ``lower``, ``upper``, ``df``, ``fmi``, ``covered``, ``n_imputed``.
            ``group_var``/``group`` are empty for the full sample.
        coverage: Per scenario × method × option over all draws (full sample): ``draws``,
            ``coverage``, ``coverage_se``, ``mean_width``, ``bias``, ``rmse``.
        summary: One row per scenario × method: respondent metrics (means over
            repetitions), population TV / max abs error, subgroup TV, MI coverage and
            interval width (wall times are in ``timings``, apart from results).
        timings: ``scenario, method, rep, unit, seconds, n_train, n_imputed``.
        ppi: With ``ppi_folds`` set, the prediction-powered (PPI++) share of every
            option per scenario × method × draw beside the MI estimate, with ``disagree``
            (:func:`surveylm.experiments.ppi_imputation.with_mi`); empty otherwise.
        predictions: The predicted distribution of every imputed respondent, long:
            ``scenario, method, rep, unit, respondent_id, weight, option, prob, observed``
            (``observed`` = 1 for the respondent's true answer) — what a reliability
            diagram (calibration) is drawn from.
        config: The config that was run.
        settings: Dataset size, dropped respondents, wall time, package versions.
    """

    respondent: pd.DataFrame
    population: pd.DataFrame
    coverage: pd.DataFrame
    summary: pd.DataFrame
    timings: pd.DataFrame
    config: ImputationConfig
    settings: dict[str, Any] = field(default_factory=dict)
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    ppi: pd.DataFrame = field(default_factory=pd.DataFrame)

    def table(self, digits: int = 3) -> pd.DataFrame:
        """The summary rounded for the terminal (index = scenario, method)."""
        return self.summary.set_index(["scenario", "method"]).round(digits)

    def to_files(self, directory: str | Path) -> list[Path]:
        """Write every table as Parquet and CSV, the config as YAML, the settings (with
        package versions) as JSON and the wall time as ``timings.json`` into
        ``directory``, replacing the folder whole
        (:func:`~surveylm.experiments.results_folder.write_results`)."""
        from surveylm.experiments.results_folder import write_results

        tables = {name: getattr(self, name) for name in _TABLES}
        if len(self.ppi):  # only when the config asked for it (ppi_folds)
            tables["ppi"] = self.ppi
        return write_results(directory, tables, self.config.to_yaml(), self.settings)

    @classmethod
    def from_files(cls, directory: str | Path) -> ImputationResults:
        """Read back results written by :meth:`to_files` (a resumed run's finished stage)."""
        from surveylm.experiments.results_folder import read_results

        optional = ("ppi",) if (Path(directory) / "ppi.parquet").is_file() else ()
        tables, config, settings = read_results(directory, _TABLES + optional)
        return cls(config=load_imputation_config(config), settings=settings, **tables)


_TABLES = ("summary", "respondent", "population", "coverage", "timings", "predictions")


def run_imputation_benchmark(
    config: ImputationConfig | str | Path,
    output_dir: str | Path | None = None,
    progress: bool = True,
) -> ImputationResults:
    """Run every method under every scenario and score the imputations.

    Args:
        config: An :class:`ImputationConfig` or the path of its YAML file.
        output_dir: Where to write the tidy results (``None``: nothing is written).
        progress: Show a progress bar over scenario × method × missing-data draw.

    Returns:
        :class:`ImputationResults`; ``results.table()`` is the terminal table.

    Raises:
        ConfigError, DataError: a bad config (unknown model, feature, option in a
            filter, a scenario that hides nothing, ...), named in the message.
    """
    if not isinstance(config, ImputationConfig):
        config = load_imputation_config(config)
    threads = apply_thread_policy(config.threads, source="config")
    start = time.perf_counter()
    full, dropped = _load(config)
    for method in config.methods:
        model_class(method.model)  # an unknown model fails before any work
    units = {s.label(): list(_draws(config, s, full)) for s in config.scenarios}
    truth_items = build_respondent_items(full, config.target, config.features)
    row_of = {rid: i for i, rid in enumerate(truth_items.frame["respondent_id"])}
    groups = _groups(full, config.group_by)
    truth_codes = pd.Series(full.codes(config.target), index=full.data.index.astype(str))
    options = full.questions[config.target].options
    total = sum(len(u) for u in units.values()) * len(config.methods)
    resp, pop, times, pred_rows, ppi = [], [], [], [], []
    with progress_bar("imputation", total, progress) as advance:
        for scenario, draws in units.items():
            for rep in sorted({r for r, _, _ in draws}):
                preds: dict[str, list[Predictions]] = {m.name: [] for m in config.methods}
                hidden = np.zeros(full.n_respondents, dtype=bool)
                for r, unit, mask in draws:
                    if r != rep:
                        continue
                    hidden |= mask
                    observed = apply_missingness(full, config.target, mask)
                    items = build_respondent_items(
                        observed, config.target, config.features, include_unanswered=True
                    )
                    known = items.has_target
                    train, test = items.subset(known), items.subset(~known)
                    for method in config.methods:
                        advance(f"{scenario} · {method.name} · draw {rep + 1}.{unit + 1}")
                        t0 = time.perf_counter()
                        p = _fit_predict(method, train, test, derive_seed(config.seed, rep, unit))
                        secs = time.perf_counter() - t0
                        times.append((scenario, method.name, rep, unit, secs, len(train),
                                      len(test)))  # fmt: skip
                        preds[method.name].append(p)
                        pred_rows.append(
                            _prediction_rows(p, test, truth_codes, options).assign(
                                scenario=scenario, method=method.name, rep=rep, unit=unit
                            )
                        )
                        seed = config.seed + 1000 * rep + unit
                        for frame in _population_rows(full, config, mask, p, seed, groups):
                            pop.append(frame.assign(scenario=scenario, method=method.name,
                                                    rep=rep, unit=unit))  # fmt: skip
                        if config.ppi_folds:
                            ppi.append(ppi_rows(observed, config, method, seed).assign(
                                scenario=scenario, method=method.name, rep=rep, unit=unit))
                    for frame in _complete_case_rows(full, config, mask, groups):
                        pop.append(frame.assign(scenario=scenario, method=COMPLETE_CASE, rep=rep,
                                                unit=unit))  # fmt: skip
                scored = truth_items.subset([row_of[str(r)] for r in full.data.index[hidden]])
                ev = evaluate(
                    scored,
                    {name: _concat(ps, name) for name, ps in preds.items()},
                    n_boot=config.n_boot,
                    seed=config.seed + rep,
                    include_references=False,
                )
                resp.append(ev.overall.assign(scenario=scenario, rep=rep))
    respondent = pd.concat(resp, ignore_index=True).rename(columns={"model": "method"})
    respondent = respondent[["scenario", "method", "rep", "metric", "value", "ci_low",
                             "ci_high", "n_items"]]  # fmt: skip
    population = pd.concat(pop, ignore_index=True)
    population = columns_first(
        population, ["scenario", "method", "rep", "unit", "group_var", "group", "option"]
    )
    timings = pd.DataFrame(
        times, columns=["scenario", "method", "rep", "unit", "seconds", "n_train", "n_imputed"]
    )
    predictions = columns_first(
        pd.concat(pred_rows, ignore_index=True), ["scenario", "method", "rep", "unit"]
    )
    coverage = _coverage(population)
    summary = _summary(config, respondent, population, timings)
    settings = {
        "dataset": config.dataset, "respondents": full.n_respondents,
        "dropped_without_target": dropped, "draws_per_scenario": {k: len(v) for k, v in
                                                                  units.items()},
        "wall_seconds": round(time.perf_counter() - start, 1), "versions": package_versions(),
        "threads": threads.as_dict(),
    }  # fmt: skip
    results = ImputationResults(
        respondent, population, coverage, summary, timings, config, settings, predictions,
        with_mi(ppi, population),
    )
    if output_dir is not None:
        results.to_files(output_dir)
    return results


# -- steps ------------------------------------------------------------------------------
def _load(config: ImputationConfig) -> tuple[Survey, int]:
    from surveylm.io.sources import load_survey_source

    survey = load_survey_source(config.dataset, config.codebook)
    survey.question(config.target)
    for col in [*config.features, *([config.group_by] if config.group_by else [])]:
        if col not in survey.questions and col not in survey.covariates:
            raise ConfigError(f"{where(column=col)}not a question or covariate of '{survey.name}'")
    answered = survey.answered(config.target)
    survey = survey.subset(answered)
    if config.max_respondents is not None and survey.n_respondents > config.max_respondents:
        rng = np.random.default_rng(config.seed)
        keep = np.zeros(survey.n_respondents, dtype=bool)
        keep[rng.choice(survey.n_respondents, config.max_respondents, replace=False)] = True
        survey = survey.subset(keep)
    return survey, int((~answered).sum())


def _draws(config: ImputationConfig, scenario: Any, survey: Survey) -> Iterator[tuple]:
    """``(rep, unit, mask)`` for each missing-data draw of a scenario."""
    target = config.target
    if isinstance(scenario, MCARConfig):
        k = config.folds
        inv = 1.0 / scenario.rate
        if k is None and abs(inv - round(inv)) < 1e-9:
            k = round(inv)
        if k is not None and abs(k * scenario.rate - 1.0) > 1e-9:
            raise ConfigError(
                f"scenario '{scenario.label()}': {k} folds hide 1/{k} of the answers, not "
                f"{scenario.rate:.0%}; set folds to null or the rate to {1 / k:g}"
            )
        if k is not None:
            for rep in range(config.repetitions):
                folds = kfold_respondents(survey, k, seed=config.seed + rep, stratify=target)
                for unit, (_, test) in enumerate(folds):
                    yield rep, unit, test
            return
    reps = 1 if scenario.kind == "convenience" else config.repetitions
    for rep in range(reps):
        yield rep, 0, np.asarray(scenario.mask(survey, target, config.seed + rep), dtype=bool)


def _fit_predict(
    method: MethodConfig, train: ItemSet, test: ItemSet, random_state: int
) -> Predictions:
    """Fit (unless ``fit: false``) and predict one method on one missing-data draw; the
    model's ``random_state`` is the draw's, ``verbose`` off (unless the config says)."""
    try:
        model = make_run_model(method.model, method.params, random_state)
        if method.fit:
            model.fit(train)
        return model.predict(test)
    except SurveyLMError as exc:
        raise type(exc)(f"method '{method.name}': {exc}") from None


def _groups(survey: Survey, group_by: str | None) -> list[tuple[str, np.ndarray]]:
    if group_by is None:
        return []
    values = survey.data[group_by]
    if group_by in survey.questions:
        codes = survey.codes(group_by)
        labels = survey.questions[group_by].options
        return [(str(o), codes == k) for k, o in enumerate(labels)]
    present = values.notna().to_numpy()
    text = values.astype(object).map(str).to_numpy()
    return [(str(v), present & (text == v)) for v in sorted(set(text[present]))]


def _population_rows(
    survey: Survey,
    config: ImputationConfig,
    mask: np.ndarray,
    preds: Predictions,
    seed: int,
    groups: list[tuple[str, np.ndarray]],
) -> Iterator[pd.DataFrame]:
    for name, sub in [(None, None), *groups]:
        if sub is not None and sub.sum() < config.min_group_n:
            continue  # small cells are never estimated, so they can never be shown
        mi = multiple_imputation_shares(
            survey, config.target, mask, preds, config.m, seed,
            level=config.level, estimand=config.estimand, subgroup=sub,
        )  # fmt: skip
        frame = mi.to_frame().drop(columns=["question"])
        err = np.abs(mi.expected - mi.truth)
        yield frame.assign(
            group_var=config.group_by if name is not None else None,
            group=name,
            n_group=survey.n_respondents if sub is None else int(sub.sum()),
            abs_error=err,
            tv=0.5 * err.sum(),
            mi_tv=0.5 * np.abs(mi.pooled.estimate - mi.truth).sum(),
            covered=frame["covered"].astype(bool),
        )


#: Population rows of the observed-only estimate, beside every method's.
COMPLETE_CASE = "complete case"


def _complete_case_rows(
    survey: Survey, config: ImputationConfig, mask: np.ndarray,
    groups: list[tuple[str, np.ndarray]],
) -> Iterator[pd.DataFrame]:  # fmt: skip
    """The complete-case (observed-only) share: the kept answers' weighted share with a
    t interval on their Kish n_eff (finite-population corrected for the ``sample``
    estimand) — the first thing every imputation is compared with. Nothing is imputed."""
    from scipy import stats

    from surveylm.metrics.population import weighted_shares
    from surveylm.mi_pooling import completed_shares
    from surveylm.survey import kish_effective_n

    codes = survey.codes(config.target)
    w = survey.weights.to_numpy(float)
    k = survey.questions[config.target].n_options
    for name, sub in [(None, np.ones(len(codes), bool)), *groups]:
        keep = sub & ~mask & (codes >= 0)
        if (name is not None and sub.sum() < config.min_group_n) or keep.sum() < 2:
            continue
        est, var = completed_shares(codes[keep], w[keep], k)
        if config.estimand == "sample":
            var = var * (1 - keep.sum() / sub.sum())
        n_eff = kish_effective_n(w[keep])
        half = stats.t.ppf(0.5 + config.level / 2, max(n_eff - 1, 1)) * np.sqrt(var)
        truth = weighted_shares(codes[sub], w[sub], k) if (codes[sub] >= 0).all() else np.nan
        err = np.abs(est - truth)
        yield pd.DataFrame({
            "option": survey.questions[config.target].options, "estimate": est,
            "expected": est, "se": np.sqrt(var), "lower": est - half, "upper": est + half,
            "df": n_eff - 1, "truth": truth,
            "covered": (est - half <= truth) & (truth <= est + half), "n_imputed": 0,
            "estimand": config.estimand,
            "group_var": config.group_by if name is not None else None, "group": name,
            "n_group": int(sub.sum()), "abs_error": err, "tv": 0.5 * err.sum(),
            "mi_tv": 0.5 * err.sum(),
        })  # fmt: skip


def _prediction_rows(
    preds: Predictions, test: ItemSet, truth_codes: pd.Series, options: Sequence[str]
) -> pd.DataFrame:
    """Long ``respondent_id, weight, option, prob, observed`` rows of one draw's imputations
    (``truth_codes``: each respondent's true option index, by respondent id)."""
    preds = preds.for_items(test)
    rid = test.frame["respondent_id"].astype(str).to_numpy()
    truth = truth_codes.loc[rid].to_numpy()
    k = len(options)
    probs = np.vstack(preds.distributions) if len(preds) else np.zeros((0, k))
    return pd.DataFrame(
        {
            "respondent_id": np.repeat(rid, k),
            "weight": np.repeat(test.frame["weight"].to_numpy(float), k),
            "option": np.tile(np.asarray(options, dtype=object), len(rid)),
            "prob": probs.ravel(),
            "observed": (np.tile(np.arange(k), len(rid)) == np.repeat(truth, k)).astype(int),
        }
    )


def _concat(parts: list[Predictions], name: str) -> Predictions:
    ids = np.concatenate([p.item_ids for p in parts])
    dists = [d for p in parts for d in p.distributions]
    masses = [p.format_mass for p in parts]
    known = [m for m in masses if m is not None]
    mass = np.concatenate(known) if len(known) == len(masses) else None
    return Predictions(ids, dists, name, mass)


def _coverage(population: pd.DataFrame) -> pd.DataFrame:
    full = population[population["group"].isna()]
    return summarise_coverage(full, by=("scenario", "method", "option"), count="draws")


def _summary(
    config: ImputationConfig,
    respondent: pd.DataFrame,
    population: pd.DataFrame,
    timings: pd.DataFrame,
) -> pd.DataFrame:
    keys = ["scenario", "method"]
    resp = respondent.pivot_table(index=keys, columns="metric", values="value", aggfunc="mean")
    # a language model's format mass (probability on the option tokens) rides along
    shown = [c for c in (*RESPONDENT_COLUMNS, "format_mass") if c in resp.columns]
    resp = resp.reindex(columns=shown)
    full = population[population["group"].isna()]
    per_draw = full.groupby([*keys, "rep", "unit"], sort=False).agg(
        tv=("tv", "first"), max_abs_error=("abs_error", "max"), mi_tv=("mi_tv", "first"),
        coverage=("covered", "mean"), width=("upper", "sum"), lower=("lower", "sum"),
    )  # fmt: skip
    per_draw["mean_width"] = (per_draw["width"] - per_draw["lower"]) / full["option"].nunique()
    pop = per_draw.groupby(keys, sort=False)[
        ["tv", "max_abs_error", "mi_tv", "coverage", "mean_width"]
    ].mean()
    sub = population[population["group"].notna()]
    parts = [resp, pop]
    if not sub.empty:
        sub_tv = sub.groupby([*keys, "rep", "unit", "group"], sort=False)["tv"].first()
        parts.append(sub_tv.groupby(level=keys, sort=False).mean().rename("subgroup_tv"))
    draws = per_draw.groupby(keys, sort=False).size().rename("draws")
    out = pd.concat([*parts, draws], axis=1).reset_index()  # timings stay in their table
    scen = {s.label(): i for i, s in enumerate(config.scenarios)}
    meth = {m.name: i for i, m in enumerate(config.methods)}
    rank = out["scenario"].map(scen) * len(meth) + out["method"].map(meth)
    return out.iloc[np.argsort(rank.to_numpy(), kind="stable")].reset_index(drop=True)


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape the numbers (``"absent"`` if not
    installed)."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


__all__ = [
    "ImputationConfig",
    "ImputationResults",
    "MethodConfig",
    "load_imputation_config",
    "package_versions",
    "run_imputation_benchmark",
]
