"""The search loop driven with fake evaluation stages (no torch training): each test well under a second.

The loop is given its collaborators; a fake stage measures params, MACs and
accuracy from the graph's hash, so outcomes are deterministic and instant.
Crashes are injected at every step of recording and emitting, then the run is
resumed: the budget is honoured, no candidate is evaluated twice, and
``final/`` matches the best record.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import optuna
import pytest
import yaml

from gensynth.ir.serialize import load, to_dict
from gensynth.plugins import instantiate
from gensynth.search.config import DEFAULT_CONSTRAINTS, ObjectiveConfig, SearchConfig
from gensynth.search.emit import emit_final
from gensynth.search.executors import LocalExecutor
from gensynth.search.generator import Generator
from gensynth.search.inquisitor import TaskResult
from gensynth.search.judge import ConstraintEngine
from gensynth.search.mirror import StorageMirror
from gensynth.search.objective import make_objective
from gensynth.search.record import Status
from gensynth.search.run import Search
from gensynth.search.stages import EvaluationStage
from gensynth.search.store import RunStore
from gensynth.space import load_space
from tiny_space import write_tiny_space


def _unit(graph: dict[str, Any], salt: str) -> float:
    """A number in [0, 1) fixed by the graph and ``salt``."""
    digest = hashlib.sha256((salt + json.dumps(graph, sort_keys=True)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class FakeTask:
    graph: dict[str, Any]
    fail_below: float = 0.0
    stop_below: float = 0.0
    needs_data: ClassVar[bool] = True  # runs in the driver: no probe process, no torch

    def __call__(self, data: Any = None) -> TaskResult:
        u = _unit(self.graph, "outcome")
        if u < self.fail_below:
            return TaskResult(False, reason="crashed: fake failure")
        if u < self.stop_below:
            return TaskResult(True, {"screen": u}, stopped=f"screen {u:.2f} below {self.stop_below}")
        measurements = {"params": 1e5 + 1e6 * _unit(self.graph, "p"), "macs": 1e7 + 1e8 * _unit(self.graph, "m"),
                        "accuracy": 50 + 40 * _unit(self.graph, "a")}
        weights = hashlib.sha256(json.dumps(self.graph, sort_keys=True).encode()).hexdigest().encode()
        return TaskResult(True, measurements, timings={"fake_s": 0.0}, weights=weights)


class FakeStage(EvaluationStage):
    name = "fake"
    measures = ("params", "macs", "accuracy")

    def __init__(self, fail_below: float = 0.0, stop_below: float = 0.0, name: str = "fake"):
        self.fail_below, self.stop_below, self.name = fail_below, stop_below, name

    def task(self, graph):
        return FakeTask(to_dict(graph), self.fail_below, self.stop_below)


class FirstChoice(optuna.samplers.BaseSampler):
    """Always the first option of every gene: every proposal is the same architecture."""

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, name, distribution):
        return distribution.choices[0]


LOOP_GENES = {"stem.downsample": ["blur_conv"], "columns.downsample": ["blurpool", "avgpool"], "stage.downsample": ["blurpool", "avgpool"]}
"""The tiny space with fewer rule-breaking options, so a random sampler finds feasible candidates in a few proposals
(``col.count`` 2 still breaks the columnar rule: about half the proposals are rejected)."""


@pytest.fixture(scope="module")
def tiny_space(tmp_path_factory):
    path = write_tiny_space(tmp_path_factory.mktemp("space"))
    data = yaml.safe_load(path.read_text())
    for dotted, options in LOOP_GENES.items():
        group, _, member = dotted.partition(".")
        genes = data["genes"]
        if member and isinstance(genes.get(group), dict):
            genes[group]["genes"][member] = options
        else:
            genes[dotted] = options
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_space(str(path))


def make_search(space, root: Path, budget: int = 4, stages=None, sampler=None, mirror: bool = True, emit: bool = True, constraints=None,
                proposal_cap: int = 0):
    objective = make_objective(ObjectiveConfig())
    engine = ConstraintEngine(constraints if constraints is not None else [instantiate(name) for name in DEFAULT_CONSTRAINTS])
    generator = Generator(space, list(objective.directions), sampler or optuna.samplers.RandomSampler(seed=0), objective.placeholder())
    store = RunStore(root)
    store.create()
    storage_mirror = None
    if mirror:
        storage_mirror = StorageMirror(f"{root / 'study.log'}", "loop-test", list(objective.directions), objective.metric_names, generator.distributions)
    config = SearchConfig(export_onnx=False)
    return Search(space=space, generator=generator, executor=LocalExecutor(), store=store, objective=objective, constraints=engine,
                  stages=stages or [FakeStage()], budget=budget, proposal_cap=proposal_cap or 200 * budget, mirror=storage_mirror,
                  emit=(lambda s: emit_final(s, config)) if emit else None)


def test_the_budget_counts_candidates_that_entered_evaluation(tiny_space, tmp_path):
    result = make_search(tiny_space, tmp_path / "run", budget=5, emit=False).run()
    records = RunStore(tmp_path / "run").records()
    assert result.evaluated == 5 == sum(r.inquired for r in records)
    assert sum(r.status is Status.EVALUATED for r in records) == 5
    assert all(not r.inquired for r in records if r.status in (Status.REJECTED, Status.DUPLICATE) and r.rejected_at == "structural")
    assert result.proposals == len(records)  # in-process stages: nothing is proposed ahead


def test_structural_rejections_are_recorded_with_the_rule(tiny_space, tmp_path):
    make_search(tiny_space, tmp_path / "run", budget=4, emit=False).run()
    rejected = [r for r in RunStore(tmp_path / "run").records() if r.status is Status.REJECTED]
    assert rejected, "the tiny space keeps rule-breaking options: some proposals must be rejected"
    for r in rejected:
        assert r.rejected_at == "structural" and not r.inquired and r.values is None
        assert any(not v["satisfied"] for v in r.verdicts.values())
        assert sum(r.violations.values()) > 0


def test_duplicates_are_never_evaluated_twice(tiny_space, tmp_path):
    result = make_search(tiny_space, tmp_path / "run", budget=3, sampler=FirstChoice(), emit=False, constraints=[], proposal_cap=12).run()
    records = RunStore(tmp_path / "run").records()
    assert result.capped and result.evaluated == 1
    first, *rest = sorted(records, key=lambda r: r.number)
    assert first.status is Status.EVALUATED and rest
    assert all(r.status is Status.DUPLICATE and r.duplicate_of == first.number and not r.inquired for r in rest)


def test_failures_are_recorded_count_against_the_budget_and_the_search_goes_on(tiny_space, tmp_path):
    result = make_search(tiny_space, tmp_path / "run", budget=6, stages=[FakeStage(fail_below=0.5)], emit=False).run()
    records = RunStore(tmp_path / "run").records()
    failed = [r for r in records if r.status is Status.FAILED]
    assert failed and result.evaluated == 6
    assert all(r.inquired and r.reason.startswith("fake: crashed") and r.rejected_at == "fake" for r in failed)


def test_a_stage_may_stop_a_candidate_and_later_stages_do_not_run(tiny_space, tmp_path):
    stages = [FakeStage(stop_below=0.5, name="screen"), FakeStage(name="full")]
    make_search(tiny_space, tmp_path / "run", budget=6, stages=stages, emit=False).run()
    inquired = [r for r in RunStore(tmp_path / "run").records() if r.inquired]
    stopped = [r for r in inquired if r.status is Status.REJECTED]
    finished = [r for r in inquired if r.status is Status.EVALUATED]
    assert stopped and finished
    assert all(r.rejected_at == "screen" and list(r.stages) == ["screen"] and "below" in r.reason for r in stopped)
    assert all(list(r.stages) == ["screen", "full"] for r in finished)


def test_a_measured_constraint_stops_a_candidate_at_the_stage_that_measured_it(tiny_space, tmp_path):
    budget = instantiate("max_params", {"limit": 6e5})
    stages = [FakeStage(name="cheap"), FakeStage(name="expensive")]
    make_search(tiny_space, tmp_path / "run", budget=6, stages=stages, emit=False, constraints=[budget]).run()
    over = [r for r in RunStore(tmp_path / "run").records() if r.status is Status.REJECTED]
    assert over and all(r.rejected_at == "cheap" and list(r.stages) == ["cheap"] and r.measurements["params"] > 6e5 for r in over)


def test_final_holds_the_best_candidate_and_its_own_weights(tiny_space, tmp_path):
    result = make_search(tiny_space, tmp_path / "run", budget=4).run()
    _check_final(tmp_path / "run", result.best, tiny_space)


def _check_final(root: Path, best, space) -> None:
    store = RunStore(root)
    records = store.records()
    feasible = [r for r in records if r.feasible]
    assert best is not None and best.score == max(r.score for r in feasible)
    graph = load(store.final_dir / "attendnext.yaml")
    assert graph.structural_hash() == best.hash
    expected = hashlib.sha256(json.dumps(to_dict(space.to_graph(best.genome)), sort_keys=True).encode()).hexdigest().encode()
    assert (store.final_dir / "weights.pt").read_bytes() == expected
    assert sorted(p.name for p in (root / "best").glob("*.pt")) == [f"{best.number}.pt"]


class Crash(BaseException):
    """Stands for a kill: not an Exception, so nothing in the engine catches it."""


STEPS = [
    ("store", "append"), ("store", "save_weights"), ("store", "keep_weights_of"), ("generator", "tell"), ("mirror", "record"),
    ("mirror", "flush"), ("store", "staging_dir"), ("store", "replace_final"), ("emit", "write"),
]


@pytest.mark.parametrize("owner,step", STEPS, ids=[f"{o}.{s}" for o, s in STEPS])
@pytest.mark.parametrize("at_call", [1, 3])
def test_a_crash_at_any_step_then_resume(tiny_space, tmp_path, monkeypatch, owner, step, at_call):
    root = tmp_path / "run"
    search = make_search(tiny_space, root, budget=4)
    calls = {"n": 0}

    def crashing(original):
        def wrapper(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == at_call:
                raise Crash(f"{owner}.{step} #{at_call}")
            return original(*args, **kwargs)
        return wrapper

    if owner == "emit":
        import gensynth.search.emit as emit_module
        monkeypatch.setattr(emit_module, "save", crashing(emit_module.save))
    else:
        target = {"store": search.store, "generator": search.generator, "mirror": search.mirror}[owner]
        monkeypatch.setattr(target, step, crashing(getattr(target, step)))
    try:
        search.run()
    except Crash:
        pass
    monkeypatch.undo()
    result = make_search(tiny_space, root, budget=4).run()
    records = RunStore(root).records()
    inquired = [r.hash for r in records if r.inquired]
    assert len(inquired) == 4 == result.evaluated
    assert len(set(inquired)) == len(inquired), "a candidate was evaluated twice"
    _check_final(root, result.best, tiny_space)
    study = optuna.load_study(study_name="loop-test", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(root / "study.log"))))
    numbers = [t.number for t in study.get_trials(deepcopy=False)]
    assert numbers == list(range(len(numbers))) and len(numbers) >= len(records)


PLACEHOLDERS = {-1e9, 1e18}
"""What the in-memory sampling study hears for rejections (``Objective.placeholder``); never stored."""


def test_the_optuna_storage_tells_the_truth(tiny_space, tmp_path):
    """Opened with plain Optuna: true states, named objectives, measurements as user attributes, no placeholder."""
    root = tmp_path / "run"
    make_search(tiny_space, root, budget=5, stages=[FakeStage(fail_below=0.2)], emit=False).run()
    records = {r.number: r for r in RunStore(root).records()}
    study = optuna.load_study(study_name="loop-test", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(root / "study.log"))))
    assert study.metric_names == ["netscore"]
    states = {Status.EVALUATED: "COMPLETE", Status.REJECTED: "PRUNED", Status.DUPLICATE: "PRUNED", Status.FAILED: "FAIL"}
    trials = study.get_trials(deepcopy=False)
    assert {r.status for r in records.values()} >= {Status.EVALUATED, Status.REJECTED, Status.FAILED}
    for trial in trials:
        record = records[trial.number]
        assert trial.state.name == states[record.status]
        assert trial.user_attrs["hash"] == record.hash and trial.user_attrs["status"] == record.status.value
        assert trial.params == record.genome
        if record.status is Status.EVALUATED:
            assert trial.values == record.values and trial.user_attrs["accuracy"] == record.measurements["accuracy"]
        else:
            assert trial.values is None
        stored = [*(trial.values or []), *(v for v in trial.user_attrs.values() if isinstance(v, float))]
        assert not set(stored) & PLACEHOLDERS and all(math.isfinite(v) for v in stored), "a placeholder value reached the storage"
        if record.status is Status.REJECTED:
            assert any(v > 0 for v in trial.system_attrs["constraints"]), "a rejection must show as infeasible"
