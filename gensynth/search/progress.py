"""The progress bar: candidates done / budget, feasible count, best score, ETA."""
from __future__ import annotations

import sys
from typing import Any

from .record import CandidateRecord

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class SearchProgress:
    """A rich progress bar over the budget (silent when disabled or not on a terminal)."""

    def __init__(self, budget: int, enabled: bool = True):
        self.enabled = enabled and sys.stderr.isatty()
        self.progress = Progress(
            TextColumn("[bold]search"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), disable=not self.enabled,
        )
        self.task = self.progress.add_task("search", total=budget, status="")

    def __enter__(self) -> SearchProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def update(self, done: int, feasible: int, best: CandidateRecord | None) -> None:
        score = f"{best.score:.2f}" if best and best.score is not None else "–"
        self.progress.update(self.task, completed=done, status=f"feasible {feasible} · best {score}")
