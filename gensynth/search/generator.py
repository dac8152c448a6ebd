"""The generator: proposes genomes through Optuna's ask/tell and learns from violations.

Sampling runs on an in-memory study (Optuna's RDB storage writes every
suggested parameter in its own transaction: ~1 s per 80-gene proposal on
SQLite). The run's persistent storage is written separately, from the records,
by :class:`~gensynth.search.mirror.StorageMirror`. ``candidates.jsonl`` is the
source of truth that a resumed run replays into a fresh in-memory study.

Constraint violations go in with Optuna's per-trial constraints (<= 0
feasible), which TPE and NSGA-II read, so infeasible regions are learned
rather than only refused. The in-memory study hears rejected candidates with
values at the worst end of each direction (constrained samplers rank
infeasible trials by their violations, not by those values); those values
stay in memory and never reach the run's storage.
"""
from __future__ import annotations

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, Trial, TrialState, create_trial

from ..space.genes import Genome, ReplayChooser, walk
from ..space.space import SearchSpace
from .record import CandidateRecord, Status

optuna.logging.set_verbosity(optuna.logging.WARNING)


class Generator:
    """Asks an Optuna sampler for genomes of ``space`` and tells it what the inquisitor and constraints found.

    ``placeholder`` are the values the sampler hears for a rejected candidate
    (see the module docstring); ``directions`` those of the objective.
    """

    def __init__(self, space: SearchSpace, directions: list[str], sampler: optuna.samplers.BaseSampler, placeholder: list[float]):
        self.space, self.placeholder = space, placeholder
        self.study = optuna.create_study(directions=directions, sampler=sampler)
        self._open: dict[int, Trial] = {}
        self._told: dict[int, list[float] | None] = {}

    @property
    def proposals(self) -> int:
        """Trials asked so far (replayed ones included)."""
        return len(self.study.get_trials(deepcopy=False))

    def replay(self, records: list[CandidateRecord]) -> None:
        """Rebuild the study from a run's records, in trial order; numbers lost in flight become failed trials."""
        by_number = {r.number: r for r in records}
        for number in range(max(by_number, default=-1) + 1):
            record = by_number.get(number)
            self.study.add_trial(self._frozen(record) if record else create_trial(state=TrialState.FAIL))

    def enqueue(self, genome: Genome) -> None:
        """Make ``genome`` the next proposal (a warm start), whatever the sampler."""
        self.study.enqueue_trial(genome, skip_if_exists=True)

    def ask(self) -> tuple[int, Genome]:
        """A new trial number and its genome."""
        trial = self.study.ask()
        self._open[trial.number] = trial
        return trial.number, self.space.suggest(trial)

    def tell(self, record: CandidateRecord) -> None:
        """Report a finished candidate (failed ones as FAIL trials, which samplers ignore)."""
        trial = self._open.pop(record.number)
        for name, violation in record.violations.items():
            trial.set_constraint(name, violation)
        values = self._values(record)
        if values is None:
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            self.study.tell(trial, values)

    def distributions(self, genome: Genome) -> dict[str, BaseDistribution]:
        """Optuna distributions of the genes ``genome`` chose (for storing it as a trial).

        A genome recorded before a gene was added (``added_genes``) has no value, and so no distribution, for it.
        """
        chooser = ReplayChooser(self.space.upgrade(genome))
        walk(self.space.genes, chooser)
        return {name: CategoricalDistribution(options) for name, options in chooser.options.items() if name in genome}

    def _values(self, record: CandidateRecord) -> list[float] | None:
        """What the sampler hears: values, the placeholder for a rejection, the original's for a duplicate."""
        if record.status is Status.EVALUATED:
            values = record.values
        elif record.status is Status.REJECTED:
            values = self.placeholder
        elif record.status is Status.DUPLICATE:
            values = self._told.get(record.duplicate_of) if record.duplicate_of is not None else None
        else:
            values = None
        self._told[record.number] = values
        return values

    def _frozen(self, record: CandidateRecord) -> FrozenTrial:
        values = self._values(record)
        return create_trial(
            state=TrialState.FAIL if values is None else TrialState.COMPLETE,
            values=values,
            params=record.genome,
            distributions=self.distributions(record.genome),
            constraints=record.violations,
        )
