"""The generator: proposes genomes through Optuna's ask/tell and learns from violations.

Sampling runs on an in-memory study (Optuna's RDB storage writes every
suggested parameter in its own transaction: ~1 s per 80-gene proposal on
SQLite). Finished trials are mirrored, in trial-number order, into the run's
persistent storage (SQLite by default, any Optuna URL) so optuna-dashboard
can open it; ``candidates.jsonl`` is the source of truth that a resumed run
replays into a fresh in-memory study.

Constraint violations go in with Optuna's per-trial constraints (<= 0
feasible), which TPE and NSGA-II read, so infeasible regions are learned
rather than only refused. Unmeasured (rejected) candidates carry placeholder
values at the worst end of each direction; constrained samplers rank
infeasible trials by their violations, not by those values.
"""
from __future__ import annotations

import time
import warnings
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, Trial, TrialState, create_trial

from ..space.genes import Genome, ReplayChooser, walk
from ..space.space import SearchSpace
from .objective import Objective

optuna.logging.set_verbosity(optuna.logging.WARNING)
MIRROR_EVERY_S = 5.0


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """``tpe`` (multivariate, grouped: one model per conditional sub-space), ``random`` or ``nsga2``, seeded."""
    if name == "tpe":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    return optuna.samplers.RandomSampler(seed=seed)


class Generator:
    """Asks Optuna for genomes of ``space`` and tells it what the inquisitor and constraints found."""

    def __init__(self, space: SearchSpace, objective: Objective, sampler: str, seed: int, storage: str, study_name: str):
        self.space, self.objective = space, objective
        directions = list(objective.directions)
        self.study = optuna.create_study(directions=directions, sampler=make_sampler(sampler, seed))
        self.mirror = optuna.create_study(storage=storage, study_name=study_name, load_if_exists=True, directions=directions)
        self._open: dict[int, Trial] = {}
        self._mirrored = len(self.mirror.get_trials(deepcopy=False))
        self._last_flush = time.monotonic()

    def replay(self, records: list[dict[str, Any]]) -> None:
        """Rebuild the study from a run's records, in trial order; numbers lost in flight become failed trials."""
        by_number = {r["number"]: r for r in records}
        for number in range(max(by_number, default=-1) + 1):
            record = by_number.get(number)
            self.study.add_trial(self._frozen(record) if record else create_trial(state=TrialState.FAIL))
        self.flush()

    def ask(self) -> tuple[int, Genome]:
        """A new trial number and its genome."""
        trial = self.study.ask()
        self._open[trial.number] = trial
        return trial.number, self.space.suggest(trial)

    def tell(self, number: int, values: list[float] | None, violations: dict[str, float]) -> None:
        """Report a finished trial: ``values`` None means failed (the sampler ignores it)."""
        trial = self._open.pop(number)
        for name, violation in violations.items():
            trial.set_constraint(name, violation)
        if values is None:
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            self.study.tell(trial, values)
        if time.monotonic() - self._last_flush > MIRROR_EVERY_S:
            self.flush()

    def flush(self) -> None:
        """Copy finished trials into the persistent storage, in order, up to the first one still running."""
        trials = self.study.get_trials(deepcopy=False)
        done: list[FrozenTrial] = []
        for trial in trials[self._mirrored:]:
            if trial.state == TrialState.RUNNING:
                break
            done.append(trial)
        if done:
            self.mirror.add_trials(done)
            self._mirrored += len(done)
        self._last_flush = time.monotonic()

    def _frozen(self, record: dict[str, Any]) -> FrozenTrial:
        chooser = ReplayChooser(record["genome"])
        walk(self.space.genes, chooser)
        values = record["values"]
        return create_trial(
            state=TrialState.FAIL if values is None else TrialState.COMPLETE,
            values=values,
            params=record["genome"],
            distributions={name: CategoricalDistribution(options) for name, options in chooser.options.items()},
            constraints=record["violations"],
        )
