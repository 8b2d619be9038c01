"""``build_report(run_dir)``: figures (PNG + SVG) and the self-contained ``report.html``.

Drawn from the run folder's files only (:func:`surveylm.report.data.load_run`), so
``surveylm report RUN_DIR`` rebuilds the page anywhere; a missing part (no simulation,
no data-efficiency curves, ...) becomes a one-line note, and a figure that cannot be drawn
becomes a note naming the error instead of stopping the report.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from surveylm.experiments.run_folder import run_status
from surveylm.report import figures as F
from surveylm.report.data import SPLIT_LABELS, RunData, load_run
from surveylm.report.findings import bottom_line, findings
from surveylm.report.html import (
    Figure,
    Section,
    ci_table,
    note,
    page,
    render,
    run_summary_rows,
    table_html,
)
from surveylm.report.labels import (
    MIN_COVERAGE_DRAWS,
    mark_references,
    observed_imputed,
    split_sizes,
    weighting,
)
from surveylm.report.methods import MULTIPLE_IMPUTATION, method_rows, used_format
from surveylm.report.ppi import pilot_sections, ppi_sections

__all__ = ["FIGURES", "build_report"]

#: Every figure the report can hold (file stem under ``RUN/figures``).
FIGURES = (
    "target_share",
    "respondent_metrics",
    "reliability",
    "distribution_metrics",
    "predicted_vs_human",
    "data_efficiency",
)
#: Figures a run has only when it fitted a method with loss curves.
OPTIONAL_FIGURES = ("training_curves",)
#: Short link texts of the sections.
NAV_LABELS = {
    "target-share": "Shares", "respondent": "Respondents", "calibration": "Calibration",
    "coverage": "Coverage", "distribution": "Group distributions", "examples": "Examples",
    "data-efficiency": "Data efficiency", "imputation": "Imputation", "simulation": "Simulation",
    "training": "Training",
}  # fmt: skip
#: Simulation ``min_n`` when a run folder has no simulation config (the config default).
DEFAULT_MIN_N = 20
#: The uniform guess, as :func:`~surveylm.report.labels.mark_references` names it.
UNIFORM = "uniform (ref)"


def _names(cfg: dict[str, Any], key: str = "methods") -> list[str]:
    return [str(m.get("name")) for m in cfg.get(key) or [] if isinstance(m, dict)]


def _scenario_names(cfg: dict[str, Any]) -> list[str]:
    return [str(s["name"]) for s in cfg.get("scenarios") or [] if s.get("name")]


def dataset_title(dataset: str | None) -> str:
    """A built-in dataset's name in words ("American National Election Studies 1996
    (statsmodels subset)"), else the id or file name as it is."""
    from surveylm.datasets import DATASETS

    if dataset in DATASETS:
        return DATASETS[dataset].description.split(":")[0]
    return Path(dataset).name if dataset else "survey"


def _question_texts(dataset: str | None) -> dict[str, str]:
    """Question texts of a built-in dataset (empty for a file or when it cannot load)."""
    try:
        from surveylm.datasets import DATASETS, load_dataset

        if dataset not in DATASETS:
            return {}
        return {k: str(q.text) for k, q in load_dataset(dataset).questions.items()}
    except Exception:  # the report never fails for a caption
        return {}


