"""One progress bar for every long stage (imputation, simulation, data efficiency, demo).

A thin wrapper over :class:`rich.progress.Progress`: ``advance(label)`` marks the start of
the next step and shows what is running, so a bar never sits at a finished step while the
slow one runs. Disabled bars cost nothing, which is what tests and nested runs use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["progress_bar"]


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
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn(f"[bold]{stage}[/] {{task.description}}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled, transient=False,
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
