"""gensynth: neural-architecture search by generative synthesis.

The Python API::

    from gensynth import load_config, run_search

    config = load_config("experiments/demo.yaml", {"budget": 8})
    result = run_search(config)

Names are imported on first use (PEP 562), so ``import gensynth`` and the
command line's ``--help`` do not pay for torch.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ArchGraph": "gensynth.ir", "GraphError": "gensynth.ir", "load": "gensynth.ir", "save": "gensynth.ir",
    "Candidate": "gensynth.constraint", "Constraint": "gensynth.constraint", "RunContext": "gensynth.constraint",
    "Verdict": "gensynth.constraint", "UserError": "gensynth.errors", "build_model": "gensynth.nn",
    "SearchConfig": "gensynth.search.config", "load_config": "gensynth.search.config", "run_search": "gensynth.search.assemble",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gensynth' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
