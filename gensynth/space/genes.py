"""Genes: the choices of a search space, walked define-by-run.

A space is a tuple of genes. A :class:`Choice` picks one option; a
:class:`Repeat` picks a count ``n`` and then repeats its body ``n`` times
under the names ``{prefix}{i}.{gene}``. The same walk serves random sampling,
Optuna trials (whose ``suggest_categorical`` it calls) and replaying a genome.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Protocol, Union

Genome = dict[str, Any]


@dataclass(frozen=True)
class Choice:
    """One categorical decision."""

    name: str
    options: tuple[Any, ...]


@dataclass(frozen=True)
class Repeat:
    """A group of genes repeated a chosen number of times (``{prefix}.count``)."""

    prefix: str
    counts: tuple[int, ...]
    body: tuple[Choice, ...]

    @property
    def count_name(self) -> str:
        return f"{self.prefix}.count"


Gene = Union[Choice, Repeat]


class Chooser(Protocol):
    """Anything with Optuna's ``suggest_categorical``: a trial, a RNG-backed sampler, a replay."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


class RandomChooser:
    """Uniform choices from a seeded :class:`random.Random`."""

    def __init__(self, seed: int | random.Random):
        self.rng = seed if isinstance(seed, random.Random) else random.Random(seed)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return choices[self.rng.randrange(len(choices))]


class ReplayChooser:
    """Replays a stored genome; a missing or impossible value raises ``KeyError``/``ValueError``.

    ``options`` collects each decision's options as it replays (Optuna needs them as distributions).
    """

    def __init__(self, genome: Genome):
        self.genome = genome
        self.options: dict[str, tuple[Any, ...]] = {}

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.options[name] = tuple(choices)
        if name not in self.genome:
            raise KeyError(f"gene '{name}' is missing")
        value = self.genome[name]
        if value not in choices:
            raise ValueError(f"gene '{name}' = {value!r} is not one of {list(choices)}")
        return value


def walk(genes: tuple[Gene, ...], chooser: Chooser) -> Genome:
    """Make every decision of ``genes`` with ``chooser``; return the genome."""
    genome: Genome = {}
    for gene in genes:
        if isinstance(gene, Choice):
            genome[gene.name] = chooser.suggest_categorical(gene.name, gene.options)
            continue
        n = chooser.suggest_categorical(gene.count_name, gene.counts)
        genome[gene.count_name] = n
        for i in range(n):
            for member in gene.body:
                name = f"{gene.prefix}{i}.{member.name}"
                genome[name] = chooser.suggest_categorical(name, member.options)
    return genome


def space_size(genes: tuple[Gene, ...]) -> int:
    """The number of distinct genomes."""
    size = 1
    for gene in genes:
        if isinstance(gene, Choice):
            size *= len(gene.options)
        else:
            body = math.prod(len(m.options) for m in gene.body)
            size *= sum(body**n for n in gene.counts)
    return size


def gene_names(genes: tuple[Gene, ...]) -> set[str]:
    """Names as a family reads them: ``stem.width``, and ``col.depth`` for repeated ``col{i}.depth``."""
    names: set[str] = set()
    for gene in genes:
        if isinstance(gene, Choice):
            names.add(gene.name)
        else:
            names.add(gene.count_name)
            names.update(f"{gene.prefix}.{m.name}" for m in gene.body)
    return names
