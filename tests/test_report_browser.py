"""Acceptance: the report of a ``--quick`` demo run, rendered in headless Chromium.

Runs ``run_demo(quick=True)`` once (a few minutes on 2 cores), opens ``report.html`` from
the file in Debian's ``chromium`` (driven by Playwright with ``executable_path``; no
``playwright install``), takes a full-page screenshot, and checks that every figure is
there and loaded and that no request left the file. Skipped when Chromium or Playwright
is absent, except when ``CI`` is set (then it fails: ``.ci/run`` installs both).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

from surveylm.report import FIGURES
from surveylm.report.build import OPTIONAL_FIGURES

CHROMIUM = os.environ.get("SURVEYLM_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking"]  # fmt: skip

pytestmark = pytest.mark.xdist_group("demo")


def _need(ok: bool, why: str) -> None:
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI is set: .ci/run must install it)")
        pytest.skip(why)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    """Run the quick demo, render its report, and collect what the browser saw."""
    _need(Path(CHROMIUM).exists() or bool(shutil.which(CHROMIUM)), f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "Python package 'playwright' is not installed (dev extra)")
    from surveylm.experiments.demo import run_demo

    out = tmp_path_factory.mktemp("demo_quick")
    result = run_demo(quick=True, output_dir=out, progress=False)
    report = Path(result.report)
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.resolve().as_uri(), wait_until="load")
            page.wait_for_function("Array.from(document.images).every(i => i.complete)")
            images = page.evaluate(
                "Array.from(document.images).map(i => ({complete: i.complete, "
                "width: i.naturalWidth, alt: i.alt, src: i.src.slice(0, 22), "
                "shown: i.getBoundingClientRect().width}))"
            )
            sections = page.evaluate(
                "Array.from(document.querySelectorAll('section')).map(s => s.id)"
            )
            bottom = page.inner_text("#bottom-line")
            text = page.inner_text("body")
            screenshot = out / "report.png"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    if os.environ.get("SURVEYLM_SCREENSHOT_DIR"):  # keep it to look at
        shutil.copy(screenshot, Path(os.environ["SURVEYLM_SCREENSHOT_DIR"]) / "report.png")
    return {"run": out, "report": report, "requests": requests, "images": images,
            "sections": sections, "screenshot": screenshot, "bottom": bottom,
            "text": text}  # fmt: skip


def test_quick_demo_report_renders_offline(rendered) -> None:
    images = rendered["images"]
    # the quick demo fits LM methods, so their training curves are drawn too
    assert len(images) == len(FIGURES) + len(OPTIONAL_FIGURES), images
    for img in images:
        assert img["src"].startswith("data:image/png;base64,"), img["src"]
        assert img["complete"] and img["width"] > 0 and img["shown"] > 0, img
        assert img["alt"]
    schemes = {urlparse(u).scheme for u in rendered["requests"]}
    assert schemes <= {"file", "data"}, rendered["requests"]
    assert rendered["requests"], "the browser recorded no request at all"
    for sid in ("summary", "target-share", "respondent", "calibration", "distribution",
                "examples", "training", "data-efficiency", "methods", "reproduce"):  # fmt: skip
        assert sid in rendered["sections"], sid
    shot = rendered["screenshot"]
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 50_000
    size = rendered["report"].stat().st_size
    assert 50_000 < size < 5_000_000, size
    for name in (*FIGURES, *OPTIONAL_FIGURES):
        assert (rendered["run"] / "figures" / f"{name}.svg").is_file(), name


def test_bottom_line_and_reference_marks_as_shown(rendered) -> None:
    """What a reader sees first: a bottom line per job that names the methods worse than a
    reference, and every reference marked "(ref)" and never ranked as a method."""
    import re

    import pandas as pd

    bottom, text = rendered["bottom"], rendered["text"]
    assert bottom.startswith("Bottom line"), bottom[:80]
    for job in ("Imputing individual answers", "Estimating the full-sample share",
                "Simulating groups, unseen questions × unseen groups"):  # fmt: skip
        assert job in bottom, job
    tv = pd.read_parquet(rendered["run"] / "simulation" / "overall.parquet")
    tv = tv[(tv["metric"] == "tv") & (tv["split"] == "seen_q/unseen_g")].set_index("method")
    worse = [m for m in tv.index if not tv.loc[m, "reference"] and m != "uniform"
             and m != "training data 25%" and tv.loc[m, "value"] > tv.loc["uniform (ref)", "value"]]
    line = next(x for x in bottom.splitlines() if "seen questions × unseen groups (" in x)
    for m in worse:
        assert m in line.split("worse than uniform (ref)")[1], (m, line)
    assert "training data 25% (ref)" in text and "uniform (ref)" in text
    assert not re.search(r"training data 25%(?! \(ref\))", text)
    assert not re.search(r"(lowest TV is|closest is|\buse|best is) [^,(;]*\(ref\)", text)