class _Builder:
    def __init__(self, data: RunData) -> None:
        self.data = data
        self.fig_dir = data.run_dir / "figures"
        self.drawn: list[str] = []
        self.imp_cfg = (data.imputation or {}).get("config") or {}
        self.sim_cfg = (data.simulation or {}).get("config") or {}
        self.weighting = weighting(data) or "weighted where the survey has weights"

    def figure(self, name: str, draw: Callable[[], Any]) -> Figure:
        """Draw and save (PNG + SVG) one figure; its error instead if drawing fails (the
        template shows a note)."""
        try:
            fig = draw()
            out = F.save_figure(fig, self.fig_dir / name)
        except Exception as exc:  # a broken part of a run must not lose the whole report
            warnings.warn(f"report: figure '{name}' not drawn: {exc}", stacklevel=2)
            return Figure(name, error=f"{type(exc).__name__}: {exc}")
        self.drawn.append(name)
        return Figure(name, out["png"])

    # -- sections ---------------------------------------------------------------------------
    def header(self) -> Section:
        d = self.data
        status = run_status(d.run) if d.run else "unknown"
        body = render(
            "summary.html.j2",
            bottom=bottom_line(d),
            meta=table_html(run_summary_rows(d), cls="meta", header=False),
            dataset=dataset_title(d.dataset),
            weighting=self.weighting,
            target=self.imp_cfg.get("target"),
            imputation=d.imputation is not None,
            simulation=d.simulation is not None,
            quick=bool(d.run.get("quick")),
            status="" if status in ("complete", "unknown") else status,
            findings=[(name, items) for name, items in findings(d) if items],
        )
        return Section("summary", "Run", body, "Run")

    def section(self, sid: str, title: str, body: Any) -> Section:
        return Section(sid, title, body, NAV_LABELS.get(sid, sid))

    def imputation(self) -> list[Section]:
        d = self.data
        if d.imputation is None:
            return [self.section("imputation", "Imputation", note(d.notes["imputation"]))]
        cfg = self.imp_cfg
        methods, scenarios = _names(cfg), _scenario_names(cfg)
        target = cfg.get("target", "the target")
        out = []
        pop = d.table("imputation", "population")
        fig = None
        if pop is not None:
            fig = self.figure("target_share", lambda: F.target_share(pop, methods, scenarios))
        body = render("target_share.html.j2", fig=fig, target=target, m=cfg.get("m", "?"))
        out.append(self.section("target-share", "Imputation: estimated shares with Rubin intervals",
                                body))  # fmt: skip

        resp = d.table("imputation", "respondent")
        fig, scored = None, ""
        if resp is not None:
            fig = self.figure(
                "respondent_metrics",
                lambda: F.respondent_metrics(resp, methods, scenarios, reference=UNIFORM),
            )
            scored = _scored_text(resp)
        summary = d.table("imputation", "summary")
        timings = d.table("imputation", "timings")
        if (summary is not None and timings is not None and "seconds" in timings
                and "seconds_per_fit" not in summary):
            secs = timings.groupby(["scenario", "method"], sort=False)["seconds"].mean()
            summary = summary.merge(secs.rename("seconds_per_fit").reset_index(),
                                    on=["scenario", "method"], how="left")  # fmt: skip
        summary_html = None
        if summary is not None:
            names = {
                "scenario": "scenario", "method": "method", "accuracy": "accuracy",
                "log_loss": "log loss", "brier": "Brier", "format_mass": "format mass",
                "tv": "share TV",
                "subgroup_tv": "subgroup share TV", "seconds_per_fit": "seconds per fit",
            }  # fmt: skip
            sizes = observed_imputed(timings)
            if sizes is not None:
                summary = summary.merge(
                    sizes.rename(columns={"observed": "n observed", "imputed": "n imputed"})[
                        ["scenario", "n observed", "n imputed"]
                    ], on="scenario", how="left",
                )  # fmt: skip
                names = {**names, "n observed": "n observed", "n imputed": "n imputed"}
            shown = summary[[c for c in names if c in summary.columns]].rename(columns=names)
            summary_html = table_html(shown, {"seconds per fit": 2})
        body = render(
            "respondent.html.j2", fig=fig, weighting=self.weighting, scored=scored,
            summary=summary_html, group_by=cfg.get("group_by") or "—",
            min_group_n=cfg.get("min_group_n", "?"),
        )  # fmt: skip
        out.append(self.section("respondent", "Imputation: respondent-level accuracy", body))

        pred = d.table("imputation", "predictions")
        fig = None
        if pred is not None:
            fig = self.figure(
                "reliability",
                lambda: F.reliability(pred, methods, scenarios, exclude=(UNIFORM,)),
            )
        body = render("calibration.html.j2", fig=fig, weighting=self.weighting)
        out.append(self.section("calibration", "Imputation: calibration", body))

        cov = d.table("imputation", "coverage")
        cov_html = None
        if cov is not None:
            options = list(dict.fromkeys(cov["option"]))
            if len(options) == 2:
                cov = cov[cov["option"] == options[0]]
            show = cov.assign(
                mean_width=100 * cov["mean_width"], bias=100 * cov["bias"], rmse=100 * cov["rmse"],
                coverage=[f"{c:.2f}" if d >= MIN_COVERAGE_DRAWS else "too few draws"
                          for c, d in zip(cov["coverage"], cov["draws"], strict=True)],
            )  # fmt: skip
            show = show[["scenario", "method", "option", "draws", "coverage", "mean_width", "bias",
                         "rmse"]]  # fmt: skip
            show = show.rename(
                columns={
                    "mean_width": "mean width (pts)",
                    "bias": "bias (pts)",
                    "rmse": "RMSE (pts)",
                }
            )
            cov_html = table_html(show, {"mean width (pts)": 1, "bias (pts)": 1, "RMSE (pts)": 1})
        level = f"{100 * float(cfg.get('level', 0.95)):.0f}"
        body = render("coverage.html.j2", table=cov_html, level=level,
                      min_draws=MIN_COVERAGE_DRAWS)  # fmt: skip
        out.append(self.section("coverage", "Multiple imputation: coverage and interval width",
                                body))  # fmt: skip
        return out

    def simulation(self) -> list[Section]:
        d = self.data
        if d.simulation is None:
            return [self.section("simulation", "Simulation", note(d.notes["simulation"]))]
        cfg = self.sim_cfg
        methods = _names(cfg)
        out = []
        overall = d.table("simulation", "overall")
        fig, tv_html = None, None
        if overall is not None:
            fig = self.figure(
                "distribution_metrics",
                lambda: F.distribution_metrics(overall, methods, exclude=(UNIFORM,)),
            )
            tv = overall[overall["metric"] == "tv"]
            tv_html = table_html(
                _with_n(
                    ci_table(
                        tv, "method", "split", [*methods, UNIFORM, "noise floor (ref)"],
                        list(SPLIT_LABELS),
                    ), split_sizes(d.table("simulation", "distributions")),
                )
            )  # fmt: skip
        body = render("distribution.html.j2", fig=fig, tv=tv_html)
        title = "Simulation: distance to human answer distributions"
        out.append(self.section("distribution", title, body))

        dist = d.table("simulation", "distributions")
        min_n = int(cfg.get("min_n", DEFAULT_MIN_N))
        fig, missing = None, "No predicted distributions (distributions.parquet absent)."
        if dist is not None:
            pairs = F.example_pairs(dist, min_n, k=6, seed=int(cfg.get("seed", 0)))
            missing = f"No question × group item with at least {min_n} respondents."
            if len(pairs):
                texts = _question_texts(d.dataset)
                fig = self.figure(
                    "predicted_vs_human",
                    lambda: F.predicted_vs_human(dist, pairs, methods, exclude=(UNIFORM,),
                                                 question_text=texts),
                )  # fmt: skip
        body = render("examples.html.j2", fig=fig, min_n=min_n, missing=missing)
        out.append(self.section("examples", "Simulation: predicted vs human distributions", body))

        curves = d.table("simulation", "training_curves")
        if curves is not None and len(curves):
            fig = self.figure("training_curves", lambda: F.training_curves(curves, methods))
            body = render("training.html.j2", fig=fig)
            out.append(self.section("training", "Simulation: training curves", body))

        fig, worth_html = None, None
        missing = d.notes.get("data_efficiency", "no data-efficiency results")
        if d.data_efficiency is not None:
            worth = d.data_efficiency[0]
            fig = self.figure("data_efficiency", lambda: F.data_efficiency(worth, methods=methods))
            show = worth.assign(
                fraction=100 * worth["fraction"],
                equivalent_fraction=100 * worth["equivalent_fraction"],
            ).rename(
                columns={
                    "fraction": "training share (%)",
                    "value": "TV",
                    "band_low": "95% band low",
                    "band_high": "95% band high",
                    "equivalent_fraction": "worth (% of data)",
                }
            )
            worth_html = table_html(show, {"training share (%)": 0, "worth (% of data)": 0})
        body = render("data_efficiency.html.j2", fig=fig, table=worth_html, missing=missing)
        out.append(self.section("data-efficiency", "Data efficiency", body))
        return out

    def methods(self) -> Section:
        d = self.data
        imputation = simulation = None
        if d.imputation is not None:
            cfg = self.imp_cfg
            imputation = {
                "target": cfg.get("target"),
                "features": ", ".join(cfg.get("features") or []),
                "scenarios": "; ".join(f"{s.get('name', s.get('kind'))} ({_scenario_text(s)})"
                                       for s in cfg.get("scenarios") or []),
                "m": cfg.get("m"), "repetitions": cfg.get("repetitions", 1),
                "n_boot": cfg.get("n_boot"), "multiple_imputation": MULTIPLE_IMPUTATION,
                "rows": method_rows(cfg, "respondent"),
            }  # fmt: skip
        if d.simulation is not None:
            cfg = self.sim_cfg
            simulation = {
                "questions": ", ".join(cfg.get("questions") or []),
                "groups": ", ".join(g if isinstance(g, str) else " × ".join(g)
                                    for g in cfg.get("group_by") or []),
                "min_n": cfg.get("min_n"),
                "test_percent": f"{100 * float(cfg.get('test_fraction', 0.5)):.0f}",
                "test_questions": ", ".join(cfg.get("test_questions") or ["drawn with the seed"]),
                "test_groups": _unseen_groups(d),
                "rows": method_rows(cfg, "group"),
            }  # fmt: skip
        body = render("methods.html.j2", seed=d.seed, imputation=imputation,
                      simulation=simulation, formats=self.formats())  # fmt: skip
        return Section("methods", "Methods", body, "Methods")

    def formats(self) -> dict[str, Any]:
        """The prompt formats the language models used, by name."""
        seen: dict[str, Any] = {}
        for cfg, kind in ((self.imp_cfg, "respondent"), (self.sim_cfg, "group")):
            for m in cfg.get("methods") or []:
                fmt = used_format(str(m.get("model")), dict(m.get("params") or {}), kind)
                if fmt is not None:
                    seen.setdefault(fmt.name, fmt)
        return seen

    def reproduce(self) -> Section:
        d = self.data
        run = d.run_dir
        seed = "" if d.seed is None else f" --seed {d.seed}"
        quick = " --quick" if d.run.get("quick") else ""
        lines = []
        if d.config:
            lines.append(("the packaged demo with this seed", f"surveylm demo{quick}{seed} -o DIR"))
            lines.append(
                ("exactly this run's config", f"surveylm demo --config {run}/config.yaml -o DIR")
            )
        if d.imputation is not None:
            lines.append(
                (
                    "the imputation comparison alone",
                    f"surveylm benchmark imputation {run}/imputation/config.yaml -o DIR",
                )
            )
        if d.simulation is not None:
            de = " --data-efficiency" if d.data_efficiency is not None else ""
            lines.append(
                (
                    "the simulation comparison alone",
                    f"surveylm benchmark simulation {run}/simulation/config.yaml{de} -o DIR",
                )
            )
        lines.append(("this page, from the files of the run", f"surveylm report {run}"))
        return Section("reproduce", "Reproduce", render("reproduce.html.j2", lines=lines),
                       "Reproduce")  # fmt: skip


