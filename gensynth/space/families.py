"""The registry of space families: code that turns a genome into a graph."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..ir.graph import ArchGraph
from ..registry import Registry
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


FAMILIES: Registry[Family] = Registry("space family")
"""Every space family by name; a space file's ``family`` key picks one."""


def register_family(name: str, genes: set[str], override: bool = False) -> Callable[[Builder], Builder]:
    """Decorator: register ``build(genome, space) -> ArchGraph`` as family ``name`` reading ``genes``.

    A name already taken raises ``ValueError`` unless ``override``.
    """

    def wrap(build: Builder) -> Builder:
        doc = next(iter((build.__doc__ or "").strip().splitlines()), "")
        FAMILIES.register(name, Family(name, build, frozenset(genes), doc), override, origin=f"python {build.__module__}.{build.__qualname__}")
        return build

    return wrap


def list_families(pattern: str = "*") -> list[str]:
    """Registered family names matching the shell-style ``pattern``, sorted."""
    return FAMILIES.names(pattern)
