"""The run report: figures, a self-contained report.html, sections, missing parts, min_n.

The run folder is the session's baseline run (conftest ``baseline_run``: baseline-only
configs on ANES 1996, seconds, by the same runners the demo uses), shared with the demo
tests; the report is built once on a copy, and the tests that remove or alter parts of a
run work on copies of their own. Most of a build's time is drawing the figures (about 5 s),
so tests rebuild only where the rebuild is what they check.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from markupsafe import Markup

from demo_fixtures import baseline_demo_config
from surveylm.report import FIGURES, build_report
from surveylm.report.data import SPLIT_LABELS
from surveylm.report.figures import example_pairs

CONFIG = baseline_demo_config(seed=3)
SECTIONS = ("summary", "target-share", "respondent", "calibration", "coverage", "distribution",
            "examples", "data-efficiency", "methods", "reproduce")  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(baseline_run) -> Path:
    """A run folder as the demo writes it (baseline methods only), report not built."""
    return baseline_run[0]


@pytest.fixture()
def copy(run_dir, tmp_path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


@pytest.fixture()
def simulation_copy(run_dir, tmp_path) -> Path:
    """A copy of the run without its imputation part, for tests of the simulation's
    sections: a build then draws only the simulation's figures."""
    return Path(shutil.copytree(run_dir, tmp_path / "run", ignore=shutil.ignore_patterns(
        "imputation")))  # fmt: skip


@pytest.fixture(scope="module")
def built(run_dir, tmp_path_factory) -> tuple[Path, str]:
    run = Path(shutil.copytree(run_dir, tmp_path_factory.mktemp("built") / "run"))
    path = build_report(run)
    return run, path.read_text(encoding="utf-8")


def test_every_figure_png_and_svg(built) -> None:
    run, _ = built
    for name in FIGURES:
        png = (run / "figures" / f"{name}.png").read_bytes()
        svg = (run / "figures" / f"{name}.svg").read_text(encoding="utf-8")
        assert png.startswith(b"\x89PNG") and len(png) > 5000, name
        assert "<svg" in svg, name
    assert not list((run / "figures").glob(".*")), "temporary files left behind"


def test_html_is_self_contained(built) -> None:
    _, html = built
    assert not re.search(r"(src|href)\s*=\s*['\"]?\s*(https?:)?//", html, re.I)
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert "@import" not in html and "url(" not in html
    imgs = re.findall(r"<img [^>]*>", html)
    assert len(imgs) == len(FIGURES)
    for img in imgs:
        assert re.search(r"src='data:image/png;base64,[A-Za-z0-9+/=]{1000,}'", img)
        alt = re.search(r"alt='([^']*)'", img)
        assert alt and len(alt.group(1)) > 20


def test_every_section_and_reproduce_commands(built, run_dir) -> None:
    run, html = built
    for sid in SECTIONS:
        assert f"id='{sid}'" in html, sid
    assert f"surveylm benchmark imputation {run}/imputation/config.yaml" in html
    assert f"surveylm report {run}" in html
    for source in ("Rubin 1987", "Barnard &amp; Rubin", "Santurkar", "Huang, Li &amp; Shao"):
        assert source in html, source
    assert "Seed of every random step: <b>3</b>" in html


def test_findings_come_from_the_numbers(built) -> None:
    run, html = built
    resp = pd.read_parquet(run / "imputation" / "respondent.parquet")
    ll = resp[(resp["metric"] == "log_loss") & (resp["method"] != "uniform")]
    for scenario, part in ll.groupby("scenario"):
        best = part.sort_values("value").iloc[0]
        assert re.search(rf"{re.escape(scenario)} \(n = \d+ observed, \d+ imputed per draw; "
                         rf"\d+ draws?\): {best['method']} imputes with the lowest log loss", html)
    pop = pd.read_parquet(run / "imputation" / "population.parquet")
    truth = pop[pop["group"].isna()]["truth"].iloc[0]
    assert f"is {100 * truth:.1f}%." in html


def test_rebuild_is_idempotent_and_removes_stale_figures(built, tmp_path) -> None:
    run, first = built
    again = Path(shutil.copytree(run, tmp_path / "run"))  # figures and page already there
    assert build_report(again).read_text(encoding="utf-8") == first.replace(str(run), str(again))
    for stem in ("data_efficiency", "data_efficiency_curves"):
        for ext in ("parquet", "csv", "png", "svg"):
            (again / "simulation" / f"{stem}.{ext}").unlink(missing_ok=True)
    html = build_report(again).read_text(encoding="utf-8")
    assert "no data-efficiency results in this run" in html
    assert not (again / "figures" / "data_efficiency.png").exists()
    assert html.count("<img ") == len(FIGURES) - 1


