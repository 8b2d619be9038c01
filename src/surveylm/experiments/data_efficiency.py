"""Data efficiency: how much real survey data is a method "worth"? (DSA, Huang, Li, Shao 2025).

Training respondents (one half, as in :mod:`surveylm.experiments.simulation`) are
subsampled at several fractions; group distributions of each subsample train every method
and are themselves "the training data" prediction. Everything is scored (TV) against the
held-out half's group distributions on the seen question × group cells. For each method
and fraction, the *equivalent fraction* is where the training-data curve (mean over
subsamples, linearly interpolated) reaches the method's error. The band is a percentile
bootstrap over items (95 %): items are resampled, each item's error averaged over the
subsamples, so it holds both the subsampling and the item-sampling variation. Note: the
truth is the held-out half, not the full sample, so no method is scored on respondents it
was trained on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from surveylm.evaluation import evaluate
from surveylm.experiments.simulation import (
    build_split,
    group_items,
    predict_named,
    subsample_survey,
)
from surveylm.experiments.simulation_config import SimulationConfig, load_simulation_config
from surveylm.io.tables import write_table
from surveylm.metrics.bootstrap import bootstrap_means
from surveylm.models import make_run_model
from surveylm.models.base import derive_seed
from surveylm.progress import progress_bar
from surveylm.threads import apply_thread_policy

__all__ = ["equivalent_fraction", "plot_curves", "run_data_efficiency"]


def equivalent_fraction(fractions: np.ndarray, errors: np.ndarray, error: float) -> float:
    """The fraction at which a decreasing error curve equals ``error`` (linear
    interpolation; clipped to the fraction range)."""
    order = np.argsort(fractions)
    f, e = np.asarray(fractions)[order], np.asarray(errors)[order]
    if error >= e[0]:
        return float(f[0])
    if error <= e[-1]:
        return float(f[-1])
    return float(np.interp(error, e[::-1], f[::-1]))


def run_data_efficiency(
    config: SimulationConfig | str | Path,
    output_dir: str | Path | None = None,
    progress: bool = True,
    metric: str = "tv",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Curves ``(method, fraction, subsample, value)`` and the worth table
    ``(method, fraction, value, band_low, band_high, equivalent_fraction)`` (bands: 95 %
    bootstrap over items, ``config.n_boot`` resamples but at least 100); writes both
    (Parquet + CSV) and ``data_efficiency.png/.svg`` to ``output_dir``."""
    if not isinstance(config, SimulationConfig):
        config = load_simulation_config(config)
    apply_thread_policy(config.threads, source="config")
    de = config.data_efficiency
    _, tests, train_s, _ = build_split(config)
    truth = tests["seen_q/seen_g"]
    methods = [m for m in config.methods if m.fit and m.model != "training-data"]
    if de.methods is not None:
        methods = [m for m in methods if m.name in de.methods]
    rows, item_rows = [], []
    total = len(de.fractions) * de.subsamples
    with progress_bar("data efficiency", total, progress) as advance:
        for f in de.fractions:
            for b in range(de.subsamples):
                advance(f"{f:.0%} of respondents, subsample {b + 1}")
                sub = subsample_survey(train_s, f, config.seed + 1000 * b + round(1e4 * f))
                items = group_items(sub, config.with_overrides(min_n=1))
                items = items.subset(np.isin(items.item_ids, list(truth.item_ids)))
                seed = derive_seed(config.seed, round(1e4 * f), b)  # this subsample's models
                training = make_run_model("group-marginal", {"smoothing": 0.0}, seed).fit(items)
                preds = {"training data": predict_named(training, truth, "training data")}
                for m in methods:
                    model = make_run_model(m.model, m.params, seed).fit(items)
                    preds[m.name] = predict_named(model, truth, m.name)
                ev = evaluate(truth, preds, n_boot=0, include_references=False)
                for r in ev.overall[ev.overall["metric"] == metric].itertuples(index=False):
                    rows.append(
                        {"method": r.model, "fraction": f, "subsample": b, "value": r.value}
                    )
                per_item = ev.per_item[["model", "item_id", metric]].dropna(subset=[metric])
                item_rows.append(per_item.assign(fraction=f, subsample=b))
    curves = pd.DataFrame(rows)
    agg = curves.groupby(["method", "fraction"], sort=False)["value"]
    worth = agg.mean().rename("value").to_frame().reset_index()
    bands = _bootstrap_bands(pd.concat(item_rows), metric, max(config.n_boot, 100), config.seed)
    worth = worth.merge(bands, on=["method", "fraction"], how="left")
    ref = worth[worth["method"] == "training data"]
    worth["equivalent_fraction"] = [
        equivalent_fraction(ref["fraction"].to_numpy(), ref["value"].to_numpy(), v)
        for v in worth["value"]
    ]
    if output_dir is not None:
        out = Path(output_dir)
        write_table(curves, out / "data_efficiency_curves")
        write_table(worth, out / "data_efficiency")
        plot_curves(worth, out / "data_efficiency", metric)
    return curves, worth


def _bootstrap_bands(
    per_item: pd.DataFrame, metric: str, n_boot: int, seed: int, level: float = 0.95
) -> pd.DataFrame:
    """Percentile bootstrap over items of the mean error (items' errors averaged over
    subsamples first): ``method, fraction, band_low, band_high``; one generator from
    ``seed`` draws every method × fraction's resamples in turn."""
    rng = np.random.default_rng(seed)
    rows = []
    item_means = per_item.groupby(["model", "fraction", "item_id"], sort=False)[metric].mean()
    for (method, fraction), values in item_means.groupby(level=[0, 1], sort=False):
        v = values.to_numpy(dtype=float)[:, None]
        _, lo, hi, _ = bootstrap_means(v, np.ones(len(v)), rng, n_boot, level)
        rows.append(
            {"method": method, "fraction": fraction, "band_low": lo[0], "band_high": hi[0]}
        )
    return pd.DataFrame(rows)


def plot_curves(worth: pd.DataFrame, stem: Path, metric: str = "tv") -> list[Path]:
    """Error vs fraction per method with bootstrap bands and equivalent fractions, as PNG and
    SVG (atomic): the report's figure (:func:`surveylm.report.figures.data_efficiency`)."""
    from surveylm.report.figures import data_efficiency, save_figure

    stem = Path(stem)
    save_figure(data_efficiency(worth, metric), stem)
    return [stem.with_name(f"{stem.name}.{ext}") for ext in ("png", "svg")]
