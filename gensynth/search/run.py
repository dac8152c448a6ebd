"""The search loop: propose → structural constraints → evaluation stages (measured constraints after each) → record → tell.

:class:`Search` is given its collaborators (space, generator, executor, store,
objective, constraints, stages, storage mirror) and owns none of their
policies; :func:`gensynth.search.assemble.run_search` builds the defaults from
a config. Every finished candidate becomes one line of ``candidates.jsonl``
before the generator hears of it, so a resumed run re-evaluates nothing that
finished and honours the budget. The budget counts candidates that entered
evaluation (``inquired``): duplicates and structural rejections are free.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .. import interrupts
from ..constraint import Candidate, RunContext
from ..data import ProxyDataset
from ..errors import UserError
from ..ir.graph import ArchGraph
from ..space.space import SearchSpace
from .executors import Executor
from .generator import Generator
from .inquisitor import TaskResult
from .judge import ConstraintEngine
from .objective import Objective
from .progress import SearchProgress
from .protocol import protocol_fingerprint
from .record import CandidateRecord, Status
from .stages import EvaluationStage
from .store import RunStore

if TYPE_CHECKING:
    from .mirror import StorageMirror


LOOKAHEAD = 20
"""Proposals the driver makes ahead of the result in flight (a deterministic bound: same run, same sequence).
A sampler may ask for fewer with a ``lookahead`` attribute (NSGA-II: 1)."""


@dataclass
class _Pending:
    """A candidate in the inquisitor's hands: ``stage`` indexes the next stage to report."""

    number: int
    genome: dict[str, Any]
    graph: ArchGraph
    hash: str
    started: float
    stage: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    measurements: dict[str, float] = field(default_factory=dict)
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def candidate(self) -> Candidate:
        return Candidate(self.genome, self.graph, self.hash, self.measurements)


@dataclass
class RunResult:
    """How a run ended."""

    root: Path
    evaluated: int
    feasible: int
    proposals: int
    capped: bool
    best: CandidateRecord | None
    final_dir: Path | None
    timed_out: bool = False


