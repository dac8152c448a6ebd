"""Samplers: the registry the ``sampler`` setting picks from, and the bounded history window.

A sampler is made by a **factory**, the plugin contract::

    factory(seed: int, directions: tuple[str, ...], history: int) -> optuna.samplers.BaseSampler

- ``seed``: the run's seed; the same seed must give the same proposals.
- ``directions``: the objective's directions (``"maximize"`` / ``"minimize"``), one per value.
  A sampler that cannot handle them (e.g. a single-objective one given several) raises
  :class:`~gensynth.errors.UserError` with a one-line message.
- ``history``: the run's ``history`` setting (0: unbounded). A factory whose sampler only reads
  trials may wrap it in :class:`HistoryWindow` to keep its cost per ask constant; others ignore it.

The sampler runs on the generator's in-memory study: define-by-run categorical parameters
(one ``suggest_categorical`` per gene, some genes only under some parents), constraint
violations through ``Trial.set_constraint`` (read them with the public ``FrozenTrial.constraints``;
> 0 is infeasible) and, for a rejected candidate, placeholder values at the worst end of each
direction. Register a factory with :func:`register_sampler`, or from an installed package::

    [project.entry-points."gensynth.samplers"]
    my_sampler = "my_package.sampler:make"

Built-ins: ``tpe`` (multivariate, grouped), ``random``, ``nsga2`` (population 20), here; and
``regularized_evolution``, shipped as a plugin (``samplers/regularized_evolution.py``).
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from ..errors import UserError
from ..registry import Registry

SamplerFactory = Callable[[int, tuple[str, ...], int], optuna.samplers.BaseSampler]

SAMPLERS: Registry[SamplerFactory] = Registry("sampler", entry_point_group="gensynth.samplers")
"""Every sampler factory by name; the search's ``sampler`` setting picks one."""


def register_sampler(name: str, factory: SamplerFactory, override: bool = False) -> SamplerFactory:
    """Add a sampler that ``--sampler NAME`` selects; a name already taken raises ``ValueError`` unless ``override``."""
    return SAMPLERS.register(name, factory, override)


def list_samplers(pattern: str = "*") -> list[str]:
    """Registered sampler names matching the shell-style ``pattern``, sorted (entry points included)."""
    return SAMPLERS.names(pattern)


