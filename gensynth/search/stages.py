"""Evaluation stages: the configured sequence a candidate passes through once it is structurally feasible.

Like Archai's evaluators, the fidelity is a property of the stage, not of the
loop: the loop hands each stage's task to the executor, merges the stage's
measurements, checks every measured constraint whose ``requires`` now exist,
and goes on to the next stage, or stops the candidate with a reason (a failed
task, a violated constraint, or the stage's own ``stopped`` reason). Adding
screens or more training fidelities is a new stage here, not an edit of the loop.

The built-ins are ``probe`` (params, MACs, latency), ``screen`` (zero-cost
proxies at initialisation, gensynth/search/zero_cost.py) and ``train`` (proxy
top-1; one stage per rung of ``fidelity.rungs``, with a promotion rule between
them: gensynth/search/fidelity.py). A run's stages are ``config.stages``; users
register more with :func:`register_stage`. A stage with a ``promotion`` rule
lets a candidate go on only when the rule, judging its score against earlier
candidates' at that stage, promotes it.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, Protocol

from ..ir.graph import ArchGraph
from ..ir.serialize import to_dict
from ..registry import Registry
from .inquisitor import ProbeTask, TaskResult, TrainTask
from .metrics import metric

if TYPE_CHECKING:
    from .fidelity import Promotion
    from ..data import ProxyDataset
    from ..space.space import SearchSpace
    from .config import SearchConfig, TrainingConfig


class Task(Protocol):
    """A picklable unit of work for an executor: ``task(data) -> TaskResult``, never raising."""

    needs_data: bool

    def __call__(self, data: ProxyDataset | None = None) -> TaskResult: ...


class EvaluationStage(ABC):
    """One step of evaluation: ``name`` (recorded), the metrics it ``measures``, and the task it runs on a graph."""

    name: str
    measures: tuple[str, ...]
    promotion: Promotion | None = None

    @abstractmethod
    def task(self, graph: ArchGraph) -> Task:
        """The executor's work for ``graph``."""

    def check_metrics(self) -> None:
        """Every metric this stage measures must be declared in the metrics table."""
        for name in self.measures:
            metric(name)


class ProbeStage(EvaluationStage):
    """Costs at the deployment shape: params, MACs and (when ``latency.runs`` > 0) batch-1 latency of the inference form,
    timed with its spread, or predicted from the per-node table (``latency.predict``)."""

    name = "probe"

    def __init__(self, config: SearchConfig, threads: int):
        self.latency, self.threads = config.latency, threads
        timed = ("latency_ms",) if config.latency.predict else ("latency_ms", "latency_iqr_ms")
        self.measures = ("params", "macs", *timed) if config.latency.runs else ("params", "macs")

    def task(self, graph: ArchGraph) -> Task:
        return ProbeTask(to_dict(graph), self.latency, self.threads)


class TrainStage(EvaluationStage):
    """Proxy training on the run's dataset at the space's proxy adaptation; validation top-1.

    ``name`` and ``training`` default to the run's; a rung of multi-fidelity training passes its own.
    """

    name = "train"
    measures = ("accuracy", "train_loss")

    def __init__(self, config: SearchConfig, space: SearchSpace, threads: int, name: str = "train",
                 training: TrainingConfig | None = None):
        self.name = name
        self.proxy, self.training, self.seed, self.threads = space.proxy, training or config.training, config.seed, threads

    def task(self, graph: ArchGraph) -> Task:
        return TrainTask(to_dict(graph), self.proxy, self.training, self.seed, self.threads)


StageFactory = Callable[..., "EvaluationStage | list[EvaluationStage]"]
"""``factory(config, space, threads) -> EvaluationStage`` (or several, in order: the rungs of ``train``)."""

STAGES: Registry[StageFactory] = Registry("evaluation stage", entry_point_group="gensynth.stages")
STAGES.register("probe", lambda config, space, threads: ProbeStage(config, threads), origin="built-in")


def _train_stages(config: SearchConfig, space: SearchSpace, threads: int) -> list[EvaluationStage]:
    from .fidelity import rung_stages  # fidelity imports this module

    return list(rung_stages(config, space, threads))


STAGES.register("train", _train_stages, origin="built-in")


def _screen_stage(config: SearchConfig, space: SearchSpace, threads: int) -> EvaluationStage:
    from .zero_cost import ScreenStage  # the proxies are imported only by runs that screen

    return ScreenStage(config, space, threads)


STAGES.register("screen", _screen_stage, origin="built-in")


def register_stage(name: str, factory: StageFactory, override: bool = False) -> StageFactory:
    """Add an evaluation stage that configs can name in ``stages``."""
    return STAGES.register(name, factory, override)


def list_stages(pattern: str = "*") -> list[str]:
    return STAGES.names(pattern)


def make_stages(config: SearchConfig, space: SearchSpace, threads: int) -> list[EvaluationStage]:
    """The run's stages, in order, each checked against the metrics table."""
    stages: list[EvaluationStage] = []
    for name in config.stages:
        made = STAGES.get(name)(config, space, threads)
        stages += made if isinstance(made, list) else [made]
    for stage in stages:
        stage.check_metrics()
    return stages


def measured_by(stages: list[EvaluationStage]) -> dict[str, str]:
    """Every metric the stages measure, with the stage that measures it (plus the objective's ``score``)."""
    found: dict[str, Any] = {}
    for stage in stages:
        for name in stage.measures:
            found.setdefault(name, stage.name)
    found["score"] = "objective"
    return found
