"""``build_report(run_dir)``: figures (PNG + SVG) and the self-contained ``report.html``.

Drawn from the run folder's files only (:func:`surveylm.report.data.load_run`), so
``surveylm report RUN_DIR`` rebuilds the page anywhere; a missing part (no simulation,
no data-efficiency curves, ...) becomes a one-line note, and a figure that cannot be drawn
becomes a note naming the error instead of stopping the report.
"""

from __future__ import annotations

import html as _html
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
    ci_table,
    esc,
    note,
    page,
    run_summary_rows,
    section,
    table_html,
)
from surveylm.report.labels import (
    MIN_COVERAGE_DRAWS,
    mark_references,
    observed_imputed,
    split_sizes,
    weighting,
)
from surveylm.report.methods import MULTIPLE_IMPUTATION, methods_html, used_format
from surveylm.report.ppi import ppi_sections

__all__ = ["FIGURES", "build_report"]

#: Every figure the report can hold (file stem under ``RUN/figures``).
FIGURES = (
    "vote_share",
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
    "vote-share": "Shares", "respondent": "Respondents", "calibration": "Calibration",
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

    def figure(self, name: str, draw: Callable[[], Any], alt: str, caption: str) -> str:
        """Draw, save (PNG + SVG) and embed one figure; a note if drawing fails."""
        try:
            fig = draw()
            out = F.save_figure(fig, self.fig_dir / name)
        except Exception as exc:  # a broken part of a run must not lose the whole report
            warnings.warn(f"report: figure '{name}' not drawn: {exc}", stacklevel=2)
            return note(f"Figure '{name}' could not be drawn ({type(exc).__name__}: {exc}).")
        self.drawn.append(name)
        return Figure(name, out["png"], alt, caption).html()

    # -- sections ---------------------------------------------------------------------------
    def header(self) -> str:
        d = self.data
        target = self.imp_cfg.get("target")
        parts = []
        if d.imputation is not None:
            parts.append(
                f"how well each method fills in answers to <b>{esc(target)}</b> that were "
                "hidden at random or by a convenience sample — respondent by respondent, and "
                "as the full-sample share with multiple-imputation intervals"
            )
        if d.simulation is not None:
            parts.append(
                "how well each method predicts how <b>groups</b> of respondents answer, "
                "including questions and groups it never saw in training, against held-out "
                "respondents, the uniform guess and the sampling-noise floor"
            )
        what = (
            "<p><b>What this shows.</b> On the "
            f"{esc(dataset_title(d.dataset))} data ({esc(self.weighting)}) this run compares "
            + "; and ".join(parts)
            + ". Every interval is a 95% interval; every number below comes from the tidy "
            "files in this run folder. Names marked <b>(ref)</b> are references (the uniform "
            "guess, the sampling-noise floor, a random share of the real training "
            "respondents), never ranked among the methods.</p>"
        )
        if d.run.get("quick"):
            what += (
                "<p class='warn'>This is a <code>--quick</code> smoke run: tiny settings "
                "that show everything runs, not what the methods can do.</p>"
            )
        status = run_status(d.run) if d.run else "unknown"
        if status not in ("complete", "unknown"):
            what += (
                f"<p class='warn'>This run is incomplete: {esc(status)}. Only the stages "
                "it finished are shown; rerun with <code>--resume</code> to finish it.</p>"
            )
        groups = [(name, items) for name, items in findings(d) if items]
        found = "".join(
            f"<p><b>{esc(name)}</b></p><ul class='findings'>"
            + "".join(f"<li>{esc(t)}</li>" for t in items)
            + "</ul>"
            for name, items in groups
        )
        if found:
            found = "<h3>Key findings (computed from the results)</h3>" + found
        lines = bottom_line(d)
        bottom = (
            "<div class='box bottom-line' id='bottom-line'><h3>Bottom line (computed from the "
            "results)</h3><ul class='findings'>"
            + "".join(f"<li>{esc(t)}</li>" for t in lines)
            + "</ul></div>"
            if lines
            else ""
        )
        meta = table_html(run_summary_rows(d), cls="meta", header=False)
        return section("summary", "Run", bottom + meta + what + found)

    def imputation(self) -> list[tuple[str, str, str]]:
        d = self.data
        if d.imputation is None:
            return [("imputation", "Imputation", note(d.notes["imputation"]))]
        cfg = self.imp_cfg
        methods, scenarios = _names(cfg), _scenario_names(cfg)
        target = cfg.get("target", "the target")
        out = []
        pop = d.table("imputation", "population")
        body = (
            self.figure(
                "vote_share",
                lambda: F.vote_share(pop, methods, scenarios),
                f"Estimated full-sample share of the first answer to {target} per method and "
                "scenario, with Rubin intervals and the true share as a dashed line",
                f"Full-sample share of the first option of <b>{esc(target)}</b> estimated from the "
                f"observed answers plus m = {esc(cfg.get('m', '?'))} imputations per method, "
                "pooled by Rubin's rules (dot = estimate, whisker = 95% interval; MCAR scenarios "
                "have one estimate per fold). Dashed line: the true share in the full sample.",
            )
            if pop is not None
            else note("No population results (population.parquet absent).")
        )
        out.append(("vote-share", "Imputation: estimated shares with Rubin intervals", body))

        resp = d.table("imputation", "respondent")
        if resp is not None:
            body = self.figure(
                "respondent_metrics",
                lambda: F.respondent_metrics(resp, methods, scenarios, reference=UNIFORM),
                "Accuracy and log loss of the imputed respondents per method and scenario",
                f"Scored on the respondents whose answer was hidden ({esc(self.weighting)}; "
                f"{esc(_scored_text(resp))}; 95% paired-bootstrap intervals over "
                "respondents). Higher accuracy and lower log loss are better; the dotted line "
                "is the uniform guess (ref).",
            )
        else:
            body = note("No respondent-level results (respondent.parquet absent).")
        summary = d.table("imputation", "summary")
        timings = d.table("imputation", "timings")
        if (summary is not None and timings is not None and "seconds" in timings
                and "seconds_per_fit" not in summary):
            secs = timings.groupby(["scenario", "method"], sort=False)["seconds"].mean()
            summary = summary.merge(secs.rename("seconds_per_fit").reset_index(),
                                    on=["scenario", "method"], how="left")  # fmt: skip
        if summary is not None:
            names = {
                "scenario": "scenario", "method": "method", "accuracy": "accuracy",
                "log_loss": "log loss", "brier": "Brier", "tv": "share TV",
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
            body += (
                "<h3>Summary table</h3>"
                + table_html(shown, {"seconds per fit": 2})
                + (
                    "<p class='note'>n observed / n imputed: respondents whose answer was kept "
                    "/ hidden, per missing-data draw. "
                    "Share TV: total variation between the estimated and the true "
                    "full-sample shares (observed plus expected imputed answers); "
                    "subgroup share TV: the same within subgroups of "
                    f"{esc(cfg.get('group_by') or '—')} with at least "
                    f"{esc(cfg.get('min_group_n', '?'))} respondents.</p>"
                )
            )
        out.append(("respondent", "Imputation: respondent-level accuracy", body))

        pred = d.table("imputation", "predictions")
        body = (
            self.figure(
                "reliability",
                lambda: F.reliability(pred, methods, scenarios, exclude=(UNIFORM,)),
                "Reliability diagram of imputed respondents' predicted probabilities, one panel "
                "per scenario, with the expected calibration error of each method",
                "Predicted probability (binned in tenths) against how often that answer was the "
                f"true one ({esc(self.weighting)}). On the dotted diagonal a method is "
                "calibrated; the number beside a point is the respondents in its bin. One "
                "panel per scenario because a convenience sample changes who is imputed, and "
                "calibration with it. ECE: weighted mean gap to the diagonal. Bins with fewer "
                "than 5 respondents are not drawn, nor a method with fewer than 3 such bins; the "
                "uniform guess is a single point at 1/k and left out.",
            )
            if pred is not None
            else note(
                "No respondent predictions (predictions.parquet absent): no reliability diagram."
            )
        )
        out.append(("calibration", "Imputation: calibration", body))

        cov = d.table("imputation", "coverage")
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
            level = cfg.get("level", 0.95)
            body = (
                f"<p>Share of missing-data draws whose {100 * float(level):.0f}% Rubin "
                "interval contains the true full-sample share, and the intervals' mean width "
                "in percentage points. Coverage is a rate over draws: with fewer than "
                f"{MIN_COVERAGE_DRAWS} draws it is shown as “too few draws” (one draw gives "
                "only 0 or 1); width, bias and RMSE are still means over the draws.</p>"
                + table_html(
                    show, {"mean width (pts)": 1, "bias (pts)": 1, "RMSE (pts)": 1}
                )
            )
        else:
            body = note("No coverage results (coverage.parquet absent).")
        out.append(("coverage", "Multiple imputation: coverage and interval width", body))
        return out

    def simulation(self) -> list[tuple[str, str, str]]:
        d = self.data
        if d.simulation is None:
            return [("simulation", "Simulation", note(d.notes["simulation"]))]
        cfg = self.sim_cfg
        methods = _names(cfg)
        out = []
        overall = d.table("simulation", "overall")
        if overall is not None:
            body = self.figure(
                "distribution_metrics",
                lambda: F.distribution_metrics(overall, methods, exclude=(UNIFORM,)),
                "Total variation, Wasserstein distance and Jensen-Shannon divergence of "
                "predicted to held-out group distributions per method and split",
                "Distance between each method's predicted and the held-out respondents' answer "
                "distribution, averaged over question × group items (95% bootstrap intervals, "
                "resampling whole questions where a split has several). Lower is better. "
                "Dotted: the uniform distribution; dashed: the "
                "sampling-noise floor (a second sample of the same size from the true "
                "distribution is this far off).",
            )
            tv = overall[overall["metric"] == "tv"]
            body += "<h3>Total variation by split</h3>" + table_html(
                _with_n(
                    ci_table(
                        tv, "method", "split", [*methods, UNIFORM, "noise floor (ref)"],
                        list(SPLIT_LABELS),
                    ), split_sizes(d.table("simulation", "distributions")),
                )
            ) + (
                "<p class='note'>n: the split's question × group items, the questions they "
                "come from and their groups; 95% intervals resample whole questions. A split "
                "on fewer than 3 questions is too small to rank methods on.</p>"
            )  # fmt: skip
        else:
            body = note("No overall simulation results (overall.parquet absent).")
        out.append(("distribution", "Simulation: distance to human answer distributions", body))

        dist = d.table("simulation", "distributions")
        min_n = int(cfg.get("min_n", DEFAULT_MIN_N))
        if dist is not None:
            pairs = F.example_pairs(dist, min_n, k=6, seed=int(cfg.get("seed", 0)))
            if len(pairs):
                texts = _question_texts(d.dataset)
                body = self.figure(
                    "predicted_vs_human",
                    lambda: F.predicted_vs_human(dist, pairs, methods, exclude=(UNIFORM,),
                                                 question_text=texts),
                    "Predicted and human answer distributions for six question and group "
                    "pairs, unseen groups and questions first",
                    "Grey bars: the held-out respondents of the group; markers: each method's "
                    "prediction. Items on unseen questions and unseen groups are shown first. "
                    f"Only groups with at least {min_n} respondents (the config's min_n) are "
                    "ever shown.",
                )
            else:
                body = note(f"No question × group item with at least {min_n} respondents.")
        else:
            body = note("No predicted distributions (distributions.parquet absent).")
        out.append(("examples", "Simulation: predicted vs human distributions", body))

        curves = d.table("simulation", "training_curves")
        if curves is not None and len(curves):
            body = self.figure(
                "training_curves",
                lambda: F.training_curves(curves, methods),
                "Training and validation loss against the optimiser step for each fitted "
                "language-model method",
                "Thin: the training loss per logged step; thick: the loss on the inner "
                "validation split that fit held out (step 0 is the untrained state, which for "
                "the encoder head is the training marginal); circled: the state fit restored "
                "(lowest validation loss). A curve that never dips below step 0 means the "
                "method kept its start (fit warns).",
            )
            out.append(("training", "Simulation: training curves", body))

        if d.data_efficiency is None:
            body = note(d.notes.get("data_efficiency", "no data-efficiency results"))
        else:
            worth = d.data_efficiency[0]
            body = self.figure(
                "data_efficiency",
                lambda: F.data_efficiency(worth, methods=methods),
                "Error against the share of training respondents used, per method, with "
                "95% bands and each method's equivalent fraction",
                "Each method is trained on a random share of the training respondents and "
                "scored (TV) on the held-out half's seen question × group items; the black "
                "curve is that share's own group distributions. 'Worth x%': the share of real "
                "training data whose error the method matches at full data (DSA, Huang, Li, "
                "Shao 2025); '≤' where it is worse than the smallest share run. Bands: 95% "
                "percentile-bootstrap intervals over items (errors averaged over subsamples).",
            )
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
            body += table_html(show, {"training share (%)": 0, "worth (% of data)": 0})
        out.append(("data-efficiency", "Data efficiency", body))
        return out

    def methods(self) -> str:
        d = self.data
        body = f"<p>Seed of every random step: <b>{esc(d.seed)}</b>.</p>"
        if d.imputation is not None:
            cfg = self.imp_cfg
            scen = "; ".join(
                f"{s.get('name', s.get('kind'))} ({_scenario_text(s)})"
                for s in cfg.get("scenarios") or []
            )
            body += (
                f"<h3>Imputation</h3><p>Target <b>{esc(cfg.get('target'))}</b> from "
                f"{esc(', '.join(cfg.get('features') or []))}; scenarios: {esc(scen)}; "
                f"m = {esc(cfg.get('m'))} imputations, {esc(cfg.get('repetitions', 1))} "
                f"repetition(s), {esc(cfg.get('n_boot'))} bootstrap resamples. "
                f"{esc(MULTIPLE_IMPUTATION)}</p>" + methods_html(cfg, "respondent")
            )
        if d.simulation is not None:
            cfg = self.sim_cfg
            groups = ", ".join(
                g if isinstance(g, str) else " × ".join(g) for g in cfg.get("group_by") or []
            )
            body += (
                f"<h3>Simulation</h3><p>Questions {esc(', '.join(cfg.get('questions') or []))}"
                f" by {esc(groups)}; group cells below min_n = {esc(cfg.get('min_n'))} "
                f"respondents suppressed; {100 * float(cfg.get('test_fraction', 0.5)):.0f}% "
                "of respondents held out as the truth; unseen questions "
                f"{esc(', '.join(cfg.get('test_questions') or ['drawn with the seed']))}, "
                f"unseen groups {esc(_unseen_groups(d))}.</p>" + methods_html(cfg, "group")
            )
        body += self.formats()
        return section("methods", "Methods", body)

    def formats(self) -> str:
        """The templates of the prompt formats the language models used."""
        seen: dict[str, Any] = {}
        for cfg, kind in ((self.imp_cfg, "respondent"), (self.sim_cfg, "group")):
            for m in cfg.get("methods") or []:
                fmt = used_format(str(m.get("model")), dict(m.get("params") or {}), kind)
                if fmt is not None:
                    seen.setdefault(fmt.name, fmt)
        if not seen:
            return ""
        blocks = "".join(
            f"<p><b>{esc(name)}</b> ({esc(fmt.citation)})</p><pre>{esc(fmt.template)}</pre>"
            for name, fmt in seen.items()
        )
        return (
            "<h3>Prompt formats</h3><p>Placeholders are filled from the item; the encoder "
            "drops the option list and answer cue and embeds each option's text.</p>" + blocks
        )

    def reproduce(self) -> str:
        d = self.data
        run = esc(d.run_dir)
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
        body = "".join(f"<p>{esc(what)}:</p><pre><code>{cmd}</code></pre>" for what, cmd in lines)
        return section("reproduce", "Reproduce", f"<div class='box'>{body}</div>")


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
    header = b.header()
    sections = b.imputation() + ppi_sections(data) + b.simulation()
    body = header + "".join(section(sid, title, html) for sid, title, html in sections)
    body += b.methods() + b.reproduce()
    nav = [("summary", "Run")] + [(sid, NAV_LABELS.get(sid, sid)) for sid, _, _ in sections]
    nav += [("methods", "Methods"), ("reproduce", "Reproduce")]
    for name in (*FIGURES, *OPTIONAL_FIGURES):
        if name not in b.drawn:
            for ext in ("png", "svg"):
                (b.fig_dir / f"{name}.{ext}").unlink(missing_ok=True)
    name = dataset_title(data.dataset) if data.dataset else data.run_dir.name
    title = f"surveylm report: {name}"
    subtitle = _html.escape(f"run folder {data.run_dir.name}")
    return atomic_write_text(data.run_dir / "report.html", page(title, subtitle, nav, body))
