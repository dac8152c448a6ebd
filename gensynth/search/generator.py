"""The generator: proposes genomes through Optuna's ask/tell and learns from violations.

Constraint violations are stored on each trial with Optuna's
``Trial.set_constraint`` (one value per constraint, <= 0 feasible), which TPE
and NSGA-II read, so infeasible regions are learned rather than only refused. Unmeasured (rejected) candidates carry placeholder
values at the worst end of each direction; constrained samplers rank
infeasible trials by their violations, not by those values.
"""
from __future__ import annotations

import optuna
from optuna.trial import Trial, TrialState

from ..space.genes import Genome
from ..space.space import SearchSpace
from .objective import Objective

optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """``tpe`` (default), ``random`` or ``nsga2`` (multi-objective), seeded."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    return optuna.samplers.RandomSampler(seed=seed)


class Generator:
    """Asks Optuna for genomes of ``space`` and tells it what the inquisitor and constraints found."""

    def __init__(self, space: SearchSpace, objective: Objective, sampler: str, seed: int, storage: str, study_name: str):
        self.space, self.objective = space, objective
        self.study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            load_if_exists=True,
            directions=list(objective.directions),
            sampler=make_sampler(sampler, seed),
        )
        self._open: dict[int, Trial] = {}

    def ask(self) -> tuple[int, Genome]:
        """A new trial number and its genome."""
        trial = self.study.ask()
        self._open[trial.number] = trial
        return trial.number, self.space.suggest(trial)

    def tell(self, number: int, values: list[float] | None, violations: dict[str, float]) -> None:
        """Report a finished trial: ``values`` None means failed (the sampler ignores it)."""
        trial = self._open.pop(number, None) or Trial(self.study, self._trial_id(number))
        for name, violation in violations.items():
            trial.set_constraint(name, violation)
        if values is None:
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            self.study.tell(trial, values)

    def running(self) -> list[int]:
        """Trials left RUNNING by an interrupted process."""
        return [t.number for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.number not in self._open]

    def proposals(self) -> int:
        return len(self.study.get_trials(deepcopy=False))

    def _trial_id(self, number: int) -> int:
        return self.study.get_trials(deepcopy=False)[number]._trial_id
