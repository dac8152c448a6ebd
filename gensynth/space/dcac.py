"""The ``dcac`` family: AttendNeXt-style networks of double-condensing attention condensers.

Macro-architecture (our reading of AttendNeXt, see docs/search-space.md)::

    input → stem → [col0 | col1 | ... ] → merge → stage0 → stage1 → ... → head → classifier

* stem: a 3×3 stride-2 convolution, optionally preceded by a blur (anti-aliased),
  optionally followed by a stride-2 blur-pool (``stem.reduce: 4``);
* columns (1–4): parallel series of (conv | depthwise-separable conv) + DC-AC
  units from the stem to the merge; optionally each column ends with a reduction;
* merge: concat or add, then a point-wise fuse to ``merge.width``;
* stages: a downsampling operator, a point-wise widening by ``growth``, DC-AC
  blocks, and an optional shortcut around the first block;
* head: point-wise conv, global pooling, classifier.

Some options break the best-practice rules on purpose (``strided_conv``,
``maxpool``, ``strided_pwconv`` downsampling; ``strided_pw`` shortcuts; a single
column) so that the constraint engine has something to reject.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..ir.graph import ArchGraph
from .families import register_family
from .genes import Genome

if TYPE_CHECKING:
    from .space import SearchSpace

MICRO = ("f_condense", "f_pool", "f_ratio", "f_kernel", "f_groups", "a_condense", "a_pool", "a_ratio", "a_kernel", "a_groups")
GENES = {
    "activation", "stem.width", "stem.downsample", "stem.reduce",
    "col.count", "col.depth", "col.width", "col.unit", *(f"col.{m}" for m in MICRO),
    "columns.reduce", "columns.downsample", "merge.op", "merge.width",
    "stage.count", "stage.depth", "stage.growth", "stage.downsample", "stage.shortcut", *(f"stage.{m}" for m in MICRO),
    "head.width",
}
DOWNSAMPLERS = ("blurpool", "avgpool", "max_blurpool", "maxpool", "strided_conv", "strided_pwconv")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor`` (never below it, never 10% below ``value``)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass
class _Cursor:
    """The tip of the graph being built and its channel count."""

    node: str
    channels: int


class _DcacBuilder:
    def __init__(self, graph: ArchGraph, genome: Genome):
        self.g, self.genome, self.act = graph, genome, genome["activation"]

    def conv(self, name: str, at: _Cursor, op: str, out: int | None = None, act: str | None = None, **attrs: Any) -> _Cursor:
        out = at.channels if out is None else out
        self.g.add(name, op, [at.node], out_channels=out, in_channels=at.channels, act=self.act if act is None else act, **attrs)
        return _Cursor(name, out)

    def dcac(self, name: str, at: _Cursor, prefix: str) -> _Cursor:
        micro = {m: self.genome[f"{prefix}.{m}"] for m in MICRO}
        self.g.add(name, "dcac", [at.node], in_channels=at.channels, out_channels=at.channels, act=self.act, **micro)
        return _Cursor(name, at.channels)

    def downsample(self, name: str, at: _Cursor, kind: str) -> _Cursor:
        """Halve the resolution with operator ``kind`` (channels unchanged)."""
        if kind == "blurpool":
            self.g.add(name, "blurpool", [at.node], stride=2)
        elif kind == "avgpool":
            self.g.add(name, "avgpool", [at.node], kernel=2, stride=2)
        elif kind == "max_blurpool":
            self.g.add(f"{name}.max", "maxpool", [at.node], kernel=3, stride=1, padding=1)
            self.g.add(name, "blurpool", [f"{name}.max"], stride=2)
        elif kind == "maxpool":
            self.g.add(name, "maxpool", [at.node], kernel=2, stride=2)
        elif kind == "strided_conv":
            return self.conv(name, at, "dwconv", kernel=3, stride=2)
        elif kind == "strided_pwconv":
            return self.conv(name, at, "pwconv", stride=2)
        else:
            raise ValueError(f"unknown downsampling operator {kind!r} (expected one of {DOWNSAMPLERS})")
        return _Cursor(name, at.channels)

    def unit(self, name: str, at: _Cursor, kind: str, width: int) -> _Cursor:
        if kind == "conv":
            return self.conv(name, at, "conv", width, kernel=3)
        if kind == "dwsep":
            at = self.conv(f"{name}.dw", at, "dwconv", kernel=3)
            return self.conv(name, at, "pwconv", width)
        raise ValueError(f"unknown column unit {kind!r} (expected 'conv' or 'dwsep')")

    def stem(self) -> _Cursor:
        at = _Cursor(self.g.add("input", "input"), self.g.input_channels)
        kind = self.genome["stem.downsample"]
        if kind == "blur_conv":
            self.g.add("stem.blur", "blurpool", [at.node], stride=1)
            at = _Cursor("stem.blur", at.channels)
        elif kind != "strided_conv":
            raise ValueError(f"unknown stem downsampling {kind!r} (expected 'blur_conv' or 'strided_conv')")
        at = self.conv("stem", at, "stem", self.genome["stem.width"], kernel=3, stride=2)
        reduce = self.genome["stem.reduce"]
        if reduce == 4:  # anti-aliased: the columns start at 1/4 resolution, as MobileNet-style stems reach it
            self.g.add("stem.down", "blurpool", [at.node], stride=2)
            return _Cursor("stem.down", at.channels)
        if reduce != 2:
            raise ValueError(f"unknown stem reduction {reduce!r} (expected 2 or 4)")
        return at

    def column(self, i: int, at: _Cursor) -> _Cursor:
        p = f"col{i}"
        for d in range(self.genome[f"{p}.depth"]):
            at = self.unit(f"{p}.unit{d}", at, self.genome[f"{p}.unit"], self.genome[f"{p}.width"])
            at = self.dcac(f"{p}.dcac{d}", at, p)
        if self.genome["columns.reduce"]:
            at = self.downsample(f"{p}.down", at, self.genome["columns.downsample"])
        return at

    def merge(self, columns: list[_Cursor]) -> _Cursor:
        width = self.genome["merge.width"]
        if len(columns) == 1:
            return self.conv("merge.fuse", columns[0], "pwconv", width)
        if self.genome["merge.op"] == "concat":
            self.g.add("merge", "concat", [c.node for c in columns])
            return self.conv("merge.fuse", _Cursor("merge", sum(c.channels for c in columns)), "pwconv", width)
        projected = [c if c.channels == width else self.conv(f"merge.proj{i}", c, "pwconv", width, act="none") for i, c in enumerate(columns)]
        self.g.add("merge", "add", [c.node for c in projected], act=self.act)
        return _Cursor("merge", width)

    def stage(self, j: int, at: _Cursor) -> _Cursor:
        p = f"stage{j}"
        entry = at
        width = make_divisible(at.channels * self.genome[f"{p}.growth"])
        at = self.downsample(f"{p}.down", at, self.genome[f"{p}.downsample"])
        at = self.conv(f"{p}.widen", at, "pwconv", width)
        at = self.dcac(f"{p}.dcac0", at, p)
        shortcut = self.genome[f"{p}.shortcut"]
        if shortcut != "none":
            if shortcut == "avgpool_pw":
                self.g.add(f"{p}.short.pool", "avgpool", [entry.node], kernel=2, stride=2)
                short = self.conv(f"{p}.short", _Cursor(f"{p}.short.pool", entry.channels), "pwconv", width, act="none")
            elif shortcut == "strided_pw":
                short = self.conv(f"{p}.short", entry, "pwconv", width, act="none", stride=2)
            else:
                raise ValueError(f"unknown shortcut {shortcut!r} (expected 'none', 'avgpool_pw' or 'strided_pw')")
            self.g.add(f"{p}.add", "add", [at.node, short.node])
            at = _Cursor(f"{p}.add", width)
        for d in range(1, self.genome[f"{p}.depth"]):
            at = self.dcac(f"{p}.dcac{d}", at, p)
        return at

    def head(self, at: _Cursor) -> None:
        at = self.conv("head.conv", at, "pwconv", self.genome["head.width"])
        self.g.add("head.pool", "global_pool", [at.node])
        self.g.add("classifier", "classifier", ["head.pool"], in_channels=at.channels, dropout=0.2)


@register_family("dcac", GENES)
def build_dcac(genome: Genome, space: SearchSpace) -> ArchGraph:
    """AttendNeXt-style columns of conv + DC-AC units, merged, then DC-AC stages."""
    dep = space.deployment
    graph = ArchGraph(f"{space.name}-candidate", dep.channels, dep.resolution, dep.num_classes)
    b = _DcacBuilder(graph, genome)
    stem = b.stem()
    at = b.merge([b.column(i, stem) for i in range(genome["col.count"])])
    for j in range(genome["stage.count"]):
        at = b.stage(j, at)
    b.head(at)
    return graph

