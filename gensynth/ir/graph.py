"""The architecture graph: a networkx DiGraph of typed operations.

Nodes carry ``op`` and the op's attributes (defaults filled in); edges carry
``port``, the input position at the destination (concat order matters).
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterator

import networkx as nx

from .ops import OPS, ChannelMismatch, GraphContext, OpError, Shape, resolve_attrs


class GraphError(ValueError):
    """The graph is not a valid architecture; the message names the node."""


@dataclass(frozen=True)
class NodeInfo:
    """A node's operation, attributes and inferred output shape."""

    name: str
    op: str
    attrs: dict[str, Any]
    inputs: tuple[str, ...]
    shape: Shape


class ArchGraph:
    """An architecture: typed operations wired in a DAG, one input, one output."""

    def __init__(self, name: str = "arch", input_channels: int = 3, resolution: int = 224, num_classes: int = 1000, metadata: dict[str, Any] | None = None):
        self.g = nx.DiGraph(name=name, input_channels=input_channels, resolution=resolution, num_classes=num_classes, metadata=dict(metadata or {}))

    # -- building ---------------------------------------------------------------
    def add(self, name: str, op: str, inputs: list[str] | tuple[str, ...] = (), **attrs: Any) -> str:
        """Add node ``name`` computing ``op`` on ``inputs`` (in port order); return its name."""
        if name in self.g:
            raise GraphError(f"node '{name}': defined twice")
        try:
            resolved = resolve_attrs(op, attrs)
        except OpError as err:
            raise GraphError(f"node '{name}': {err}") from None
        self.g.add_node(name, op=op, **resolved)
        for port, src in enumerate(inputs):
            if src not in self.g:
                raise GraphError(f"node '{name}': input '{src}' is not a node")
            if self.g.has_edge(src, name):
                raise GraphError(f"node '{name}': input '{src}' given twice")
            self.g.add_edge(src, name, port=port)
        return name

    def connect(self, src: str, dst: str, port: int) -> None:
        """Add an edge (used by loaders, where nodes may come in any order)."""
        self.g.add_edge(src, dst, port=port)

    # -- graph-level facts ----------------------------------------------------------
    @property
    def name(self) -> str:
        return self.g.graph["name"]

    @property
    def input_channels(self) -> int:
        return self.g.graph["input_channels"]

    @property
    def resolution(self) -> int:
        return self.g.graph["resolution"]

    @property
    def num_classes(self) -> int:
        return self.g.graph["num_classes"]

    @property
    def metadata(self) -> dict[str, Any]:
        """Free-form facts about the architecture (a reference's published figures); not part of its structural hash."""
        return self.g.graph["metadata"]

    def input_shape(self, resolution: int | None = None) -> Shape:
        res = self.resolution if resolution is None else resolution
        return (self.input_channels, res, res)

    # -- queries ------------------------------------------------------------------
    def __len__(self) -> int:
        return self.g.number_of_nodes()

    def __contains__(self, name: str) -> bool:
        return name in self.g

    def op(self, name: str) -> str:
        return self.g.nodes[name]["op"]

    def attrs(self, name: str) -> dict[str, Any]:
        return {k: v for k, v in self.g.nodes[name].items() if k != "op"}

    def inputs(self, name: str) -> tuple[str, ...]:
        preds = sorted(self.g.in_edges(name, data="port"), key=lambda e: e[2])
        return tuple(src for src, _, _ in preds)

    def order(self) -> list[str]:
        """Nodes in a deterministic topological order."""
        return list(nx.lexicographical_topological_sort(self.g))

    def input_node(self) -> str:
        return self._single("input")

    def output_node(self) -> str:
        sinks = [n for n in self.g if self.g.out_degree(n) == 0]
        if len(sinks) != 1:
            raise GraphError(f"graph '{self.name}': expected exactly one output node, found {len(sinks)}: {sorted(sinks)}")
        return sinks[0]

    def _single(self, op: str) -> str:
        found = [n for n, data in self.g.nodes(data=True) if data["op"] == op]
        if len(found) != 1:
            raise GraphError(f"graph '{self.name}': expected exactly one '{op}' node, found {len(found)}")
        return found[0]

    # -- validation and shapes ----------------------------------------------------------
    def infer_shapes(self, resolution: int | None = None) -> dict[str, Shape]:
        """Validate the graph and return every node's output shape at ``resolution``."""
        self._check_structure()
        ctx = GraphContext(self.input_shape(resolution), self.num_classes)
        shapes: dict[str, Shape] = {}
        for node in nx.topological_sort(self.g):
            data = self.g.nodes[node]
            spec = OPS[data["op"]]
            srcs = self.inputs(node)
            lo, hi = spec.arity
            if len(srcs) < lo or (hi is not None and len(srcs) > hi):
                want = f"{lo}" if lo == hi else f"at least {lo}" if hi is None else f"{lo} to {hi}"
                raise GraphError(f"node '{node}': op '{data['op']}' takes {want} input(s), got {len(srcs)}")
            attrs = self.attrs(node)
            try:
                shapes[node] = spec.infer(attrs, [shapes[s] for s in srcs], ctx)
            except ChannelMismatch as err:
                raise GraphError(f"node '{node}': in_channels {err.declared}, but '{srcs[0]}' produces {err.actual}") from None
            except OpError as err:
                raise GraphError(f"node '{node}': {err}") from None
        return shapes

    def validate(self, resolution: int | None = None) -> None:
        """Raise :class:`GraphError` naming the first node that is wrong."""
        self.infer_shapes(resolution)
        out = self.output_node()
        if self.op(out) != "classifier":
            raise GraphError(f"node '{out}': the output must be a 'classifier', got '{self.op(out)}'")

    def _check_structure(self) -> None:
        if not nx.is_directed_acyclic_graph(self.g):
            cycle = nx.find_cycle(self.g)
            path = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
            raise GraphError(f"graph '{self.name}': cycle {path}")
        source = self.input_node()
        for node in self.g:
            if node != source and self.g.in_degree(node) == 0:
                raise GraphError(f"node '{node}': has no inputs (only '{source}' may)")
            ports = sorted(p for _, _, p in self.g.in_edges(node, data="port"))
            if ports != list(range(len(ports))):
                raise GraphError(f"node '{node}': input ports {ports}, expected 0..{len(ports) - 1}")

    # -- identity -------------------------------------------------------------------
    def structural_hash(self) -> str:
        """A hash of the architecture alone: node names and insertion order do not matter.

        Each node gets a Merkle signature (its op, attributes and its inputs'
        signatures in port order); the hash covers the multisets of node
        signatures and of edges between signatures, so shared and duplicated
        sub-computations hash differently.
        """
        sig: dict[str, str] = {}
        for node in nx.topological_sort(self.g):
            data = self.g.nodes[node]
            payload = json.dumps([sorted((k, v) for k, v in data.items() if v is not None), [sig[s] for s in self.inputs(node)]])
            sig[node] = hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()
        edges = sorted((sig[u], sig[v], p) for u, v, p in self.g.edges(data="port"))
        top = json.dumps([self.input_channels, self.num_classes, sorted(sig.values()), edges])
        return hashlib.sha256(top.encode()).hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArchGraph):
            return NotImplemented
        return (
            self.g.graph == other.g.graph
            and dict(self.g.nodes(data=True)) == dict(other.g.nodes(data=True))
            and set(self.g.edges(data="port")) == set(other.g.edges(data="port"))
        )

    def nodes(self) -> Iterator[NodeInfo]:
        """Every node in topological order, with its inferred shape at the default resolution."""
        shapes = self.infer_shapes()
        for node in self.order():
            yield NodeInfo(node, self.op(node), self.attrs(node), self.inputs(node), shapes[node])

    def retarget(self, num_classes: int | None = None, resolution: int | None = None, input_channels: int | None = None) -> ArchGraph:
        """A copy for another task: same architecture, another head size, resolution or input channels."""
        new = self.copy()
        for key, value in (("num_classes", num_classes), ("resolution", resolution), ("input_channels", input_channels)):
            if value is not None:
                new.g.graph[key] = value
        return new

    def copy(self) -> ArchGraph:
        new = ArchGraph.__new__(ArchGraph)
        new.g = self.g.copy()
        new.g.graph["metadata"] = copy.deepcopy(self.metadata)  # nx copies graph attributes shallowly
        return new

    def __repr__(self) -> str:
        return f"ArchGraph({self.name!r}, {len(self)} nodes)"