@pytest.mark.parametrize("missing", ["simulation", "imputation", "both"])
def test_missing_parts_are_skipped_with_a_note(copy, missing) -> None:
    for part in ("simulation", "imputation") if missing == "both" else (missing,):
        shutil.rmtree(copy / part)
    html = build_report(copy).read_text(encoding="utf-8")
    if missing in ("simulation", "both"):
        assert "no simulation results in this run" in html
        assert "id='fig-distribution_metrics'" not in html
    if missing in ("imputation", "both"):
        assert "no imputation results in this run" in html
        assert "id='fig-target_share'" not in html
    if missing == "simulation":
        assert "id='fig-target_share'" in html
    if missing == "imputation":
        assert "id='fig-distribution_metrics'" in html


def test_missing_tables_and_empty_folder(copy, tmp_path) -> None:
    (copy / "imputation" / "predictions.parquet").unlink()
    (copy / "imputation" / "predictions.csv").unlink()
    (copy / "run.json").unlink()
    html = build_report(copy).read_text(encoding="utf-8")
    assert "no reliability diagram" in html and "id='fig-target_share'" in html
    empty = tmp_path / "empty"
    empty.mkdir()
    html = build_report(empty).read_text(encoding="utf-8")
    assert "no imputation results" in html and "no simulation results" in html
    with pytest.raises(Exception, match="does not exist"):
        build_report(tmp_path / "nowhere")


def test_groups_below_min_n_are_never_shown(simulation_copy) -> None:
    copy = simulation_copy
    path = copy / "simulation" / "distributions.parquet"
    dist = pd.read_parquet(path)
    min_n = CONFIG.simulation.min_n
    item = dist[dist["split"] == "unseen_q/unseen_g"]["item_id"].iloc[0]
    tiny = dist[(dist["split"] == "unseen_q/unseen_g") & (dist["item_id"] == item)].copy()
    tiny["item_id"] = "DoleLR|tinycell = yes"
    tiny["group"] = "tinycell = yes"
    tiny["n"] = min_n - 1
    dist = pd.concat([tiny, dist], ignore_index=True)  # first in line for the small multiples
    dist.to_parquet(path)
    (copy / "simulation" / "distributions.csv").unlink()
    pairs = example_pairs(dist, min_n)
    assert len(pairs) == 6 and (pairs["n"] >= min_n).all()
    assert "tinycell" not in set(example_pairs(dist.assign(n=min_n - 1), min_n)["group"])
    html = build_report(copy).read_text(encoding="utf-8")
    assert "tinycell" not in html
    assert "tinycell" not in (copy / "figures" / "predicted_vs_human.svg").read_text()
    # the same item with enough respondents is shown (so the check above can fail)
    dist.loc[dist["group"] == "tinycell = yes", "n"] = min_n
    dist.to_parquet(path)
    build_report(copy)
    assert "tinycell" in (copy / "figures" / "predicted_vs_human.svg").read_text()


def test_example_pairs_leave_out_many_option_questions_while_others_remain():
    rows = []
    for q, k in (("income", 24), ("vote", 2), ("pid", 7)):
        for g in ("a", "b"):
            for o in range(k):
                rows.append({"split": "seen_q/unseen_g", "method": "m", "item_id": f"{q}|{g}",
                             "question_id": q, "group": g, "n": 50, "option": f"o{o}",
                             "predicted": 1 / k, "human": 1 / k})  # fmt: skip
    dist = pd.DataFrame(rows)
    assert "income" not in set(example_pairs(dist, 30, k=4)["question_id"])
    # Only when nothing else is left is the wide question drawn.
    assert "income" in set(example_pairs(dist, 30, k=6)["question_id"])


