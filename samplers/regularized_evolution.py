"""Regularized (aging) evolution: Real, Aggarwal, Huang and Le, AAAI 2019 (arXiv 1802.01548).

Written as a user's sampler plugin would be: an Optuna ``BaseSampler`` plus a factory, found
through the ``gensynth.samplers`` entry-point group (see gensynth's ``pyproject.toml``).

The population is the last ``population_size`` (P) completed trials of the study, feasible or
not (a trial dies of age, not of being bad: the "regularization"). For each new trial a
tournament of ``sample_size`` (S) members drawn at random picks the parent: the best feasible
one by value; when none in the tournament is feasible, the one with the smallest total
constraint violation (the public ``FrozenTrial.constraints``, > 0 infeasible; ties by value).
The child copies the parent and mutates exactly one of its parameters to a different choice.
In a define-by-run space the child may ask for a parameter the parent never had (the mutated
gene opened a branch): that one is drawn at random, and parent parameters it no longer asks
for are dropped. Until P trials have completed, every trial is drawn at random.

Defaults P = 50, S = 10: smaller than the paper's large-scale runs, so that selection starts
within gensynth's budgets of a few hundred candidates. Real et al. found aging evolution ahead
of reinforcement learning and random search at equal cost; on NAS-Bench-101 (Ying et al. 2019,
arXiv 1902.09635) it is among the strongest of the optimizers compared (random search, TPE,
SMAC, BOHB, REINFORCE).

Categorical parameters mutate to another choice, uniformly; other distributions are redrawn
at random. A parameter whose distribution differs from the parent's is drawn at random.
Single-objective only. Seeded: the same seed and the same results give the same proposals.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from gensynth.errors import UserError


@dataclass(frozen=True)
class _Plan:
    """What a trial inherits: its parent's parameters and distributions, and the one to mutate."""

    parent: FrozenTrial
    mutate: str


class RegularizedEvolutionSampler(optuna.samplers.BaseSampler):
    """Aging evolution over define-by-run parameters: population ``population_size``, tournament ``sample_size``."""

    def __init__(self, population_size: int = 50, sample_size: int = 10, seed: int | None = None):
        if not 1 <= sample_size <= population_size:
            raise ValueError(f"need 1 <= sample_size <= population_size, got {sample_size} and {population_size}")
        self.population_size, self.sample_size = population_size, sample_size
        self._rng = random.Random(seed)
        self._random = optuna.samplers.RandomSampler(seed=seed)
        self._plans: dict[int, _Plan] = {}

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}  # define-by-run: every parameter is decided in sample_independent, from the trial's plan

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Pick the parent by tournament and the parameter to mutate (none while the population fills)."""
        if len(study.directions) != 1:
            raise ValueError("RegularizedEvolutionSampler is single-objective")
        population = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))[-self.population_size:]
        if len(population) < self.population_size:
            return
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        parent = min(self._rng.sample(population, self.sample_size), key=lambda t: _rank(t, sign))
        mutable = [name for name, dist in parent.distributions.items() if not dist.single()]
        if mutable:
            self._plans[trial.number] = _Plan(parent, self._rng.choice(mutable))

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, name: str, distribution: BaseDistribution) -> Any:
        plan = self._plans.get(trial.number)
        if plan is None or plan.parent.distributions.get(name) != distribution:
            return self._random.sample_independent(study, trial, name, distribution)
        value = plan.parent.params[name]
        if name != plan.mutate:
            return value
        if isinstance(distribution, CategoricalDistribution):
            current = distribution.to_internal_repr(value)
            others = [i for i in range(len(distribution.choices)) if i != current]
            return distribution.choices[self._rng.choice(others)]
        return self._random.sample_independent(study, trial, name, distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._plans.pop(trial.number, None)

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._random.reseed_rng()


def _rank(trial: FrozenTrial, sign: float) -> tuple[float, float]:
    """Smaller is better: total violation first (0 when feasible), then the signed value."""
    violation = sum(max(0.0, c) for c in trial.constraints.values())
    return violation, sign * trial.value


def make(seed: int, directions: tuple[str, ...], history: int) -> RegularizedEvolutionSampler:
    """The gensynth sampler factory (entry point ``regularized_evolution``); P = 50, S = 10, ``history`` unused."""
    if len(directions) != 1:
        raise UserError(f"sampler 'regularized_evolution' is single-objective, but the objective has {len(directions)} "
                        "directions (use nsga2 for Pareto objectives)")
    return RegularizedEvolutionSampler(seed=seed)
