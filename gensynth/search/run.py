"""The search loop: propose → structural constraints → probe → measured constraints → train → tell.

Every finished candidate becomes one line of ``candidates.jsonl`` before the
generator hears of it, so a resumed run (same command, same run directory)
re-evaluates nothing that finished and honours the budget; the generator
replays those lines into its study.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..constraint import Candidate, Constraint, RunContext
from ..data import load_dataset
from ..errors import UserError
from ..ir.graph import ArchGraph
from ..ir.serialize import to_dict
from ..plugins import instantiate
from ..space.space import SearchSpace, load_space
from .config import SearchConfig, constraint_specs
from .emit import emit_final
from .executors import Executor, make_executor
from .generator import Generator
from .inquisitor import ProbeTask, TaskResult, TrainTask
from .judge import ConstraintEngine
from .objective import Objective, make_objective
from .progress import SearchProgress
from .store import RunStore


@dataclass
class _Pending:
    """A candidate in the inquisitor's hands."""

    number: int
    genome: dict[str, Any]
    graph: ArchGraph
    hash: str
    started: float
    phase: str = "probe"
    timings: dict[str, float] = field(default_factory=dict)
    measurements: dict[str, float] = field(default_factory=dict)
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)

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
    best: dict[str, Any] | None
    final_dir: Path | None


class Search:
    """One run: owns the generator, the constraint engine, the executor and the run store."""

    def __init__(self, config: SearchConfig, constraints: list[Constraint | str | type] = (), progress: bool = True):
        self.config = config
        self.space: SearchSpace = load_space(config.space)
        self.objective: Objective = make_objective(config.objective)
        configured = [instantiate(ref, options) for ref, options in constraint_specs(config)]
        self.engine = ConstraintEngine(configured + [instantiate(c) for c in constraints])
        _check_measurable(self.engine, config)
        self.data = load_dataset(config.data, train_limit=config.training.train_images, val_limit=config.training.val_images, seed=config.seed)
        self.store = RunStore.open(config)
        self.records = self.store.records()
        self.generator = Generator(self.space, self.objective, config.sampler, config.seed, self.store.storage_url(config), config.name or "gensynth", config.history)
        self.seen = {r["hash"]: r for r in self.records if r["status"] in ("evaluated", "rejected", "failed") and r.get("hash")}
        self.best = max((r for r in self.records if r.get("feasible")), key=lambda r: r["score"], default=None)
        self.show_progress = progress
        self.threads = config.threads_per_worker if config.executor == "ray" else torch.get_num_threads()

    # -- the loop -------------------------------------------------------------------
    def run(self) -> RunResult:
        self.generator.replay(self.records)
        executor = make_executor(self.config)
        executor.start(self.data)
        try:
            self._prepare_constraints(executor)
            capped = self._loop(executor)
        finally:
            executor.shutdown()
            self.generator.close()
        final = emit_final(self) if self.best else None
        return RunResult(self.store.root, self.evaluated, self.feasible, self.proposals, capped, self.best, final)

    @property
    def evaluated(self) -> int:
        return sum(1 for r in self.records if r.get("inquired"))

    @property
    def feasible(self) -> int:
        return sum(1 for r in self.records if r.get("feasible"))

    def _loop(self, executor: Executor) -> bool:
        """Keep the executor busy until the budget is spent; True when the proposal cap stopped it first.

        While the executor works in the background the driver prepares the next
        candidate (in a sequential run, at the same point every time), then
        writes the storage mirror until a result is ready, so that engine work
        overlaps the measurements instead of adding to them.
        """
        budget = self.config.budget
        self.proposals = len(self.generator.study.trials)
        in_flight: dict[int, _Pending] = {}
        ready: _Pending | None = None
        with SearchProgress(budget, enabled=self.show_progress) as bar:
            bar.update(self.evaluated, self.feasible, self.best)
            while True:
                while len(in_flight) < executor.capacity and self.evaluated + len(in_flight) < budget:
                    pending, ready = ready or self._next_candidate(), None
                    if pending is None:
                        break
                    in_flight[pending.number] = pending
                    executor.submit(pending.number, self._probe_task(pending.graph))
                if not in_flight:
                    return self.proposals >= self.config.proposal_cap and self.evaluated < budget
                if executor.runs_in_background:
                    if ready is None and self.evaluated + len(in_flight) < budget:
                        ready = self._next_candidate()
                    self.generator.flush(stop=executor.has_results)
                for number, result in executor.wait():
                    if self._advance(in_flight[number], result):
                        executor.submit(number, self._train_task(in_flight[number].graph))
                    else:
                        del in_flight[number]
                    bar.update(self.evaluated, self.feasible, self.best)

    def _next_candidate(self) -> _Pending | None:
        """Propose until a new, structurally feasible candidate comes up; None at the proposal cap."""
        while self.proposals < self.config.proposal_cap:
            if pending := self._propose():
                return pending
        return None

    def _propose(self) -> _Pending | None:
        """Ask for a genome; decide duplicates and structural rejections at once; return what needs measuring."""
        started = time.perf_counter()
        number, genome = self.generator.ask()
        self.proposals += 1
        try:
            graph = self.space.to_graph(genome)
            digest = graph.structural_hash()
        except Exception as err:  # a family that cannot build this genome
            return self._finish(_Pending(number, genome, ArchGraph(), "", started), "failed", f"genome → graph failed: {type(err).__name__}: {err}")
        pending = _Pending(number, genome, graph, digest, started)
        if digest in self.seen:
            return self._finish_duplicate(pending, self.seen[digest])
        judgement = self.engine.judge(pending.candidate(), "structural")
        pending.verdicts.update(judgement.verdicts)
        if judgement.error:
            return self._finish(pending, "failed", judgement.error)
        if not judgement.feasible:
            return self._finish(pending, "rejected", "structural: " + _failed_reasons(judgement.verdicts), stage="structural")
        pending.timings["propose_s"] = time.perf_counter() - started
        return pending

    def _advance(self, pending: _Pending, result: TaskResult) -> bool:
        """Take a task's result; True when the candidate goes on to training."""
        pending.timings.update(result.timings)
        if not result.ok:
            self._finish(pending, "failed", result.reason, inquired=True)
            return False
        pending.measurements.update(result.measurements)
        if pending.phase == "train":
            pending.measurements["score"] = self.objective.scalar(pending.measurements)
        judgement = self.engine.judge(pending.candidate(), "measured", skip=set(pending.verdicts))
        pending.verdicts.update(judgement.verdicts)
        if judgement.error:
            self._finish(pending, "failed", judgement.error, inquired=True)
            return False
        if not judgement.feasible:
            self._finish(pending, "rejected", "measured: " + _failed_reasons(judgement.verdicts), stage="measured", inquired=True)
            return False
        if pending.phase == "probe":
            pending.phase = "train"
            return True
        self._finish(pending, "evaluated", "", inquired=True, weights=result.weights)
        return False

    # -- recording --------------------------------------------------------------------
    def _finish(self, p: _Pending, status: str, reason: str, stage: str = "", inquired: bool = False, weights: bytes | None = None) -> None:
        evaluated = status == "evaluated"
        feasible = evaluated and all(v["satisfied"] for v in p.verdicts.values())
        score = p.measurements["score"] if evaluated else None
        values = self.objective.values(p.measurements) if evaluated else (self.objective.placeholder() if status == "rejected" else None)
        violations = self.engine.violations(p.verdicts)
        p.timings["total_s"] = time.perf_counter() - p.started
        record = {
            "number": p.number, "hash": p.hash, "status": status, "feasible": feasible, "rejected_at": stage, "reason": reason,
            "inquired": inquired, "score": score, "values": values, "violations": violations, "verdicts": p.verdicts,
            "measurements": p.measurements, "timings": {k: round(v, 4) for k, v in p.timings.items()}, "genome": p.genome,
        }
        self._commit(record)
        if feasible and (self.best is None or score > self.best["score"]):
            self.best = record
            if weights:
                self.store.save_best_weights(weights)

    def _finish_duplicate(self, p: _Pending, earlier: dict[str, Any]) -> None:
        record = {
            "number": p.number, "hash": p.hash, "status": "duplicate", "feasible": False, "rejected_at": "",
            "reason": f"same architecture as candidate {earlier['number']}", "inquired": False, "score": None,
            "values": earlier["values"], "violations": earlier["violations"], "verdicts": {}, "measurements": {},
            "timings": {"total_s": round(time.perf_counter() - p.started, 4)}, "genome": p.genome,
        }
        self._commit(record)

    def _commit(self, record: dict[str, Any]) -> None:
        """Durable first, then tell the generator (a kill in between is repaired on resume by the replay)."""
        self.store.append(record)
        self.records.append(record)
        if record["status"] != "duplicate":
            self.seen.setdefault(record["hash"], record)
        self.generator.tell(record["number"], record["values"], record["violations"])

    # -- tasks and references ---------------------------------------------------------------
    def _probe_task(self, graph: ArchGraph) -> ProbeTask:
        return ProbeTask(to_dict(graph), self.config.latency, self.threads)

    def _train_task(self, graph: ArchGraph) -> TrainTask:
        return TrainTask(to_dict(graph), self.space.proxy, self.config.training, self.config.seed, self.threads)

    def _prepare_constraints(self, executor: Executor) -> None:
        cache = self.store.reference_cache()

        def measure(graph: ArchGraph, label: str) -> dict[str, float]:
            key = f"{label}:{graph.structural_hash()}"
            if key not in cache:
                cache[key] = _measure_now(executor, self._probe_task(graph), self._train_task(graph), self.objective.scalar)
                self.store.save_reference_cache(cache)
            return cache[key]

        for constraint in self.engine.constraints:
            constraint.prepare(RunContext(measure))


