"""Results people look at: the run report page and the listing of runs (both only read the run directory)."""
from __future__ import annotations

from pathlib import Path

from .runs import RunSummary, list_runs, read_config, summarize

__all__ = ["RunSummary", "list_runs", "read_config", "summarize", "write_report"]


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write ``<out>/index.html`` (default ``<run_dir>/report/``) with its plots as PNG and SVG; return the page's path."""
    from .page import write_report as write  # matplotlib loads only when a report is written, not for `gensynth runs`

    return write(run_dir, out)
