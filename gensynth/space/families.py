"""The registry of space families: code that turns a genome into a graph."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..ir.graph import ArchGraph
from .genes import Genome

if TYPE_CHECKING:
    from .space import SearchSpace

Builder = Callable[[Genome, "SearchSpace"], ArchGraph]


@dataclass(frozen=True)
class Family:
    """A genome → graph builder and the gene names it reads."""

    name: str
    build: Builder
    genes: frozenset[str]
    doc: str


FAMILIES: dict[str, Family] = {}


def register_family(name: str, genes: set[str]) -> Callable[[Builder], Builder]:
    """Decorator: register ``build(genome, space) -> ArchGraph`` as family ``name`` reading ``genes``."""

    def wrap(build: Builder) -> Builder:
        FAMILIES[name] = Family(name, build, frozenset(genes), (build.__doc__ or "").strip().splitlines()[0])
        return build

    return wrap
