"""One progress bar for every long stage (imputation, simulation, data efficiency, demo).

A thin wrapper over :class:`rich.progress.Progress`: ``advance(label)`` marks the start of
the next step and shows what is running, so a bar never sits at a finished step while the
slow one runs. Disabled bars cost nothing, which is what tests and nested runs use.

Inside :func:`expected_duration` (the demo's estimate for a stage on this machine) a bar's
ETA counts down from that estimate: the steps of a stage differ by orders of magnitude (a
uniform baseline against an encoder fit), so their rate alone predicts badly. Past the
estimate, the rate's prediction takes over.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["eta_text", "expected_duration", "progress_bar"]

_EXPECTED: ContextVar[float | None] = ContextVar("surveylm_expected_seconds", default=None)


@contextmanager
def expected_duration(seconds: float | None) -> Iterator[None]:
    """Within the block, progress bars count their ETA down from ``seconds``."""
    token = _EXPECTED.set(seconds)
    try:
        yield
    finally:
        _EXPECTED.reset(token)


def eta_text(remaining: float | None, now: float | None = None, clock: bool = True) -> str:
    """``"~1m20s left, ETA 14:05"`` (``"~1m20s left"`` without ``clock``; ``"ETA unknown"``
    for ``None``)."""
    if remaining is None:
        return "ETA unknown"
    remaining = max(0.0, remaining)
    minutes, seconds = divmod(round(remaining), 60)
    left = f"~{minutes}m{seconds:02d}s left" if minutes else f"~{seconds}s left"
    if not clock:
        return left
    at = time.strftime("%H:%M", time.localtime((now or time.time()) + remaining))
    return f"{left}, ETA {at}"


def _remaining(expected: float | None, elapsed: float, done: float, total: float) -> float | None:
    """Seconds left: the estimate minus the time spent, or, past the estimate (or with
    none), the steps' rate."""
    if expected is not None and elapsed < expected:
        return expected - elapsed
    if done <= 0 or total <= 0:
        return None
    return elapsed * (total - done) / done


@contextmanager
def progress_bar(stage: str, total: int, enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """A rich progress bar over ``total`` steps of ``stage``.

    Yields:
        ``advance(label)``: call it at the start of each step with a short description.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.table import Column
    from rich.text import Text

    expected = _EXPECTED.get()

    class EtaColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            left = _remaining(expected, task.elapsed or 0.0, task.completed, task.total or 0)
            text = eta_text(left, clock=False) if not task.finished else ""
            return Text(text, style="progress.remaining", no_wrap=True)

    bar = Progress(
        TextColumn(f"[bold]{stage}[/] {{task.description}}",  # shortened first when narrow
                   table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
        BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), EtaColumn(table_column=Column(min_width=11, no_wrap=True)),
        disable=not enabled, transient=False,
    )  # fmt: skip
    with bar:
        task = bar.add_task("", total=total)
        started = False

        def advance(label: str) -> None:
            nonlocal started
            bar.update(task, advance=1 if started else 0, description=label)
            started = True

        yield advance
        bar.update(task, completed=total, description="done")
