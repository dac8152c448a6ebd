"""The search engine: configuration, generator, inquisitor, constraint engine, executors, run store."""
from .assemble import run_search
from .config import SearchConfig, load_config
from .metrics import Metric, list_metrics, register_metric
from .objective import Objective, list_objectives, make_objective, netscore, register_objective
from .record import CandidateRecord, Status
from .run import RunResult, Search
from .stages import EvaluationStage, list_stages, register_stage

__all__ = [
    "CandidateRecord", "EvaluationStage", "Metric", "Objective", "RunResult", "Search", "SearchConfig", "Status", "list_metrics",
    "list_objectives", "list_stages", "load_config", "make_objective", "netscore", "register_metric", "register_objective",
    "register_stage", "run_search",
]
