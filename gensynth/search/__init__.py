"""The search engine: configuration, generator, inquisitor, constraint engine, executors, run store."""
from .config import SearchConfig, load_config
from .objective import Objective, make_objective, netscore
from .run import RunResult, Search, run_search

__all__ = ["Objective", "RunResult", "Search", "SearchConfig", "load_config", "make_objective", "netscore", "run_search"]
