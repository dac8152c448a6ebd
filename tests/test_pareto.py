"""A Pareto search with NSGA-II on the shipped ``dcac`` space under the default rules finishes its budget.

The probe is real (build, params and MACs at 224 px, in the probe process, so the driver proposes
ahead as in a real run); accuracy comes from a fake in-process stage instead of training.
"""
from __future__ import annotations

from gensynth.plugins import instantiate
from gensynth.search.config import DEFAULT_CONSTRAINTS, LatencyConfig, ObjectiveConfig, SearchConfig
from gensynth.search.executors import LocalExecutor
from gensynth.search.generator import Generator
from gensynth.search.judge import ConstraintEngine
from gensynth.search.objective import make_objective
from gensynth.search.run import Search
from gensynth.search.samplers import make_sampler
from gensynth.search.stages import ProbeStage
from gensynth.search.store import RunStore
from gensynth.space import load_space
from test_loop import FakeStage


class AccuracyOnly(FakeStage):
    name = "fake_train"
    measures = ("accuracy",)


def test_nsga2_finishes_a_budget_of_50_on_dcac_within_the_proposal_cap(tmp_path):
    space = load_space("dcac")
    objective = make_objective(ObjectiveConfig(name="pareto", metrics=["accuracy", "params"]))
    sampler = make_sampler("nsga2", 0, objective.directions, 300)
    store = RunStore(tmp_path / "run")
    store.create()
    budget = 50
    search = Search(
        space=space, generator=Generator(space, list(objective.directions), sampler, objective.placeholder()),
        executor=LocalExecutor(), store=store, objective=objective,
        constraints=ConstraintEngine([instantiate(name) for name in DEFAULT_CONSTRAINTS]),
        stages=[ProbeStage(SearchConfig(latency=LatencyConfig(runs=0)), threads=1), AccuracyOnly()],
        budget=budget, proposal_cap=200 * budget, lookahead=sampler.lookahead,
    )
    result = search.run()
    assert result.evaluated == budget and not result.capped
    assert result.proposals < 1000, f"{result.proposals} proposals for {budget} evaluations"
    assert result.feasible >= 10
