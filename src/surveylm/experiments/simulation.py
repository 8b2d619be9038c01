"""Simulation benchmark: group answer distributions on unseen questions and unseen groups.

The protocol follows SubPOP (Suh et al. 2025) and Cao et al. 2025: respondents are split
in two halves; group items (question × group answer distributions) from one half are the
training data and those from the other half are the evaluation truth. Questions and
groups are held out and crossed (seen/unseen question × seen/unseen group, Cao et al.),
with the leak checks of :func:`surveylm.splits.crossed_split`. Every method predicts
every test cell and is scored with :func:`surveylm.evaluation.evaluate` (WD on ordinal
questions, TV, JSD, with bootstrap intervals and the uniform and sampling-noise
references), per question, per group and overall. Two further reports:

* **diversity** (Cao et al. found fine-tuned models less diverse than humans): mean
  entropy of predicted vs human distributions, and the spread of one question's
  distributions across groups (mean pairwise TV between groups), predicted vs human;
* **prompt robustness** (DSA, Huang, Li, Shao 2025): language models re-evaluated under
  every applicable group prompt format and with permuted option orders.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from surveylm.errors import ConfigError, DataError
from surveylm.evaluation import evaluate
from surveylm.experiments.simulation_config import (
    TRAINING_DATA,
    SimMethodConfig,
    SimulationConfig,
    load_simulation_config,
)
from surveylm.io.tables import columns_first
from surveylm.items import ItemSet, build_group_items
from surveylm.metrics.registry import names as metric_names
from surveylm.models import make_run_model, model_class
from surveylm.models.base import Predictions
from surveylm.progress import progress_bar
from surveylm.splits import crossed_split, split_respondents
from surveylm.survey import Survey
from surveylm.threads import apply_thread_policy

__all__ = ["SimulationResults", "build_split", "run_simulation_benchmark"]

SPLITS = ("seen_q/seen_g", "seen_q/unseen_g", "unseen_q/seen_g", "unseen_q/unseen_g",
          "unseen_survey")  # fmt: skip
LM_MODELS = ("encoder", "causal-lm", "dsa")
#: The metrics of the terminal table (the registry's headline distribution metrics).
TABLE_METRICS = metric_names("distribution", headline=True)


@dataclass(eq=False)
class SimulationResults:
    """Tidy results of :func:`run_simulation_benchmark` (every frame has a ``split``).

    Attributes:
        overall: ``split, method, metric, value, ci_low, ci_high, n_items, reference``.
        per_item / per_question / per_group: As :class:`~surveylm.evaluation.Evaluation`.
        diversity: ``split, method, entropy_pred, entropy_human, spread_pred, spread_human``.
        robustness: ``split, method, variant, metric, value`` (variant = format or order).
        timings: ``method, fit_seconds, predict_seconds, n_train``.
        training_curves: ``method, step, epoch, split, loss`` of every fitted method with
            a loss curve (train and inner-validation loss; DESIGN.md, "Fitting").
        pilot: Each method's group distributions corrected by k real respondents of the
            group (:func:`surveylm.experiments.pilot.summarise_pilot`; empty unless the
            config has ``pilot``).
        distributions: Predicted and human distributions, long: ``split, method, item_id,
            question_id, group_var, group, n, option, predicted, human`` — what
            predicted-vs-human small multiples are drawn from.
        config / settings: What was run (sizes, held-out questions/groups, wall time).
    """

    overall: pd.DataFrame
    per_item: pd.DataFrame
    per_question: pd.DataFrame
    per_group: pd.DataFrame
    diversity: pd.DataFrame
    robustness: pd.DataFrame
    timings: pd.DataFrame
    config: SimulationConfig
    settings: dict[str, Any] = field(default_factory=dict)
    distributions: pd.DataFrame = field(default_factory=pd.DataFrame)
    training_curves: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(CURVE_COLUMNS))
    )
    pilot: pd.DataFrame = field(default_factory=pd.DataFrame)

    def table(self, metrics: tuple[str, ...] = TABLE_METRICS, digits: int = 3) -> pd.DataFrame:
        """Methods × (split, metric), ``"value [lo, hi]"`` strings; references last."""
        sub = self.overall[self.overall["metric"].isin(metrics)]
        cells: dict[tuple[str, str], dict[str, str]] = {}
        for r in sub.itertuples(index=False):
            text = f"{r.value:.{digits}f}"
            if np.isfinite(r.ci_low):
                text += f" [{r.ci_low:.{digits}f}, {r.ci_high:.{digits}f}]"
            cells.setdefault((r.split, r.metric), {})[r.method] = text
        out = pd.DataFrame(cells)
        order = list(dict.fromkeys(self.overall["method"]))
        cols = [(s, m) for s in SPLITS for m in metrics if (s, m) in out.columns]
        return out.reindex(index=order, columns=pd.MultiIndex.from_tuples(cols)).fillna("")

    def to_files(self, directory: str | Path) -> list[Path]:
        """Every frame as Parquet and CSV, the table as CSV, config YAML, settings JSON and
        the wall time as ``timings.json``, replacing the folder whole
        (:func:`~surveylm.experiments.results_folder.write_results`)."""
        from surveylm.experiments.results_folder import write_results

        def table_csv(folder: Path) -> None:
            self.table().to_csv(folder / "table.csv")

        tables = {name: getattr(self, name) for name in _TABLES}
        return write_results(directory, tables, self.config.to_yaml(), self.settings,
                             extra=table_csv)  # fmt: skip

    @classmethod
    def from_files(cls, directory: str | Path) -> SimulationResults:
        """Read back results written by :meth:`to_files` (a resumed run's finished stage)."""
        from surveylm.experiments.results_folder import read_results

        names = [n for n in _TABLES if n not in OPTIONAL_TABLES
                 or (Path(directory) / f"{n}.parquet").is_file()]  # fmt: skip
        tables, config, settings = read_results(directory, names)
        return cls(config=load_simulation_config(config), settings=settings, **tables)


_TABLES = ("overall", "per_item", "per_question", "per_group", "diversity", "robustness",
           "timings", "distributions", "training_curves", "pilot")  # fmt: skip
#: Tables that folders written before they existed lack.
OPTIONAL_TABLES = ("training_curves", "pilot")
CURVE_COLUMNS: tuple[str, ...] = ("method", "step", "epoch", "split", "loss")


# -- data -------------------------------------------------------------------------------
def load_survey(config: SimulationConfig) -> Survey:
    """The configured survey (a built-in dataset or a file)."""
    from surveylm.io.sources import load_survey_source

    return load_survey_source(config.dataset, config.codebook)


def group_items(survey: Survey, config: SimulationConfig) -> ItemSet:
    """Group items of the configured questions × groups."""
    by = [g if isinstance(g, str) else list(g) for g in config.group_by]
    return build_group_items(survey, config.questions, by=by, min_n=config.min_n)


def _common(a: ItemSet, b: ItemSet) -> tuple[ItemSet, ItemSet]:
    """Both item sets restricted to the question × group cells present in both."""
    shared = set(a.item_ids) & set(b.item_ids)
    return (a.subset(np.isin(a.item_ids, list(shared))),
            b.subset(np.isin(b.item_ids, list(shared))))  # fmt: skip


def held_out(items: ItemSet, config: SimulationConfig) -> tuple[list[str], list[str]]:
    """The unseen questions and unseen groups (configured, or drawn with the seed)."""
    rng = np.random.default_rng([config.seed, 17])
    qids = items.question_ids
    if config.test_questions is not None:
        tq = list(config.test_questions)
    else:
        k = min(len(qids) - 1, max(1, round(config.test_question_fraction * len(qids))))
        tq = sorted(rng.choice(qids, size=k, replace=False).tolist())
    if config.test_groups is not None:
        return tq, list(config.test_groups)
    tg: list[str] = []
    frame = items.frame
    for _, labels in frame.groupby("group_var", sort=True)["group"]:
        uniq = sorted(set(labels))
        k = min(len(uniq) - 1, max(1, round(config.test_group_fraction * len(uniq))))
        if k >= 1:
            tg += rng.choice(uniq, size=k, replace=False).tolist()
    return tq, sorted(tg)


def build_split(
    config: SimulationConfig, survey: Survey | None = None
) -> tuple[ItemSet, dict[str, ItemSet], Survey, dict[str, Any]]:
    """``(train items, {split: test items}, training survey half, facts)``."""
    survey = load_survey(config) if survey is None else survey
    train_s, test_s = split_respondents(survey, config.test_fraction, seed=config.seed)
    train_all, test_all = _common(group_items(train_s, config), group_items(test_s, config))
    if len(train_all) == 0:
        raise DataError("no group cell has min_n respondents in both halves; lower min_n")
    tq, tg = held_out(train_all, config)
    dup = config.near_duplicate_threshold
    train = crossed_split(train_all, tq, tg, near_duplicate_threshold=dup)["train"]
    cells = crossed_split(test_all, tq, tg, near_duplicate_threshold=None)  # warned above
    tests = {"seen_q/seen_g": cells.pop("train"), **cells}
    facts = {"respondents": survey.n_respondents, "train_respondents": train_s.n_respondents,
             "test_questions": tq, "test_groups": tg, "train_items": len(train),
             "test_items": {k: len(v) for k, v in tests.items()}}  # fmt: skip
    return train, {k: v for k, v in tests.items() if len(v)}, train_s, facts


def prepare_split(
    config: SimulationConfig,
) -> tuple[ItemSet, dict[str, ItemSet], Survey | None, dict[str, Any]]:
    """The training items and test cells of any config: one survey split in halves
    (:func:`build_split`), a distribution file, or the unseen-survey protocol
    (:mod:`surveylm.experiments.cross_survey`)."""
    from surveylm.experiments import cross_survey as cs

    if config.unseen_survey is not None:
        return cs.cross_survey_split(config)
    if cs.is_distribution_file(config.dataset):
        items, _ = cs.side(config.dataset, None, config.questions, config.group_by,
                           config.min_n, config.labels)  # fmt: skip
        train, tests, facts = cs.file_split(items, config)
        return train, tests, None, facts
    return build_split(config, load_survey(config))


# -- methods ----------------------------------------------------------------------------
def subsample_survey(survey: Survey, fraction: float, seed: int) -> Survey:
    """A random ``fraction`` of the respondents (all of them for ``fraction >= 1``)."""
    if fraction >= 1:
        return survey
    rng = np.random.default_rng(seed)
    n = max(2, round(fraction * survey.n_respondents))
    keep = np.zeros(survey.n_respondents, dtype=bool)
    keep[rng.choice(survey.n_respondents, size=n, replace=False)] = True
    return survey.subset(keep)


def fit_method(
    method: SimMethodConfig, train: ItemSet, train_survey: Survey | None, config: SimulationConfig
) -> Any:
    """A fitted model (or, for ``training-data``, the subsample's group distributions).

    Its ``random_state`` is the run's ``config.seed`` and ``verbose`` is off, unless the
    method's params set them."""
    if method.model == TRAINING_DATA:
        if train_survey is None or config.unseen_survey is not None:
            raise ConfigError(
                f"method '{method.name}': training-data needs respondents of the surveyed "
                "population (a survey dataset split in halves, not a distribution file or an "
                "unseen survey)"
            )
        params = dict(method.params)
        fraction = float(params.pop("fraction", 1.0))
        if params or not 0 < fraction <= 1:
            raise ConfigError(
                f"method '{method.name}': training-data takes only fraction in (0, 1]"
            )
        sub = subsample_survey(train_survey, fraction, config.seed + 7)
        cfg = config.with_overrides(min_n=1)
        items = group_items(sub, cfg)
        return make_run_model("group-marginal", {"smoothing": 0.0}, config.seed).fit(items)
    model = make_run_model(method.model, method.params, config.seed)
    return model.fit(train) if method.fit else model


def predict_named(model: Any, items: ItemSet, name: str) -> Predictions:
    """Predictions renamed to the method's display name."""
    return model.predict(items).renamed(name)


# -- diversity and robustness -----------------------------------------------------------
def diversity(items: ItemSet, pred: Predictions) -> dict[str, float]:
    """Mean entropy (bits) and mean between-group spread (pairwise TV), predicted vs human."""
    aligned = pred.for_items(items).distributions
    human = cast("list[np.ndarray]", items.targets)  # scored items: all known

    def ent(ps: list[np.ndarray]) -> float:
        return float(np.mean([-(p[p > 0] * np.log2(p[p > 0])).sum() for p in ps]))

    spreads_p, spreads_h = [], []
    qids = items.frame["question_id"].to_numpy()
    for q in np.unique(qids):
        pos = np.flatnonzero(qids == q)
        if len(pos) < 2:
            continue
        i, j = np.triu_indices(len(pos), 1)
        p = np.stack([aligned[k] for k in pos])
        h = np.stack([human[k] for k in pos])
        spreads_p.append(0.5 * np.abs(p[i] - p[j]).sum(-1).mean())
        spreads_h.append(0.5 * np.abs(h[i] - h[j]).sum(-1).mean())
    nan = float("nan")
    return {"entropy_pred": ent(aligned), "entropy_human": ent(human),
            "spread_pred": float(np.mean(spreads_p)) if spreads_p else nan,
            "spread_human": float(np.mean(spreads_h)) if spreads_h else nan}  # fmt: skip


def permute_options(items: ItemSet, seed: int) -> tuple[ItemSet, dict[str, np.ndarray]]:
    """The items with each question's options in a random (non-identity) order."""
    rng = np.random.default_rng(seed)
    questions, perms = dict(items.questions), {}
    for qid in items.question_ids:
        q = items.questions[qid]
        perm = rng.permutation(q.n_options)
        if np.array_equal(perm, np.arange(q.n_options)):
            perm = np.roll(perm, 1)
        perms[qid] = perm
        # the permuted copy is only predicted (nominal is enough); predictions are mapped
        # back to codebook order and scored against the original question
        questions[qid] = dataclasses.replace(q, options=tuple(q.options[k] for k in perm),
                                             ordinal=None)  # fmt: skip
    frame = items.frame.copy()
    targets = cast("list[np.ndarray]", items.targets)  # scored items: all known
    frame["target"] = [t[perms[q]] for t, q in zip(targets, frame["question_id"], strict=True)]
    return ItemSet(frame, questions, items.summary), perms


def predict_permuted(model: Any, items: ItemSet, seed: int, name: str) -> Predictions:
    """The model's predictions for ``items`` asked with permuted options
    (:func:`permute_options`), mapped back to the codebook order."""
    permuted, perms = permute_options(items, seed)
    raw = model.predict(permuted).for_items(permuted)
    dists = []
    for d, q in zip(raw.distributions, permuted.frame["question_id"], strict=True):
        out = np.empty_like(d)
        out[perms[q]] = d
        dists.append(out)
    return Predictions(permuted.item_ids, dists, name)


@contextlib.contextmanager
def prompt_format(model: Any, fmt: str) -> Iterator[None]:
    """Temporarily predict with another prompt format (the DSA model's backend too)."""
    target = getattr(model, "backend_", model)
    before = target.prompt_format
    target.set_params(prompt_format=fmt)
    try:
        yield
    finally:
        target.set_params(prompt_format=before)


def robustness_rows(
    model: Any, name: str, tests: dict[str, ItemSet], config: SimulationConfig, country: bool
) -> list[dict[str, Any]]:
    """Overall metrics per split under each prompt format and permuted option order."""
    rob = config.robustness
    assert rob is not None
    variants: list[tuple[str, Any]] = []
    for fmt in rob.formats:
        if fmt == "country" and not country:
            continue
        variants.append((f"format={fmt}", fmt))
    variants += [(f"order={k + 1}", k) for k in range(rob.permutations)]
    allitems = ItemSet.concat(list(tests.values()))
    rows = []
    for label, v in variants:
        if isinstance(v, str):
            with prompt_format(model, v):
                pred = predict_named(model, allitems, name)
        else:
            pred = predict_permuted(model, allitems, config.seed + 100 + v, name)
        for split, items in tests.items():
            ev = evaluate(items, {name: pred}, n_boot=0, include_references=False)
            for r in ev.overall.itertuples(index=False):
                if r.metric in TABLE_METRICS:
                    rows.append({"split": split, "method": name, "variant": label,
                                 "metric": r.metric, "value": r.value})  # fmt: skip
    return rows


# -- the runner -------------------------------------------------------------------------
def run_simulation_benchmark(
    config: SimulationConfig | str | Path,
    output_dir: str | Path | None = None,
    progress: bool = True,
) -> SimulationResults:
    """Run every method on every split and score it (see module docstring).

    Args:
        config: A :class:`SimulationConfig` or the path of its YAML file.
        output_dir: Where to write the tidy results (``None``: nothing is written).
        progress: Show a progress bar over the methods.

    Returns:
        :class:`SimulationResults`; ``results.table()`` is the terminal table.
    """
    if not isinstance(config, SimulationConfig):
        config = load_simulation_config(config)
    for m in config.methods:
        if m.model != TRAINING_DATA:
            model_class(m.model)
    threads = apply_thread_policy(config.threads, source="config")
    start = time.perf_counter()
    train, tests, train_s, facts = prepare_split(config)
    allitems = ItemSet.concat(list(tests.values()))
    country = any("country" in str(g) for g in config.group_by)
    rob_methods = None if config.robustness is None else config.robustness.methods
    frames: dict[str, list[pd.DataFrame]] = {
        k: [] for k in ("overall", "per_item", "per_question", "per_group")
    }
    div, rob, times, dists, curves, pilots = [], [], [], [], [], []
    pilot_data = _pilot_data(config, tests) if config.pilot is not None else None
    with progress_bar("simulation", len(config.methods), progress) as advance:
        for n_method, method in enumerate(config.methods, start=1):
            advance(method.name)
            t0 = time.perf_counter()
            model = fit_method(method, train, train_s, config)
            t1 = time.perf_counter()
            pred = predict_named(model, allitems, method.name)
            times.append(
                {
                    "method": method.name,
                    "fit_seconds": t1 - t0,
                    "predict_seconds": time.perf_counter() - t1,
                    "n_train": len(train),
                }
            )
            curves += [{"method": method.name, **r} for r in getattr(model, "curves_", [])]
            for split, items in tests.items():
                ev = evaluate(items, {method.name: pred}, n_boot=config.n_boot, seed=config.seed,
                              include_references=n_method == 1)  # fmt: skip
                for key in frames:
                    frames[key].append(getattr(ev, key).assign(split=split))
                div.append({"split": split, "method": method.name, **diversity(items, pred)})
                dists.append(distribution_rows(items, pred).assign(split=split, method=method.name))
            wanted = (
                method.model in LM_MODELS if rob_methods is None else method.name in rob_methods
            )
            if config.robustness is not None and wanted:
                rob += robustness_rows(model, method.name, tests, config, country)
            if pilot_data is not None and config.pilot is not None and (
                config.pilot.methods is None or method.name in config.pilot.methods
            ):
                pilots.append(_pilot_method(model, method.name, pred, tests, pilot_data,
                                            config))  # fmt: skip
    out = {k: _tidy(pd.concat(v, ignore_index=True)) for k, v in frames.items()}
    if not out["overall"].empty:
        refs = out["overall"][out["overall"]["reference"]]
        rest = out["overall"][~out["overall"]["reference"]]
        out["overall"] = pd.concat([rest, refs], ignore_index=True)
    facts["wall_seconds"] = round(time.perf_counter() - start, 1)
    facts["threads"] = threads.as_dict()
    results = SimulationResults(
        overall=out["overall"], per_item=out["per_item"], per_question=out["per_question"],
        per_group=out["per_group"], diversity=pd.DataFrame(div),
        robustness=pd.DataFrame(rob, columns=["split", "method", "variant", "metric", "value"]),
        timings=pd.DataFrame(times), config=config, settings=facts,
        distributions=columns_first(pd.concat(dists, ignore_index=True), ["split", "method"]),
        training_curves=pd.DataFrame(curves, columns=list(CURVE_COLUMNS)),
        pilot=pd.concat(pilots, ignore_index=True) if pilots else pd.DataFrame(),
    )  # fmt: skip
    if output_dir is not None:
        results.to_files(output_dir)
    return results


def _pilot_data(
    config: SimulationConfig, tests: dict[str, ItemSet]
) -> tuple[Survey, np.ndarray, ItemSet]:
    """What every method's pilot needs: the held-out half, each member's cell, and the
    cell items (:mod:`surveylm.experiments.pilot`)."""
    from surveylm.experiments import cross_survey as cs
    from surveylm.experiments import pilot

    if cs.is_distribution_file(config.dataset):
        raise ConfigError("pilot: needs respondents (a survey split in halves), not a "
                          "distribution file")  # fmt: skip
    half = pilot.held_out_half(config, load_survey(config))
    attrs = pilot.cell_attributes(list(config.group_by))
    qids = sorted({q for items in tests.values() for q in items.question_ids})
    return half, pilot.member_cells(half, attrs), pilot.cell_items(half, qids, attrs)


def _pilot_method(
    model: Any,
    name: str,
    pred: Predictions,
    tests: dict[str, ItemSet],
    data: tuple[Survey, np.ndarray, ItemSet],
    config: SimulationConfig,
) -> pd.DataFrame:
    """One method's pilot summary rows."""
    from surveylm.experiments import pilot

    assert config.pilot is not None
    half, cells, items = data
    rows = pilot.pilot_rows(name, pred, predict_named(model, items, name), tests, half, cells,
                            sizes=config.pilot.sizes, draws=config.pilot.draws,
                            seed=config.seed, level=config.pilot.level)  # fmt: skip
    return pilot.summarise_pilot(rows)


def distribution_rows(items: ItemSet, pred: Predictions) -> pd.DataFrame:
    """Long rows ``item_id, question_id, group_var, group, n, option, predicted, human``
    of the items that have a human (target) distribution."""
    pred = pred.for_items(items)
    rows = []
    frame = items.frame
    for i, (target, p) in enumerate(zip(items.targets, pred.distributions, strict=True)):
        if target is None:
            continue
        options = items.item_question(i).options
        meta = frame.iloc[i]
        for option, q, h in zip(options, p, target, strict=True):
            rows.append({"item_id": meta["item_id"], "question_id": meta["question_id"],
                         "group_var": meta["group_var"], "group": meta["group"],
                         "n": meta["n"], "option": option, "predicted": float(q),
                         "human": float(h)})  # fmt: skip
    return pd.DataFrame(rows)


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    return columns_first(frame.rename(columns={"model": "method"}), ["split"])
