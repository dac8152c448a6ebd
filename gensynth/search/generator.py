"""The generator: proposes genomes through Optuna's ask/tell and learns from violations.

Sampling runs on an in-memory study (Optuna's RDB storage writes every
suggested parameter in its own transaction: ~1 s per 80-gene proposal on
SQLite). Finished trials are mirrored, in trial-number order, into the run's
persistent storage (SQLite by default, any Optuna URL) so optuna-dashboard
can open it. Writing costs ~65 ms per trial on SQLite (Optuna writes each
parameter in its own statements); the search loop writes while the executor
measures in the background, and stops when a result is ready.
``candidates.jsonl`` is the source of truth that a resumed run replays into a
fresh in-memory study.

TPE re-reads every earlier trial on each ask, so its cost grows with the run
(150 ms per ask at 1,150 trials). :class:`RecentHistory` shows the sampler only
the most recent ``history`` finished trials.

Constraint violations go in with Optuna's per-trial constraints (<= 0
feasible), which TPE and NSGA-II read, so infeasible regions are learned
rather than only refused. Unmeasured (rejected) candidates carry placeholder
values at the worst end of each direction; constrained samplers rank
infeasible trials by their violations, not by those values.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, Trial, TrialState, create_trial

from ..space.genes import Genome, ReplayChooser, walk
from ..space.space import SearchSpace
from .objective import Objective

optuna.logging.set_verbosity(optuna.logging.WARNING)


class _RecentTrials:
    """A study as a sampler sees it through :class:`RecentHistory`: its last ``window`` trials of any query."""

    def __init__(self, study: optuna.Study, window: int):
        self._study, self._window = study, window

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
        return self._study._get_trials(*args, **kwargs)[-self._window:]

    def get_trials(self, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
        return self._study.get_trials(*args, **kwargs)[-self._window:]


class RecentHistory(optuna.samplers.BaseSampler):
    """Wraps a sampler so that it models only the most recent ``window`` trials (constant cost per ask)."""

    def __init__(self, base: optuna.samplers.BaseSampler, window: int):
        self.base, self.window = base, window

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        return self.base.infer_relative_search_space(_RecentTrials(study, self.window), trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        return self.base.sample_relative(_RecentTrials(study, self.window), trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, name: str, distribution: Any) -> Any:
        return self.base.sample_independent(_RecentTrials(study, self.window), trial, name, distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()


def make_sampler(name: str, seed: int, history: int = 0) -> optuna.samplers.BaseSampler:
    """``tpe`` (multivariate, grouped: one model per conditional sub-space), ``random`` or ``nsga2``, seeded.

    ``history`` > 0 limits TPE to the most recent trials (see :class:`RecentHistory`).
    """
    if name == "tpe":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            tpe = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
        return RecentHistory(tpe, history) if history else tpe
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    return optuna.samplers.RandomSampler(seed=seed)


class Generator:
    """Asks Optuna for genomes of ``space`` and tells it what the inquisitor and constraints found."""

    def __init__(self, space: SearchSpace, objective: Objective, sampler: str, seed: int, storage: str, study_name: str, history: int = 0):
        self.space, self.objective = space, objective
        directions = list(objective.directions)
        self.study = optuna.create_study(directions=directions, sampler=make_sampler(sampler, seed, history))
        self.mirror = optuna.create_study(storage=storage, study_name=study_name, load_if_exists=True, directions=directions)
        self._open: dict[int, Trial] = {}
        self._mirrored = len(self.mirror.get_trials(deepcopy=False))

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

    def flush(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Copy finished trials into the persistent storage, in order, up to the first one still running.

        ``stop`` is asked before each trial; the rest waits for the next call when it says True.
        """
        for trial in self.study.get_trials(deepcopy=False)[self._mirrored:]:
            if trial.state == TrialState.RUNNING or stop():
                break
            self.mirror.add_trial(trial)
            self._mirrored += 1

    def close(self) -> None:
        """Mirror everything that finished."""
        self.flush()

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