def _measure_now(executor: Executor, probe: ProbeTask, train: TrainTask, scalar: Callable[[dict[str, float]], float]) -> dict[str, float]:
    """Measure a reference with the run's protocol, through the run's executor."""
    measurements: dict[str, float] = {}
    for task in (probe, train):
        executor.submit("reference", task)
        ((_, result),) = executor.wait()
        if not result.ok:
            raise UserError(f"reference architecture could not be measured: {result.reason}")
        measurements.update(result.measurements)
    measurements["score"] = scalar(measurements)
    return measurements


def _check_measurable(engine: ConstraintEngine, config: SearchConfig) -> None:
    """Refuse a measured constraint that needs a measurement this run never makes (it would be skipped)."""
    measured = {"params", "macs", "accuracy", "train_loss", "score"}
    if config.latency.runs:
        measured.add("latency_ms")
    for constraint in engine.of_stage("measured"):
        missing = sorted(set(constraint.requires) - measured)
        if missing:
            why = " (latency.runs is 0)" if missing == ["latency_ms"] else ""
            raise UserError(f"constraint '{constraint.name}' needs '{missing[0]}', which this run does not measure{why}")


def _failed_reasons(verdicts: dict[str, dict[str, Any]]) -> str:
    return "; ".join(f"{name}: {v['reason']}" for name, v in verdicts.items() if not v["satisfied"])


def run_search(config: SearchConfig, constraints: list[Constraint | str | type] = (), progress: bool = True) -> RunResult:
    """Run (or resume) the search that ``config`` describes."""
    return Search(config, list(constraints), progress).run()
