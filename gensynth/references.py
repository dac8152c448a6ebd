"""The reference zoo: published mobile architectures as graph files, shipped in ``gensynth.search_spaces/references``.

A search is judged against these (the ``reference_beating`` constraint), so they live in the
same IR as candidates and are measured by the same probes. Each file's ``metadata`` keeps the
figures ours are checked against: the canonical implementation's parameter count, the published
MACs and the published ImageNet top-1 -- as published, never measured here.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import UserError
from .ir import ArchGraph, load
from .ir.serialize import read_data_file

DEFAULT_REFERENCES = ("mobilenetv3_large", "fbnet_c", "mobileone_s1", "mobilevit_xs")
"""The four references AttendNeXt was compared with (``gensynth compare``'s default)."""

GRAPH_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class ReferenceInfo:
    """A shipped reference and the figures from its file's metadata."""

    name: str
    path: Path
    published_top1: float
    canonical_params: int
    published_macs: int
    source: str


def _root() -> Path:
    return Path(str(resources.files("gensynth.search_spaces"))) / "references"


def _shipped() -> dict[str, Path]:
    return {path.stem: path for path in sorted(_root().glob("*.yaml"))}


def list_references() -> list[ReferenceInfo]:
    """Every shipped reference, sorted by name."""
    infos = []
    for name, path in _shipped().items():
        meta = read_data_file(path)["metadata"]
        infos.append(ReferenceInfo(name, path, meta["published_top1"], meta["canonical_params"], meta["published_macs"], meta["source"]))
    return infos


def reference_path(name: str | Path) -> Path:
    """The graph file of zoo reference ``name`` (``mobilenetv3_large``), or ``name`` itself when it is a graph file's path."""
    if Path(name).suffix in GRAPH_SUFFIXES:
        return Path(name)
    shipped = _shipped()
    if str(name) not in shipped:
        raise UserError(f"unknown reference {str(name)!r} (expected one of: {', '.join(shipped)}, or a path to a graph file)")
    return shipped[str(name)]


def load_reference(name: str | Path) -> ArchGraph:
    """The graph of zoo reference ``name``, or of the graph file at path ``name``."""
    return load(reference_path(name))