def test_bottom_line_names_every_method_worse_than_a_reference(built) -> None:
    run, html = built
    assert "id='bottom-line'" in html
    start = html.index("id='bottom-line'")
    bottom = html[start:html.index("</div>", start)]
    resp = pd.read_parquet(run / "imputation" / "respondent.parquet")
    ll = resp[resp["metric"] == "log_loss"].groupby(["scenario", "method"])["value"].mean()
    for scenario in ll.index.get_level_values(0).unique():
        part = ll.loc[scenario]
        worse = [m for m in part.index if m != "uniform" and part[m] > part["uniform"]]
        line = next(li for li in bottom.split("<li>") if f"({scenario}, " in li
                    and "log loss" in li)  # fmt: skip
        for m in worse:
            assert m in line.split("worse than uniform (ref)")[1], (scenario, m, line)
    overall = pd.read_parquet(run / "simulation" / "overall.parquet")
    tv = overall[overall["metric"] == "tv"]
    for split in ("seen_q/unseen_g", "unseen_q/unseen_g"):
        line = next(li for li in bottom.split("<li>") if SPLIT_LABELS[split] + " (" in li)
        assert re.search(r"n = \d+ items from \d+ questions?", line), line
        part = tv[tv["split"] == split].set_index("method")["value"]
        ref = part["training data 25%"]
        for m in ("question marginal", "group marginal"):
            if part[m] > ref:
                assert m in line.split("worse than training data 25% (ref)")[1], line


def test_references_are_marked_and_never_ranked(built) -> None:
    _, html = built
    text = re.sub(r"<[^>]+>", " ", html)
    assert "training data 25% (ref)" in text and "uniform (ref)" in text
    assert not re.search(r"training data 25%(?! \(ref\))", text)  # marked everywhere
    assert not re.search(r"lowest TV is [^,(]*\(ref\)", text)
    assert not re.search(r"closest is [^(]*\(ref\)", text)
    assert not re.search(r"(\buse|best is) [^(;]*\(ref\)", text)
    assert "unweighted" in text and "survey-weighted" not in text  # ANES 1996: weights all 1
    assert "too few draws" in text  # 1-2 draws per scenario: no coverage rate
    assert re.search(r"unseen questions × unseen groups \(n = \d+ items, 2 questions", text)
    assert "too few questions to rank methods" in text


def test_complete_case_row_beside_the_methods(built) -> None:
    run, html = built
    pop = pd.read_parquet(run / "imputation" / "population.parquet")
    cc = pop[(pop["method"] == "complete case") & pop["group"].isna()]
    assert set(cc["scenario"]) == set(pop["scenario"]) and (cc["n_imputed"] == 0).all()
    assert ((cc["lower"] < cc["estimate"]) & (cc["estimate"] < cc["upper"])).all()
    assert "complete case" in html


def test_training_curves_are_drawn_when_the_run_has_them(simulation_copy) -> None:
    """Issue 17: a fitted LM method's train/validation loss curves (the runner's
    training_curves table) become a figure; a run without them has no such section."""
    copy = simulation_copy
    rows = [{"method": "group marginal", "step": s, "epoch": s / 4, "split": split, "loss": loss}
            for s, split, loss in [(0, "validation", 0.9), (4, "train", 0.8),
                                   (4, "validation", 0.7), (8, "train", 0.6),
                                   (8, "validation", 0.75)]]  # fmt: skip
    pd.DataFrame(rows).to_parquet(copy / "simulation" / "training_curves.parquet")
    html = build_report(copy).read_text(encoding="utf-8")
    assert "Simulation: training curves" in html
    assert (copy / "figures" / "training_curves.png").read_bytes().startswith(b"\x89PNG")
    (copy / "simulation" / "training_curves.parquet").unlink()
    assert "Simulation: training curves" not in build_report(copy).read_text(encoding="utf-8")
    assert not (copy / "figures" / "training_curves.png").exists()  # stale figure removed


def test_templates_escape_what_they_print() -> None:
    """Issue 14: the page comes from jinja2 templates with autoescape: text from a run
    (method names, errors, findings) is escaped once, rendered pieces are not escaped again."""
    from surveylm.report.html import ENV, Figure, note, render, table_html

    for name in ENV.list_templates():
        ENV.get_template(name)  # every shipped template compiles
    evil = "<script>alert('x')</script> & \"co\""
    table = table_html(pd.DataFrame({"method": [evil], "value": [0.12345]}))
    assert "<script>" not in str(table) and "&lt;script&gt;" in str(table)
    assert "<td class='num'>0.123</td>" in table
    body = render("training.html.j2", fig=Figure("training_curves", error=evil))
    assert str(body).count("&lt;script&gt;") == 1
    assert "<p class='note'>Figure 'training_curves' could not be drawn" in body
    page = render("summary.html.j2", bottom=[evil], meta=table, dataset=evil, weighting="w",
                  target=evil, imputation=True, simulation=True, quick=False, status=evil,
                  findings=[(evil, [evil])])  # fmt: skip
    # bottom line, facts table, dataset, target, status, finding topic and finding
    assert "<script>" not in str(page) and str(page).count("&lt;script&gt;") == 7
    assert note(evil) == f"<p class='note'>{Markup.escape(evil)}</p>"
