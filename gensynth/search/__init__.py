"""The search engine: configuration, generator, inquisitor, constraint engine, executors, run store.

Names are imported on first use (PEP 562): the command line reads configs without importing torch.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "run_search": "assemble", "SearchConfig": "config", "load_config": "config", "Metric": "metrics", "list_metrics": "metrics",
    "register_metric": "metrics", "Objective": "objective", "list_objectives": "objective", "make_objective": "objective",
    "netscore": "objective", "register_objective": "objective", "CandidateRecord": "record", "Status": "record",
    "RunResult": "run", "Search": "run", "EvaluationStage": "stages", "list_stages": "stages", "register_stage": "stages",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gensynth.search' has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
