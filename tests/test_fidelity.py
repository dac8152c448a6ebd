"""Multi-fidelity training (gensynth/search/fidelity.py): the promotion rule, the rungs as stages, determinism and resume.

The loop tests use fake stages (``pool_tasks.HashedStage``: values fixed by the
graph's hash, a short sleep so tasks finish out of order), so they need no
training; one test builds the real rung stages from a config.
"""
from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from gensynth.constraint import Constraint, Verdict
from gensynth.errors import UserError
from gensynth.plugins import instantiate
from gensynth.search.config import DEFAULT_CONSTRAINTS, FidelityConfig, ObjectiveConfig, SearchConfig, TrainingConfig, validate
from gensynth.search.executors import LocalExecutor
from gensynth.search.fidelity import Promotion, rung_stages
from gensynth.search.generator import Generator
from gensynth.search.judge import ConstraintEngine
from gensynth.search.objective import make_objective
from gensynth.search.protocol import protocol_fingerprint
from gensynth.search.record import Status
from gensynth.search.run import Search
from gensynth.search.stages import TrainStage, make_stages
from gensynth.search.store import RunStore
from gensynth.search.worker_pool import WorkerPool
from gensynth.space import load_space
from pool_tasks import HashedStage, Shuffled
from tiny_space import write_tiny_space

ETA = 3


# -- the promotion rule, checked by hand ----------------------------------------------------------------------


def test_the_first_candidates_go_on_only_while_they_are_the_best_so_far():
    rule = Promotion("train", ETA)
    assert rule.decide(10.0, []) == ""  # alone: the best so far
    assert rule.decide(12.0, [10.0]) == ""  # 2 // 3 = 0: only the best goes on
    assert "ranks 2 of 2" in rule.decide(9.0, [10.0])
    assert rule.decide(10.0, [10.0]) == "", "a tie with the best is promoted (as Optuna's >=)"


def test_with_enough_peers_the_top_third_goes_on():
    rule = Promotion("train", ETA)
    peers = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]  # with the candidate, 9 scores: the top 3 go on, the bar is the 3rd best
    assert rule.decide(7.0, peers) == ""  # 8, 7, 7: third
    assert rule.decide(6.5, peers) == ""  # 8, 7, 6.5: third
    assert rule.decide(5.5, peers) == "not promoted: score 5.500 ranks 4 of 9 at this rung; the top 3 (score >= 6.000) go on"
    assert rule.decide(9.0, peers) == ""
    assert Promotion("train", 2).decide(5.5, peers) == ""  # 9 // 2 = 4: 8, 7, 6, 5.5


# -- rungs as stages --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_space(tmp_path_factory):
    return load_space(str(write_tiny_space(tmp_path_factory.mktemp("space"))))


def test_the_train_stage_becomes_one_stage_per_rung_with_a_rule_between_them(tiny_space):
    config = SearchConfig(fidelity=FidelityConfig(rungs=[1, 3, 9], reduction_factor=ETA), training=TrainingConfig(epochs=2))
    stages = make_stages(config, tiny_space, threads=1)
    rungs = [s for s in stages if isinstance(s, TrainStage)]
    assert [s.name for s in stages] == ["probe", "train", "train_x3", "train_x9"]
    assert [s.training.epochs for s in rungs] == [2, 6, 18]
    assert [s.promotion for s in rungs] == [Promotion("train", ETA), Promotion("train_x3", ETA), None]
    assert all(s.training.train_images == config.training.train_images for s in rungs)


def test_one_rung_is_the_single_fidelity_protocol_with_its_fingerprint_unchanged(tiny_space):
    config = SearchConfig()
    (stage,) = rung_stages(config, tiny_space, threads=1)
    assert stage.name == "train" and stage.promotion is None and stage.training == config.training
    plain = TrainStage(config, tiny_space, threads=1)
    assert protocol_fingerprint([stage]) == protocol_fingerprint([plain])
    two = rung_stages(SearchConfig(fidelity=FidelityConfig(rungs=[1, 3])), tiny_space, threads=1)
    assert protocol_fingerprint(two) != protocol_fingerprint([plain])


@pytest.mark.parametrize("rungs", [[], [0, 1], [3, 3], [9, 3]])
def test_rungs_must_be_increasing_multiples(rungs):
    with pytest.raises(UserError, match=r"key 'fidelity.rungs': must be increasing training-length multiples >= 1"):
        validate(SearchConfig(fidelity=FidelityConfig(rungs=rungs)))


def test_the_reduction_factor_is_at_least_two():
    with pytest.raises(UserError, match=r"key 'fidelity.reduction_factor': must be >= 2, got 1"):
        validate(SearchConfig(fidelity=FidelityConfig(rungs=[1, 3], reduction_factor=1)))


# -- the loop with rungs ---------------------------------------------------------------------------------------

RUNG_BONUS = {"train": 0.0, "train_x3": 5.0, "train_x9": 8.0}
"""Each fake rung's accuracy is the first's plus this: longer training, higher top-1."""


class AccuracyFloor(Constraint):
    """A measured constraint on accuracy (as ``reference_beating``): it must see the last rung's value only."""

    name = "accuracy_floor"
    stage = "measured"
    requires = ("accuracy",)
    seen: list[float] = []

    def check(self, candidate):
        self.seen.append(candidate.measurements["accuracy"])
        return Verdict(True, 0.0)


