"""The run report: figures and one self-contained ``report.html`` per run folder.

``build_report(run_dir)`` reads what a run wrote (``surveylm demo``, or the benchmark
commands writing into ``RUN/imputation`` and ``RUN/simulation``) and (re)writes
``RUN/figures/*.png|svg`` and ``RUN/report.html``; ``surveylm report RUN_DIR`` calls it.

Modules: :mod:`~surveylm.report.data` (reading a run folder), :mod:`~surveylm.report.figures`
(one function per figure), :mod:`~surveylm.report.findings` (key findings from the
numbers), :mod:`~surveylm.report.methods` (the methods section),
:mod:`~surveylm.report.html` (the page: jinja2 templates under ``report/templates``,
autoescaped, shipped as package data) and :mod:`~surveylm.report.build` (what each section
shows, rendered from its template).
"""

from __future__ import annotations

from surveylm.report.build import FIGURES, build_report

__all__ = ["FIGURES", "build_report"]
