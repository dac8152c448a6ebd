"""Reading and writing architecture graphs: YAML, JSON and GraphML.

The file format lists nodes in order, each with its ``op``, its ``inputs``
(in port order) and the attributes that differ from the op's defaults.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import networkx as nx
import yaml

from ..errors import UserError
from .graph import ArchGraph, GraphError
from .ops import OPS, REQUIRED

FORMAT = "gensynth-graph/1"


def to_dict(graph: ArchGraph) -> dict[str, Any]:
    """A plain-data description of ``graph`` (defaults left out)."""
    nodes = []
    for node in graph.order():
        spec = OPS[graph.op(node)]
        entry: dict[str, Any] = {"name": node, "op": graph.op(node)}
        if graph.inputs(node):
            entry["inputs"] = list(graph.inputs(node))
        for key, value in graph.attrs(node).items():
            default = spec.attrs[key].default
            if default is REQUIRED or value != default:
                entry[key] = value
        nodes.append(entry)
    return {
        "format": FORMAT,
        "name": graph.name,
        "input": {"channels": graph.input_channels, "resolution": graph.resolution},
        "num_classes": graph.num_classes,
        "nodes": nodes,
    }


def from_dict(data: Any, validate: bool = True) -> ArchGraph:
    """Build a graph from :func:`to_dict`'s format; raise :class:`GraphError` naming the key or node."""
    if not isinstance(data, dict):
        raise GraphError(f"expected a mapping with keys 'name', 'input', 'num_classes', 'nodes', got {type(data).__name__}")
    unknown = sorted(set(data) - {"format", "name", "input", "num_classes", "nodes"})
    if unknown:
        raise GraphError(f"unknown key '{unknown[0]}' (expected: format, name, input, num_classes, nodes)")
    nodes = _require(data, "nodes", list, "top level")
    inp = data.get("input", {})
    if not isinstance(inp, dict) or set(inp) - {"channels", "resolution"}:
        raise GraphError("key 'input' must be a mapping with 'channels' and 'resolution'")
    graph = ArchGraph(
        name=str(data.get("name", "arch")),
        input_channels=_positive(inp.get("channels", 3), "input.channels"),
        resolution=_positive(inp.get("resolution", 224), "input.resolution"),
        num_classes=_positive(data.get("num_classes", 1000), "num_classes"),
    )
    wiring: list[tuple[str, list[Any]]] = []
    for i, entry in enumerate(nodes):
        where = f"nodes[{i}]"
        if not isinstance(entry, dict):
            raise GraphError(f"{where}: expected a mapping with 'name' and 'op', got {type(entry).__name__}")
        name = _require(entry, "name", str, where)
        op = _require(entry, "op", str, f"node '{name}'")
        inputs = entry.get("inputs", [])
        if not isinstance(inputs, list) or not all(isinstance(s, str) for s in inputs):
            raise GraphError(f"node '{name}': 'inputs' must be a list of node names")
        attrs = {k: v for k, v in entry.items() if k not in ("name", "op", "inputs")}
        graph.add(name, op, **attrs)
        wiring.append((name, inputs))
    for name, inputs in wiring:
        for port, src in enumerate(inputs):
            if src not in graph:
                raise GraphError(f"node '{name}': input '{src}' is not a node (dangling edge)")
            graph.connect(src, name, port)
    if validate:
        graph.validate()
    return graph


def _require(entry: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in entry:
        raise GraphError(f"{where}: missing key '{key}'")
    if not isinstance(entry[key], kind):
        raise GraphError(f"{where}: key '{key}' must be {kind.__name__}, got {type(entry[key]).__name__} {entry[key]!r}")
    return entry[key]


def _positive(value: Any, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise GraphError(f"key '{key}' must be a positive integer, got {value!r}")
    return value


def save(graph: ArchGraph, path: str | Path) -> Path:
    """Write ``graph`` as YAML (``.yaml``/``.yml``) or JSON (``.json``)."""
    path = Path(path)
    data = to_dict(graph)
    if path.suffix == ".json":
        path.write_text(json.dumps(data, indent=1) + "\n")
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120))
    return path


def load(path: str | Path, validate: bool = True) -> ArchGraph:
    """Read a graph file; any mistake in it raises :class:`UserError` naming the file."""
    path = Path(path)
    data = read_data_file(path)
    try:
        return from_dict(data, validate=validate)
    except GraphError as err:
        raise UserError(f"{path}: {err}") from None


def read_data_file(path: Path) -> Any:
    """Parse a YAML or JSON file (safe loader); syntax errors become one-line :class:`UserError`."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (IsADirectoryError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read as text ({err.__class__.__name__})") from None
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{err.lineno}:{err.colno}: JSON syntax error: {err.msg}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{where}: YAML syntax error: {problem}") from None


def write_graphml(graph: ArchGraph, path: str | Path) -> Path:
    """Export to GraphML (attributes that are unset are left out)."""
    g = nx.DiGraph(**graph.g.graph)
    for node, data in graph.g.nodes(data=True):
        g.add_node(node, **{k: v for k, v in data.items() if v is not None})
    g.add_edges_from(graph.g.edges(data=True))
    nx.write_graphml(g, path)
    return Path(path)
