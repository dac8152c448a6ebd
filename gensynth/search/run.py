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
from .config import SearchConfig
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
"""Proposals the driver makes ahead of the oldest unrecorded candidate (a deterministic bound: same run, same sequence).
A sampler may ask for fewer with a ``lookahead`` attribute (NSGA-II: 1)."""

PROPOSE_AHEAD = SearchConfig.propose_ahead
"""Candidates an ordered executor's loop keeps proposed ahead of the oldest unrecorded one (the ``propose_ahead`` setting)."""


@dataclass
class _Outcome:
    """How a candidate's evaluation ended, kept until its turn to be recorded."""

    status: Status
    reason: str = ""
    stage: str = ""
    weights: bytes | None = None


@dataclass
class _Pending:
    """A proposed candidate not yet recorded: ``stage`` indexes the next stage to report; ``outcome`` is set when it ends."""

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
    submitted: bool = False
    waiting: bool = False  # at a stage's promotion rule, between two stages
    outcome: _Outcome | None = None

    def candidate(self) -> Candidate:
        return Candidate(self.genome, self.graph, self.hash, self.measurements)

    @property
    def running(self) -> bool:
        return self.submitted and self.outcome is None and not self.waiting

    def end(self, outcome: _Outcome) -> bool:
        """Set how the evaluation ended (its total time stops now, however long it waits to be recorded); False."""
        self.outcome = outcome
        self.timings["total_s"] = time.perf_counter() - self.started
        return False


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
                 lookahead: int = LOOKAHEAD, propose_ahead: int = PROPOSE_AHEAD):
        if not stages:
            raise UserError("stages: a search needs at least one evaluation stage")
        self.space, self.generator, self.executor, self.store = space, generator, executor, store
        self.objective, self.engine, self.stages, self.mirror, self.data = objective, constraints, stages, mirror, data
        self.budget, self.proposal_cap, self.emit, self.timeout, self.lookahead = budget, proposal_cap, emit, timeout, lookahead
        self.propose_ahead = propose_ahead
        self.progress = SearchProgress(budget, enabled=progress)
        self.deadline = float("inf")
        self.records: list[CandidateRecord] = []
        self.seen: dict[str, CandidateRecord] = {}
        self._held: dict[str, list[_Pending]] = {}  # hash of each unrecorded candidate -> later proposals of it, recorded after it
        self.best: CandidateRecord | None = None
        self._looked_ahead = False  # whether the loop proposed ahead since the last record
        self._unsettled = _unsettled_constraints(stages, constraints)

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

        The window holds the proposed candidates not yet recorded, in proposal
        order: all but one are proposed whatever it takes; the last is proposed
        ahead while the executor works in the background, with at most
        ``lookahead`` asks, once between two records (a sampler must not go on
        without the results in flight for long: NSGA-II, which breeds only from
        finished trials, otherwise never saw its one feasible parent). With an
        :attr:`~Executor.ordered` executor candidates are recorded in proposal
        order and the window holds ``propose_ahead`` beyond the oldest (more
        when the executor has more workers), so proposals and records interleave
        the same way whichever task finishes first, and one worker or two give
        the sampler the same sequence; a worker idles only while the oldest
        still runs and every later candidate in the window has finished.
        Past the timeout no candidate starts; those in flight finish.
        """
        executor, window = self.executor, {}
        size = max(executor.capacity, self.propose_ahead + 1) if executor.ordered else executor.capacity + 1
        size += any(stage.promotion for stage in self.stages)  # one more to run while a candidate waits for its promotion
        with self.progress:
            while True:
                interrupts.check()
                while self._promote(window) or self._record_next(window):
                    self._fill(window, size)  # between two records, as one worker would: the same sequence of asks and tells
                self._fill(window, size)
                if not any(p.running for p in window.values()):
                    return self.generator.proposals >= self.proposal_cap and self.evaluated < self.budget
                if executor.runs_in_background and self.mirror:
                    self.mirror.flush(stop=executor.has_results)
                for number, result in executor.wait():
                    pending = window[number]
                    if self._advance(pending, result):
                        executor.submit(number, self.stages[pending.stage].task(pending.graph))

    def _fill(self, window: dict[int, _Pending], size: int) -> None:
        """Propose up to ``size - 1`` candidates, submit those that may start, then propose one ahead if it is time."""
        while len(window) < size - 1 and self._room(len(window)) and (pending := self._next_candidate()):
            self._enter(window, pending)
        self._submit(window)
        if window and len(window) < size and not self._looked_ahead and self.executor.runs_in_background and self._room(len(window)):
            self._looked_ahead = True
            if pending := self._next_candidate(limit=self.lookahead):
                self._enter(window, pending)
                self._submit(window)

    def _enter(self, window: dict[int, _Pending], pending: _Pending) -> None:
        """Put a proposed candidate in the window; a later proposal of the same architecture waits for its record."""
        window[pending.number] = pending
        self._held[pending.hash] = []

    def _submit(self, window: dict[int, _Pending]) -> None:
        """Hand each waiting candidate's first stage to the executor, in order, while it has room and the run has budget and time."""
        running = sum(p.running for p in window.values())
        inquired = sum(p.submitted for p in window.values())
        for pending in window.values():
            if pending.submitted:
                continue
            if running >= self.executor.capacity or not self._room(inquired):
                return
            pending.submitted, running, inquired = True, running + 1, inquired + 1
            self.executor.submit(pending.number, self.stages[0].task(pending.graph))

    def _promote(self, window: dict[int, _Pending]) -> bool:
        """Decide one waiting candidate's promotion (with an ordered executor only the oldest's) when a worker is free for
        its next stage; True if one was decided.

        Its peers are the records so far: with an ordered executor, exactly the candidates proposed before it.
        """
        waiting = [p for p in window.values() if p.waiting]
        if not waiting or (self.executor.ordered and waiting[0] is not next(iter(window.values()))):
            return False
        if sum(p.running for p in window.values()) >= self.executor.capacity:
            return False
        pending = waiting[0]
        pending.waiting = False
        stage = self.stages[pending.stage - 1]
        assert stage.promotion is not None
        why_not = stage.promotion.decide(pending.stages[stage.name]["score"], stage.promotion.peers(self.records))
        if why_not:
            pending.end(_Outcome(Status.REJECTED, f"{stage.name}: {why_not}", stage.name))
        else:
            self.executor.submit(pending.number, self.stages[pending.stage].task(pending.graph))
        return True

    def _record_next(self, window: dict[int, _Pending]) -> bool:
        """Record the oldest candidate if it has ended (with an unordered executor, the oldest that has ended); True if one was."""
        if self.executor.ordered:
            pending = next(iter(window.values()), None)
        else:
            pending = next((p for p in window.values() if p.outcome), None)
        if pending is None or pending.outcome is None:
            return False
        del window[pending.number]
        outcome = pending.outcome
        self._finish(pending, outcome.status, outcome.reason, stage=outcome.stage, inquired=True, weights=outcome.weights)
        for copy in self._held.pop(pending.hash):
            self._finish_duplicate(copy, self.seen[pending.hash])
        self._looked_ahead = False
        return True

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
        if digest in self._held:  # the same architecture is being measured: a duplicate of it, recorded after it
            self._held[digest].append(pending)
            return None
        judgement = self.engine.judge(pending.candidate(), "structural")
        pending.verdicts.update(judgement.verdicts)
        if judgement.error:
            return self._finish(pending, Status.FAILED, judgement.error)
        if not judgement.feasible:
            return self._finish(pending, Status.REJECTED, "structural: " + _failed_reasons(judgement.verdicts), stage="structural")
        pending.timings["propose_s"] = time.perf_counter() - started
        return pending

    def _advance(self, pending: _Pending, result: TaskResult) -> bool:
        """Take a stage's result; True when the candidate goes on to the next stage, else its outcome is set."""
        stage = self.stages[pending.stage]
        pending.stage += 1
        pending.timings.update(result.timings)
        pending.stages[stage.name] = {"measurements": dict(result.measurements), "timings": dict(result.timings)}
        if not result.ok:
            return pending.end(_Outcome(Status.FAILED, f"{stage.name}: {result.reason}", stage.name))
        pending.measurements.update(result.measurements)
        if result.stopped:
            return pending.end(_Outcome(Status.REJECTED, f"{stage.name}: {result.stopped}", stage.name))
        last = pending.stage == len(self.stages)
        if last:
            pending.measurements["score"] = self.objective.scalar(pending.measurements)
        skip = set(pending.verdicts) | self._unsettled[pending.stage - 1]
        judgement = self.engine.judge(pending.candidate(), "measured", skip=skip)
        pending.verdicts.update(judgement.verdicts)
        if judgement.error:
            return pending.end(_Outcome(Status.FAILED, judgement.error, stage.name))
        if not judgement.feasible:
            return pending.end(_Outcome(Status.REJECTED, f"{stage.name}: " + _failed_reasons(judgement.verdicts), stage.name))
        if last:
            return pending.end(_Outcome(Status.EVALUATED, weights=result.weights))
        if stage.promotion:
            pending.stages[stage.name]["score"] = self.objective.scalar(pending.measurements)
            pending.waiting = True
            return False
        return True

    # -- recording ------------------------------------------------------------------------------
    def _finish(self, p: _Pending, status: Status, reason: str, stage: str = "", inquired: bool = False, weights: bytes | None = None) -> None:
        evaluated = status is Status.EVALUATED
        p.timings.setdefault("total_s", time.perf_counter() - p.started)
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


def _unsettled_constraints(stages: list[EvaluationStage], engine: ConstraintEngine) -> list[set[str]]:
    """For each stage, the measured constraints not to check yet: they need a metric that a stage with a promotion rule
    (a rung) measured provisionally and a later stage measures again (a rung's accuracy is not the candidate's until its
    last rung)."""
    unsettled = []
    for i in range(len(stages)):
        provisional = {name for stage in stages[:i + 1] if stage.promotion for name in stage.measures}
        later = {name for stage in stages[i + 1:] for name in stage.measures}
        unsettled.append({c.name for c in engine.of_stage("measured") if provisional & later & set(c.requires)})
    return unsettled


def _failed_reasons(verdicts: dict[str, dict[str, Any]]) -> str:
    return "; ".join(f"{name}: {v['reason']}" for name, v in verdicts.items() if not v["satisfied"])