def fidelity_run(space, root: Path, executor, budget: int = 12, constraints=()) -> Search:
    objective = make_objective(ObjectiveConfig())
    sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=3)
    generator = Generator(space, list(objective.directions), sampler, objective.placeholder())
    store = RunStore(root)
    store.create()
    stages = [HashedStage("probe", ("params", "macs"), needs_data=True)]  # in this process: no probe process to import pool_tasks
    for name, bonus in RUNG_BONUS.items():
        stages.append(HashedStage(name, ("accuracy",), needs_data=True, offset=bonus))
    stages[1].promotion, stages[2].promotion = Promotion("train", ETA), Promotion("train_x3", ETA)
    engine = ConstraintEngine([instantiate(c) for c in DEFAULT_CONSTRAINTS] + list(constraints))
    return Search(space=space, generator=generator, executor=executor, store=store, objective=objective, constraints=engine,
                  stages=stages, budget=budget, proposal_cap=50 * budget)


def outcomes(root: Path) -> list[tuple]:
    return [(r.number, r.hash, r.status.value, r.rejected_at, r.reason, r.measurements, r.score) for r in RunStore(root).records()]


def check_promotions(root: Path, budget: int) -> dict[str, int]:
    """Every candidate went on exactly when the rule, judging it against the candidates recorded before it, said so;
    how many each rung stopped."""
    inquired = [r for r in RunStore(root).records() if r.inquired]
    assert len(inquired) == budget, "the budget counts candidates that entered evaluation, at any rung"
    assert len({r.hash for r in inquired}) == budget, "a candidate was evaluated twice"
    rules = {"train": Promotion("train", ETA), "train_x3": Promotion("train_x3", ETA)}
    stopped = {name: 0 for name in rules}
    for i, record in enumerate(inquired):
        for name, rule in rules.items():
            verdict = rule.decide(record.stages[name]["score"], rule.peers(inquired[:i]))
            if verdict:
                stopped[name] += 1
                assert record.status is Status.REJECTED and record.rejected_at == name and record.reason == f"{name}: {verdict}"
                assert list(record.stages)[-1] == name, "nothing ran after the rung that stopped it"
                break
        else:
            assert record.status is Status.EVALUATED and set(RUNG_BONUS) <= set(record.stages)
            assert record.measurements["accuracy"] == record.stages["train_x9"]["measurements"]["accuracy"]
    return stopped


def test_each_candidate_is_promoted_exactly_when_the_rule_says_against_the_candidates_before_it(tiny_space, tmp_path):
    result = fidelity_run(tiny_space, tmp_path / "run", LocalExecutor()).run()
    assert result.evaluated == 12
    stopped = check_promotions(tmp_path / "run", 12)
    assert stopped["train"] >= 3 and stopped["train_x3"] >= 1, stopped
    assert result.best is not None and "train_x9" in result.best.stages, "only last-rung candidates compete for best"


def test_a_measured_constraint_on_accuracy_sees_only_the_last_rung(tiny_space, tmp_path):
    AccuracyFloor.seen = []
    fidelity_run(tiny_space, tmp_path / "run", LocalExecutor(), budget=8, constraints=[AccuracyFloor()]).run()
    finals = [r for r in RunStore(tmp_path / "run").records() if r.status is Status.EVALUATED]
    assert finals and sorted(AccuracyFloor.seen) == sorted(r.stages["train_x9"]["measurements"]["accuracy"] for r in finals)


def test_any_finishing_order_and_one_or_two_workers_give_the_same_promotions(tiny_space, tmp_path, importable):
    fidelity_run(tiny_space, tmp_path / "shuffled0", Shuffled(0, capacity=2)).run()
    first = outcomes(tmp_path / "shuffled0")
    assert {r[3] for r in first if r[2] == "rejected"} >= {"train", "structural"}
    for seed in (1, 2):
        fidelity_run(tiny_space, tmp_path / f"shuffled{seed}", Shuffled(seed, capacity=2)).run()
        assert outcomes(tmp_path / f"shuffled{seed}") == first
    for workers in (1, 2):
        fidelity_run(tiny_space, tmp_path / f"pool{workers}", WorkerPool(workers, threads=1)).run()
        assert outcomes(tmp_path / f"pool{workers}") == first


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("rung", ["train_x3", "train_x9"])
def test_a_kill_in_the_middle_of_a_rung_resumes_to_the_same_records(tiny_space, tmp_path, rung):
    fidelity_run(tiny_space, tmp_path / "whole", LocalExecutor()).run()
    whole = outcomes(tmp_path / "whole")
    target = next(r for r in whole if r[3] == rung or (r[2] == "evaluated" and rung == "train_x9"))
    search = fidelity_run(tiny_space, tmp_path / "killed", LocalExecutor())
    stage = next(s for s in search.stages if s.name == rung)
    original = stage.task

    def interrupted(graph):
        if graph.structural_hash() == target[1]:
            raise Interrupt(f"killed while candidate {target[0]} trains at {rung}")
        return original(graph)

    stage.task = interrupted
    with pytest.raises(Interrupt):
        search.run()
    partial = outcomes(tmp_path / "killed")
    assert partial == whole[:len(partial)] and target[0] not in {r[0] for r in partial}, "only what finished was recorded"
    fidelity_run(tiny_space, tmp_path / "killed", LocalExecutor()).run()
    resumed = outcomes(tmp_path / "killed")
    assert resumed[:len(partial)] == partial
    check_promotions(tmp_path / "killed", 12)
