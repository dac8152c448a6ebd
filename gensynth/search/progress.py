"""Progress of a search: a live bar on a terminal, one log line per evaluated candidate elsewhere.

The bar shows what happens while it happens: proposals, rejections per rule,
evaluations against the budget, feasible count and best score. Off a terminal
(CI logs, ``nohup``, notebooks) a line per candidate that entered evaluation
goes to stderr instead, so a long run is never silent.
"""
from __future__ import annotations

import sys
from collections import Counter
from typing import Any, TextIO

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .record import CandidateRecord, Status


class SearchProgress:
    """Counts records as they are committed and shows them (``enabled=False``: silent)."""

    def __init__(self, budget: int, enabled: bool = True, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.budget = budget
        self.live = enabled and self.stream.isatty()
        self.lines = enabled and not self.live
        self.proposals = self.evaluated = self.feasible = 0
        self.rejections: Counter[str] = Counter()
        self.best: CandidateRecord | None = None
        self.progress = Progress(
            TextColumn("[bold]search"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), disable=not self.live, console=None,
        )
        self.task = self.progress.add_task("search", total=budget, status="")

    def __enter__(self) -> SearchProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def resumed(self, records: list[CandidateRecord], root: object) -> None:
        """Count a resumed run's records, and say so."""
        for record in records:
            self._count(record)
        if records and (self.live or self.lines):
            print(f"gensynth: resuming {root}: {len(records)} finished candidates found "
                  f"({self.evaluated} evaluated, {self.feasible} feasible)", file=self.stream, flush=True)
        self._show()

    def record(self, record: CandidateRecord) -> None:
        """A candidate was committed."""
        self._count(record)
        if self.lines and record.inquired:
            print(f"gensynth: {self._describe(record)} · {self._status()}", file=self.stream, flush=True)
        self._show()

    def _count(self, record: CandidateRecord) -> None:
        self.proposals += 1
        self.evaluated += record.inquired
        self.feasible += record.feasible
        self.rejections.update(name for name, verdict in record.verdicts.items() if not verdict["satisfied"])
        if record.feasible and (self.best is None or record.score > self.best.score):
            self.best = record

    def _status(self) -> str:
        best = f"{self.best.score:.2f}" if self.best and self.best.score is not None else "–"
        rules = ", ".join(f"{name} {n}" for name, n in self.rejections.most_common()) or "none"
        return f"{self.evaluated}/{self.budget} evaluated · {self.feasible} feasible · best {best} · {self.proposals} proposals · rejected by {rules}"

    def _show(self) -> None:
        if self.live:
            self.progress.update(self.task, completed=self.evaluated, status=self._status())

    @staticmethod
    def _describe(record: CandidateRecord) -> str:
        m = record.measurements
        if record.status is Status.EVALUATED:
            parts = [f"score {record.score:.2f}"] + [f"{name} {m[name]:.4g}" for name in ("accuracy", "params", "macs", "latency_ms") if name in m]
            return f"candidate {record.number} evaluated ({', '.join(parts)}){'' if record.feasible else ', infeasible'}"
        return f"candidate {record.number} {record.status.value} at {record.rejected_at or 'start'}: {record.reason}"
