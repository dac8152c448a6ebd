"""Diagrams of architecture graphs: DOT text, rendered to SVG/PNG by graphviz."""
from __future__ import annotations

import shutil
from pathlib import Path

import graphviz

from ..errors import UserError
from .graph import ArchGraph

_COLOURS = {"dcac": "#f6c8a8", "attention_condenser": "#f6c8a8", "squeeze_excitation": "#f6c8a8", "transformer": "#f6c8a8",
            "blurpool": "#b8e0c8", "avgpool": "#b8e0c8", "maxpool": "#f3a6a6", "concat": "#d0d0f0", "add": "#d0d0f0",
            "input": "#eeeeee", "classifier": "#eeeeee"}
_SHOWN = ("kernel", "stride", "groups", "out_channels", "f_condense", "a_condense", "filter_size", "branches", "patch", "depth", "heads")


def to_dot(graph: ArchGraph) -> graphviz.Digraph:
    """A graphviz diagram: one box per node with its op, key attributes and output shape."""
    dot = graphviz.Digraph(graph.name, graph_attr={"rankdir": "TB"}, node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica", "fontsize": "10"})
    for info in graph.nodes():
        details = ", ".join(f"{k}={info.attrs[k]}" for k in _SHOWN if info.attrs.get(k) not in (None,))
        shape = "×".join(str(d) for d in info.shape)
        label = f"{info.name}\n{info.op}" + (f"({details})" if details else "") + f"\n{shape}"
        dot.node(info.name, label, fillcolor=_COLOURS.get(info.op, "#ffffff"))
        for src in info.inputs:
            dot.edge(src, info.name)
    return dot


def draw(graph: ArchGraph, path: str | Path) -> Path:
    """Write ``path``: ``.dot`` as text, ``.svg``/``.png``/``.pdf`` rendered with graphviz's ``dot``."""
    path = Path(path)
    dot = to_dot(graph)
    fmt = path.suffix.lstrip(".")
    if fmt in ("dot", "gv"):
        path.write_text(dot.source)
        return path
    if fmt not in ("svg", "png", "pdf"):
        raise UserError(f"{path}: cannot draw to '.{fmt}' (expected .svg, .png, .pdf or .dot)")
    if shutil.which("dot") is None:
        raise UserError(f"{path}: rendering needs graphviz's 'dot' program (apt-get install graphviz); write a .dot file instead")
    path.write_bytes(dot.pipe(format=fmt))
    return path


def draw_or_dot(graph: ArchGraph, path: str | Path) -> tuple[Path, str]:
    """Draw ``graph`` to ``path``; without graphviz's ``dot``, DOT text beside it instead.

    Returns the file written and, when it fell back, a one-line note saying so.
    """
    path = Path(path)
    if path.suffix in (".svg", ".png", ".pdf") and shutil.which("dot") is None:
        written = draw(graph, path.with_suffix(".dot"))
        return written, f"graphviz's `dot` is not installed: wrote {written.name} (DOT text) instead of {path.name} (apt-get install graphviz)"
    return draw(graph, path), ""
