"""Reading and writing architecture graphs: YAML, JSON and GraphML.

The file format lists nodes in order, each with its ``op``, its ``inputs``
(in port order) and the attributes that differ from the op's defaults. An
optional ``metadata`` mapping carries free-form facts (a reference
architecture's published figures): plain data, kept through a round trip,
outside the structural hash.
"""
from __future__ import annotations

import copy
import json
import math
import reprlib
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
    data = {
        "format": FORMAT,
        "name": graph.name,
        "input": {"channels": graph.input_channels, "resolution": graph.resolution},
        "num_classes": graph.num_classes,
    }
    if graph.metadata:
        data["metadata"] = copy.deepcopy(graph.metadata)
    return {**data, "nodes": nodes}


def from_dict(data: Any, validate: bool = True) -> ArchGraph:
    """Build a graph from :func:`to_dict`'s format; raise :class:`GraphError` naming the key or node."""
    if not isinstance(data, dict):
        got = "an empty file" if data is None else type(data).__name__
        raise GraphError(f"expected a mapping with keys 'name', 'input', 'num_classes', 'nodes', got {got}")
    unknown = sorted(set(data) - {"format", "name", "input", "num_classes", "metadata", "nodes"})
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
        metadata=_metadata(data.get("metadata", {})),
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
        twice = next((s for i, s in enumerate(inputs) if s in inputs[:i]), None)
        if twice is not None:
            raise GraphError(f"node '{name}': input '{twice}' given twice")
        attrs = {k: v for k, v in entry.items() if k not in ("name", "op", "inputs")}
        for key, value in attrs.items():
            if not isinstance(key, str):
                raise GraphError(f"node '{name}': attribute names must be strings, got {key!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise GraphError(f"node '{name}': attribute '{key}' must be a finite number, got {value}")
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


def _metadata(value: Any) -> dict[str, Any]:
    """The ``metadata`` mapping, checked to be plain data that YAML and JSON both write back."""
    if not isinstance(value, dict):
        raise GraphError(f"key 'metadata' must be a mapping, got {type(value).__name__}")
    todo: list[tuple[str, Any]] = [("metadata", value)]
    while todo:
        where, item = todo.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise GraphError(f"key '{where}': keys must be strings, got {key!r}")
                todo.append((f"{where}.{key}", child))
        elif isinstance(item, list):
            todo.extend((f"{where}[{i}]", child) for i, child in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            raise GraphError(f"key '{where}' must be a finite number, got {item}")
        elif not isinstance(item, (str, int, float, bool)) and item is not None:
            raise GraphError(f"key '{where}' must be a string, number, boolean, list or mapping, got {type(item).__name__}")
    return value


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


MAX_DATA_BYTES = 2**20
"""The largest YAML or JSON file read (a 10,000-node graph is about 1 MB; parsing 1 MB takes seconds)."""
MAX_DEPTH = 32
"""The deepest nesting of mappings and lists (the formats need 6 levels)."""
MAX_NODES = 200_000
"""The most values (scalars, lists, mappings) one YAML file may hold: a 1 MB graph file has about 150,000."""
MAX_ALIASES = 100
"""The most YAML aliases (``*name``) one file may use."""
MAX_ALIAS_NODES = 10_000
"""The most nodes all aliases of one file may stand for, expanded (stops "billion laughs" documents)."""

try:  # libyaml's parser, about 3x faster; composing and constructing stay SafeLoader's Python code
    from yaml.cyaml import CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _Base: type = yaml.SafeLoader
else:

    class _Base(yaml.composer.Composer, CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):  # type: ignore[misc]
        """``yaml.SafeLoader`` with libyaml's parser."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)


class Refused(yaml.MarkedYAMLError):
    """Well-formed YAML that gensynth refuses: a duplicate key, deep nesting, an alias bomb, an unreadable value."""


class StrictLoader(_Base):  # type: ignore[misc, valid-type]
    """``yaml.SafeLoader`` that refuses duplicate keys, deep nesting, too many values, recursive aliases and alias bombs."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}  # id(node) -> its node count with aliases expanded
        self._open: list[int] = [0]  # node counts of the children composed so far, one per node being composed
        self._nodes = self._aliases = self._alias_nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:  # an undefined alias is the composer's own error
                self._count_alias(event, self._sizes.get(id(target)))
            return super().compose_node(parent, index)
        if len(self._open) > MAX_DEPTH:
            raise Refused(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise Refused(None, None, f"more than {MAX_NODES:,} values", event.start_mark)
        self._open.append(0)
        node = super().compose_node(parent, index)
        size = 1 + self._open.pop()
        self._sizes[id(node)] = size
        self._open[-1] += size
        return node

    def _count_alias(self, event: yaml.AliasEvent, size: int | None) -> None:
        if size is None:
            raise Refused(None, None, f"alias *{event.anchor} is used inside its own anchor (a recursive structure)", event.start_mark)
        self._aliases += 1
        self._alias_nodes += size
        if self._aliases > MAX_ALIASES:
            raise Refused(None, None, f"more than {MAX_ALIASES} aliases", event.start_mark)
        if self._alias_nodes > MAX_ALIAS_NODES:
            raise Refused(None, None, f"aliases expand to more than {MAX_ALIAS_NODES} nodes (an alias bomb?)", event.start_mark)
        self._open[-1] += size

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # merged keys may be overridden: that is what a merge is for
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:
                continue  # an unhashable key: SafeConstructor's own error
            if first is not key_node.start_mark:
                raise Refused(None, None, f"duplicate key {key!r} (first at line {first.line + 1})", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as err:  # int() past its digit limit, impossible dates
            text = reprlib.repr(node.value) if isinstance(node, yaml.ScalarNode) else node.tag
            raise Refused(None, None, f"cannot read value {text}: {_first_clause(err)}", node.start_mark) from None


def read_data_file(path: Path) -> Any:
    """Parse a YAML or JSON file (:class:`StrictLoader`); every problem is a one-line :class:`UserError` naming the file."""
    text = _read_text(path)
    if path.suffix == ".json":
        return _parse_json(text, path)
    try:
        return yaml.load(text, Loader=StrictLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = err.problem or err.context or str(err).splitlines()[0]
        raise UserError(f"{where}: {problem}" if isinstance(err, Refused) else f"{where}: YAML syntax error: {problem}") from None
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        raise UserError(f"{path}:{line}: YAML syntax error: {err.reason} (#x{err.character:04x})") from None
    except yaml.YAMLError as err:
        raise UserError(f"{path}: YAML syntax error: {str(err).splitlines()[0]}") from None


def _read_text(path: Path) -> str:
    """The UTF-8 text of ``path``, at most :data:`MAX_DATA_BYTES`."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_DATA_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a file") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror or err})") from None
    if len(raw) > MAX_DATA_BYTES:
        raise UserError(f"{path}: larger than {MAX_DATA_BYTES // 2**20} MiB, the most a YAML or JSON input may be")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start})") from None


def _parse_json(text: str, path: Path) -> Any:
    """Parse JSON text, refusing duplicate keys and nesting beyond :data:`MAX_DEPTH`."""
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        raise UserError(f"{path}:{err.lineno}:{err.colno}: JSON syntax error: {err.msg}") from None
    except RecursionError:
        raise UserError(f"{path}: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as err:  # a duplicate key; an integer past int()'s digit limit
        raise UserError(f"{path}: {_first_clause(err)}") from None
    if _depth(data) > MAX_DEPTH:
        raise UserError(f"{path}: nested deeper than {MAX_DEPTH} levels")
    return data


def _first_clause(err: Exception) -> str:
    """The message of ``err`` up to its first ';' (Python's digit-limit advice is for programmers)."""
    return str(err).split(";")[0]


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"duplicate key {key!r}")
        data[key] = value
    return data


def _depth(data: Any) -> int:
    """How deeply lists and mappings nest in ``data`` (a scalar is 1), without recursion."""
    deepest, todo = 0, [(data, 1)]
    while todo:
        value, depth = todo.pop()
        deepest = max(deepest, depth)
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        todo.extend((child, depth + 1) for child in children)
    return deepest


def write_graphml(graph: ArchGraph, path: str | Path) -> Path:
    """Export to GraphML (attributes that are unset are left out; metadata as one JSON string)."""
    g = nx.DiGraph(**{k: v for k, v in graph.g.graph.items() if k != "metadata"})
    if graph.metadata:
        g.graph["metadata"] = json.dumps(graph.metadata)
    for node, data in graph.g.nodes(data=True):
        g.add_node(node, **{k: v for k, v in data.items() if v is not None})
    g.add_edges_from(graph.g.edges(data=True))
    nx.write_graphml(g, path)
    return Path(path)
