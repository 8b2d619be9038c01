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
            screenshot = out / "report.png"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    if os.environ.get("SURVEYLM_SCREENSHOT_DIR"):  # keep it to look at
        shutil.copy(screenshot, Path(os.environ["SURVEYLM_SCREENSHOT_DIR"]) / "report.png")
    return {"run": out, "report": report, "requests": requests, "images": images,
            "sections": sections, "screenshot": screenshot}  # fmt: skip


def test_quick_demo_report_renders_offline(rendered) -> None:
    images = rendered["images"]
    assert len(images) == len(FIGURES), images
    for img in images:
        assert img["src"].startswith("data:image/png;base64,"), img["src"]
        assert img["complete"] and img["width"] > 0 and img["shown"] > 0, img
        assert img["alt"]
    schemes = {urlparse(u).scheme for u in rendered["requests"]}
    assert schemes <= {"file", "data"}, rendered["requests"]
    assert rendered["requests"], "the browser recorded no request at all"
    for sid in ("summary", "vote-share", "respondent", "calibration", "distribution",
                "examples", "data-efficiency", "methods", "reproduce"):  # fmt: skip
        assert sid in rendered["sections"], sid
    shot = rendered["screenshot"]
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 50_000
    size = rendered["report"].stat().st_size
    assert 50_000 < size < 5_000_000, size
    for name in FIGURES:
        assert (rendered["run"] / "figures" / f"{name}.svg").is_file(), name