def _scored_text(resp: Any) -> str:
    """``"n = 150 (MCAR 50%), 262 (under 30) respondents scored"``."""
    n = resp.groupby("scenario", sort=False)["n_items"].max()
    return "n = " + ", ".join(f"{int(v)} ({k})" for k, v in n.items()) + " respondents scored"


def _with_n(wide: Any, sizes: Any) -> Any:
    """The TV table's split columns headed with their n (items, questions, groups)."""
    if sizes is not None:
        names = {SPLIT_LABELS.get(r.split, r.split): f"{SPLIT_LABELS.get(r.split, r.split)} "
                 f"(n = {r.items} items, {r.questions} questions, {r.groups} groups)"
                 for r in sizes.itertuples(index=False)}  # fmt: skip
        wide = wide.rename(columns=names)
    return wide


def _scenario_text(s: dict[str, Any]) -> str:
    keys = [k for k in s if k not in ("name", "kind")]
    return s.get("kind", "") + (": " if keys else "") + ", ".join(f"{k} {s[k]}" for k in keys)


def _unseen_groups(d: RunData) -> str:
    groups = ((d.simulation or {}).get("settings") or {}).get("test_groups")
    return "; ".join(groups) if groups else "drawn with the seed"


def build_report(run_dir: str | Path) -> Path:
    """(Re)write ``RUN_DIR/figures/*.png|svg`` and ``RUN_DIR/report.html`` from the run's
    files; returns the path of ``report.html``. Parts the run lacks are skipped with a
    note; figures of an earlier build that can no longer be drawn are removed."""
    from surveylm.io.atomic import atomic_write_text

    data = mark_references(load_run(run_dir))
    b = _Builder(data)
    sections = [b.header(), *b.imputation(), *ppi_sections(data), *b.simulation(),
                *pilot_sections(data), b.methods(),
                b.reproduce()]  # fmt: skip
    for name in (*FIGURES, *OPTIONAL_FIGURES):
        if name not in b.drawn:
            for ext in ("png", "svg"):
                (b.fig_dir / f"{name}.{ext}").unlink(missing_ok=True)
    name = dataset_title(data.dataset) if data.dataset else data.run_dir.name
    title = f"surveylm report: {name}"
    subtitle = f"run folder {data.run_dir.name}"
    return atomic_write_text(data.run_dir / "report.html", page(title, subtitle, sections))