def make_sampler(name: str, seed: int, directions: Sequence[str], history: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler ``name`` for a study with ``directions``; an unknown name is a one-line :class:`UserError`."""
    sampler = SAMPLERS.get(name)(seed, tuple(directions), history)
    if not isinstance(sampler, optuna.samplers.BaseSampler):
        raise UserError(f"sampler {name!r} ({SAMPLERS.origin(name)}) returned {type(sampler).__name__}, not an optuna BaseSampler")
    return sampler


class HistoryWindow(optuna.samplers.BaseSampler):
    """Wraps a sampler so that it models only recent finished trials, at a constant cost per ask.

    Optuna's TPE re-reads every earlier trial on each ask, so its cost grows with the run.
    While the study holds fewer than ``2 * history`` finished (complete or pruned) trials, the
    wrapped sampler sees the study itself, exactly as if unwrapped. From then on it sees a
    private in-memory study, the *window*: it opens with the last ``history`` finished trials;
    each ask adds those that finished since (in any order, told or added); when it holds
    ``2 * history`` it rolls to a fresh window with its last ``history``. The sampler thus
    models between ``history`` and ``2 * history - 1`` most recent finished trials; a roll
    copies ``history`` trials with ``add_trials``, once every ``history`` finished trials.

    Trials still running are in the window too, as stand-ins (Optuna 5's TPE is a constant
    liar: it counts running trials as poor and writes its relative parameters on the trial it
    samples), and the sampler gets the stand-in of the trial being sampled. A stand-in becomes
    a failed trial, which samplers ignore, when its trial finishes and comes in as itself.

    Only public Optuna API is used; the caller's study, trials and numbers are untouched. For
    in-memory studies (TPE's grouped search space refuses a second study id; in-memory studies
    all have id 0), and for samplers that keep no per-trial state in the study beyond the
    trial being sampled (TPE, random; not NSGA-II, which reads generations back).
    """

    MODELLED = (TrialState.COMPLETE, TrialState.PRUNED)

    def __init__(self, base: optuna.samplers.BaseSampler, history: int):
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        self.base, self.history = base, history
        self._window: optuna.Study | None = None
        self._recent: list[FrozenTrial] = []  # the finished trials the window holds (or will: fewer than 2 * history)
        self._stand_ins: dict[int, FrozenTrial] = {}  # trial number -> its running stand-in in the window
        self._settled = 0  # every trial numbered below this has finished and been taken in
        self._ahead: set[int] = set()  # trials numbered from ``_settled`` on that finished and were taken in

    def view(self, study: optuna.Study) -> optuna.Study:
        """The study the wrapped sampler sees for ``study``: itself, or the window once it is open."""
        return study if self._window is None else self._window

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._sync(study)
        self.base.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.base.infer_relative_search_space(self.view(study), self._stand_in(trial))

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self.base.sample_relative(self.view(study), self._stand_in(trial), search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, name: str, distribution: BaseDistribution) -> Any:
        return self.base.sample_independent(self.view(study), self._stand_in(trial), name, distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()

    def _stand_in(self, trial: FrozenTrial) -> FrozenTrial:
        return trial if self._window is None else self._stand_ins.get(trial.number, trial)

    def _sync(self, study: optuna.Study) -> None:
        """Take in the trials that finished since the last ask, roll the window when full, stand in for running trials."""
        trials = study.get_trials(deepcopy=False)  # in number order: trials[i].number == i
        fresh = []
        for t in trials[self._settled:]:
            if t.number in self._ahead or not t.state.is_finished():
                continue
            self._ahead.add(t.number)
            if t.state in self.MODELLED:
                fresh.append(t)
            if (stand_in := self._stand_ins.pop(t.number, None)) is not None:
                self.view(study).tell(stand_in.number, state=TrialState.FAIL)
        while self._settled in self._ahead:
            self._ahead.remove(self._settled)
            self._settled += 1
        self._recent += fresh
        running = [t for t in trials[self._settled:] if t.state == TrialState.RUNNING]
        if len(self._recent) >= 2 * self.history:
            self._recent = self._recent[-self.history:]
            self._window = optuna.create_study(directions=study.directions, sampler=optuna.samplers.RandomSampler(0))
            self._window.add_trials(self._recent)
            self._add_stand_ins([self._stand_ins.get(t.number, t) for t in running], running)
        elif self._window is not None:
            self._window.add_trials(fresh)
            missing = [t for t in running if t.number not in self._stand_ins]
            self._add_stand_ins(missing, missing)

    def _add_stand_ins(self, templates: list[FrozenTrial], running: list[FrozenTrial]) -> None:
        """Add ``templates`` (running trials, or their stand-ins in the last window) as the stand-ins of ``running``."""
        assert self._window is not None
        self._window.add_trials(templates)
        window = self._window.get_trials(deepcopy=False)
        self._stand_ins.update((t.number, stand_in) for t, stand_in in zip(running, window[len(window) - len(templates):]))


def _tpe(seed: int, directions: tuple[str, ...], history: int) -> optuna.samplers.BaseSampler:
    """Optuna's TPE, multivariate and grouped (one model per conditional sub-space); ``history`` > 0 bounds what it models."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        tpe = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    return HistoryWindow(tpe, history) if history else tpe


def _random(seed: int, directions: tuple[str, ...], history: int) -> optuna.samplers.BaseSampler:
    """Uniform over each gene's choices."""
    return optuna.samplers.RandomSampler(seed=seed)


def _nsga2(seed: int, directions: tuple[str, ...], history: int) -> optuna.samplers.BaseSampler:
    """Optuna's NSGA-II, population 20 (for Pareto objectives; it keeps every trial: NSGA-II writes generations to the study).

    ``lookahead = 1``: the search proposes at most one candidate before it hears the result in
    flight. NSGA-II fixes each generation's parents when the generation starts, from finished
    trials only; with 20 proposals ahead a whole generation was bred while the one feasible
    candidate was still being measured, and on ``dcac`` 50 evaluations took over 5,000
    proposals (with 1: about 160).
    """
    sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    sampler.lookahead = 1  # type: ignore[attr-defined]
    return sampler


SAMPLERS.register("tpe", _tpe, origin="built-in")
SAMPLERS.register("random", _random, origin="built-in")
SAMPLERS.register("nsga2", _nsga2, origin="built-in")
