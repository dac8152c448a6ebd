"""gensynth: neural-architecture search by generative synthesis.

The Python API::

    from gensynth import load_config, run_search

    config = load_config("experiments/demo.yaml", {"budget": 8})
    result = run_search(config)
"""
from .constraint import Candidate, Constraint, RunContext, Verdict
from .errors import UserError
from .ir import ArchGraph, GraphError, load, save
from .nn import build_model
from .search import SearchConfig, load_config, run_search

__version__ = "0.1.0"
__all__ = [
    "ArchGraph", "Candidate", "Constraint", "GraphError", "RunContext", "SearchConfig", "UserError", "Verdict", "__version__",
    "build_model", "load", "load_config", "run_search", "save",
]