class Search:
    """One run over collaborators that are passed in; :meth:`run` runs or resumes it."""

    def __init__(self, *, space: SearchSpace, generator: Generator, executor: Executor, store: RunStore, objective: Objective,
                 constraints: ConstraintEngine, stages: list[EvaluationStage], budget: int, proposal_cap: int,
                 mirror: StorageMirror | None = None, data: ProxyDataset | None = None,
                 emit: Callable[[Search], Path] | None = None, progress: bool = False, timeout: float = 0.0,
                 lookahead: int = LOOKAHEAD):
        if not stages:
            raise UserError("stages: a search needs at least one evaluation stage")
        self.space, self.generator, self.executor, self.store = space, generator, executor, store
        self.objective, self.engine, self.stages, self.mirror, self.data = objective, constraints, stages, mirror, data
        self.budget, self.proposal_cap, self.emit, self.timeout, self.lookahead = budget, proposal_cap, emit, timeout, lookahead
        self.progress = SearchProgress(budget, enabled=progress)
        self.deadline = float("inf")
        self.records: list[CandidateRecord] = []
        self.seen: dict[str, CandidateRecord] = {}
        self.best: CandidateRecord | None = None

    def run(self) -> RunResult:
        """Run until the budget is spent, the proposal cap is reached or ``timeout`` seconds have passed."""
        self.deadline = time.monotonic() + self.timeout if self.timeout else float("inf")
        self.records = self.store.records(repair=True)
        for record in self.records:
            self._remember(record)
        self.progress.resumed(self.records, self.store.root)
        self.store.keep_weights_of(self.best.number if self.best else None)
        self.generator.replay(self.records)
        if self.mirror:
            self.mirror.catch_up(self.records)
        self.executor.start(self.data)
        try:
            self._prepare_constraints()
            capped = self._loop()
        finally:
            self.executor.shutdown()
            if self.mirror:
                self.mirror.close()
        final = self.emit(self) if self.best and self.emit else None
        timed_out = self.evaluated < self.budget and self.timed_out
        return RunResult(self.store.root, self.evaluated, self.feasible, self.generator.proposals, capped, self.best, final, timed_out)

    @property
    def evaluated(self) -> int:
        return sum(1 for r in self.records if r.inquired)

    @property
    def feasible(self) -> int:
        return sum(1 for r in self.records if r.feasible)

    @property
    def timed_out(self) -> bool:
        return time.monotonic() >= self.deadline

    def _room(self, in_flight: int) -> bool:
        """Whether another candidate may start: budget left, and the timeout (like Optuna's) not yet reached."""
        return self.evaluated + in_flight < self.budget and not self.timed_out

    # -- the loop -------------------------------------------------------------------------------
    def _loop(self) -> bool:
        """Keep the executor busy until the budget is spent; True when the proposal cap stopped it first.

        While the executor works in the background the driver prepares the next
        candidate (in a sequential run, at the same point every time), then
        writes the storage mirror until a result is ready. It proposes at most
        ``lookahead`` ahead: a sampler must not go on without the result in
        flight for long (NSGA-II, which breeds only from finished trials,
        otherwise never saw its one feasible parent). Past the timeout no
        candidate starts; those in flight finish.
        """
        executor, in_flight, ready = self.executor, {}, None
        with self.progress:
            while True:
                interrupts.check()
                while len(in_flight) < executor.capacity and self._room(len(in_flight)):
                    pending, ready = ready or self._next_candidate(), None
                    if pending is None:
                        break
                    in_flight[pending.number] = pending
                    executor.submit(pending.number, self.stages[0].task(pending.graph))
                if not in_flight:
                    return self.generator.proposals >= self.proposal_cap and self.evaluated < self.budget
                if executor.runs_in_background:
                    if ready is None and self._room(len(in_flight)):
                        ready = self._next_candidate(limit=self.lookahead)
                    if self.mirror:
                        self.mirror.flush(stop=executor.has_results)
                for number, result in executor.wait():
                    pending = in_flight[number]
                    if self._advance(pending, result):
                        executor.submit(number, self.stages[pending.stage].task(pending.graph))
                    else:
                        del in_flight[number]

    def _next_candidate(self, limit: int = 0) -> _Pending | None:
        """Propose until a new, structurally feasible candidate comes up; None at the proposal cap, the timeout,
        or after ``limit`` proposals (when > 0)."""
        for _ in itertools.count() if not limit else range(limit):
            interrupts.check()
            if self.generator.proposals >= self.proposal_cap or self.timed_out:
                return None
            if pending := self._propose():
                return pending
        return None

    def _propose(self) -> _Pending | None:
        """Ask for a genome; decide duplicates and structural rejections at once; return what needs measuring."""
        started = time.perf_counter()
        number, genome = self.generator.ask()
        try:
            graph = self.space.to_graph(genome)
            digest = graph.structural_hash()
        except Exception as err:  # a family that cannot build this genome
            return self._finish(_Pending(number, genome, ArchGraph(), "", started), Status.FAILED, f"genome → graph failed: {type(err).__name__}: {err}")
        pending = _Pending(number, genome, graph, digest, started)
        if digest in self.seen:
            return self._finish_duplicate(pending, self.seen[digest])
        judgement = self.engine.judge(pending.candidate(), "structural")
        pending.verdicts.update(judgement.verdicts)
        if judgement.error:
            return self._finish(pending, Status.FAILED, judgement.error)
        if not judgement.feasible:
            return self._finish(pending, Status.REJECTED, "structural: " + _failed_reasons(judgement.verdicts), stage="structural")
        pending.timings["propose_s"] = time.perf_counter() - started
        return pending

    def _advance(self, pending: _Pending, result: TaskResult) -> bool:
        """Take a stage's result; True when the candidate goes on to the next stage."""
        stage = self.stages[pending.stage]
        pending.stage += 1
        pending.timings.update(result.timings)
        pending.stages[stage.name] = {"measurements": dict(result.measurements), "timings": dict(result.timings)}
        if not result.ok:
            self._finish(pending, Status.FAILED, f"{stage.name}: {result.reason}", stage=stage.name, inquired=True)
            return False
        pending.measurements.update(result.measurements)
        if result.stopped:
            self._finish(pending, Status.REJECTED, f"{stage.name}: {result.stopped}", stage=stage.name, inquired=True)
            return False
        last = pending.stage == len(self.stages)
        if last:
            pending.measurements["score"] = self.objective.scalar(pending.measurements)
        judgement = self.engine.judge(pending.candidate(), "measured", skip=set(pending.verdicts))
        pending.verdicts.update(judgement.verdicts)
        if judgement.error:
            self._finish(pending, Status.FAILED, judgement.error, stage=stage.name, inquired=True)
        elif not judgement.feasible:
            self._finish(pending, Status.REJECTED, f"{stage.name}: " + _failed_reasons(judgement.verdicts), stage=stage.name, inquired=True)
        elif last:
            self._finish(pending, Status.EVALUATED, "", inquired=True, weights=result.weights)
        return not last and judgement.feasible

    # -- recording ------------------------------------------------------------------------------
    def _finish(self, p: _Pending, status: Status, reason: str, stage: str = "", inquired: bool = False, weights: bytes | None = None) -> None:
        evaluated = status is Status.EVALUATED
        p.timings["total_s"] = time.perf_counter() - p.started
        record = CandidateRecord(
            number=p.number, hash=p.hash, status=status, genome=p.genome, rejected_at=stage, reason=reason, inquired=inquired,
            feasible=evaluated and all(v["satisfied"] for v in p.verdicts.values()),
            score=p.measurements["score"] if evaluated else None, values=self.objective.values(p.measurements) if evaluated else None,
            violations=self.engine.violations(p.verdicts), verdicts=p.verdicts, measurements=p.measurements, stages=p.stages,
            timings={k: round(v, 4) for k, v in p.timings.items()},
        )
        new_best = record.feasible and (self.best is None or record.score > self.best.score)
        if new_best and weights:
            self.store.save_weights(record.number, weights)  # before the record: the best always has its own weights
        self._commit(record)
        if new_best:
            self.store.keep_weights_of(record.number)

    def _finish_duplicate(self, p: _Pending, earlier: CandidateRecord) -> None:
        record = CandidateRecord(
            number=p.number, hash=p.hash, status=Status.DUPLICATE, genome=p.genome, duplicate_of=earlier.number,
            reason=f"same architecture as candidate {earlier.number}", violations=earlier.violations,
            timings={"total_s": round(time.perf_counter() - p.started, 4)},
        )
        self._commit(record)

    def _commit(self, record: CandidateRecord) -> None:
        """Durable first, then tell the generator and queue the mirror (a kill in between is repaired on resume)."""
        self.store.append(record)
        self.records.append(record)
        self._remember(record)
        self.generator.tell(record)
        if self.mirror:
            self.mirror.record(record)
        self.progress.record(record)

    def _remember(self, record: CandidateRecord) -> None:
        if record.status is not Status.DUPLICATE:
            self.seen.setdefault(record.hash, record)
        if record.feasible and (self.best is None or record.score > self.best.score):
            self.best = record

    # -- references -----------------------------------------------------------------------------
    def _prepare_constraints(self) -> None:
        """Each constraint's ``prepare``: references are measured by the run's own stages and cached in the run."""
        cache = self.store.reference_cache()

        def measure(graph: ArchGraph, label: str) -> dict[str, float]:
            key = f"{label}:{graph.structural_hash()}:{protocol_fingerprint(self.stages, self.data)}"  # a new protocol measures again
            if key not in cache:
                cache[key] = self.measure(graph, label)
                self.store.save_reference_cache(cache)
            return cache[key]

        validation_images = len(self.data.val_y) if self.data is not None else None
        for constraint in self.engine.constraints:
            try:
                constraint.prepare(RunContext(measure, validation_images))
            except UserError:
                raise
            except Exception as err:  # a plugin's bug: one line naming it, before any candidate is spent
                first = str(err).splitlines()[0] if str(err) else ""
                raise UserError(f"constraint '{constraint.name}' raised {type(err).__name__} in prepare: {first}") from None

    def measure(self, graph: ArchGraph, label: str = "reference") -> dict[str, float]:
        """Every stage's measurements of ``graph`` (and the objective's score), through the run's executor."""
        measurements: dict[str, float] = {}
        for stage in self.stages:
            self.executor.submit(label, stage.task(graph))
            ((_, result),) = self.executor.wait()
            if not result.ok:
                raise UserError(f"{label}: the reference architecture could not be measured ({stage.name}: {result.reason})")
            measurements.update(result.measurements)
        measurements["score"] = self.objective.scalar(measurements)
        return measurements


def _failed_reasons(verdicts: dict[str, dict[str, Any]]) -> str:
    return "; ".join(f"{name}: {v['reason']}" for name, v in verdicts.items() if not v["satisfied"])
