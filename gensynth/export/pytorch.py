"""Graph → a standalone PyTorch module file: plain ``torch.nn`` code that imports nothing from gensynth.

A deployer gets a file to read, vendor and edit. It copies, as source, the
definitions of :mod:`gensynth.nn.blocks` that the graph's ops use, so its
parameter names and shapes are gensynth's own and a state dict of
:func:`gensynth.nn.build_model` (a run's ``weights.pt``) loads with
``strict=True``; its ``Net.forward`` calls one submodule per node in graph
order, with the same arguments as the fx builder.
"""
from __future__ import annotations

import ast
import inspect
import keyword
from typing import Any, Callable, NamedTuple

from torch import nn

from ..errors import UserError
from ..ir.graph import ArchGraph
from ..ir.ops import CONV_OPS, OPS, Shape
from ..nn import blocks, layers
from ..nn.builder import module_name
from ..nn.layers import _branch

Emitter = Callable[[dict[str, Any], list[Shape], Shape], str]
"""``(attrs, input shapes, output shape) -> constructor expression``, mirroring the op's module factory in layers.py."""


class Definition(NamedTuple):
    """A top-level statement of a module, copied as source: where it starts, its text, the names it uses."""

    line: int
    source: str
    uses: set[str]


def _call(callee: str, *args: Any, **kwargs: Any) -> str:
    """Source of the call ``callee(*args, **kwargs)``; the arguments are literals, so ``repr`` is their source."""
    return f"{callee}({', '.join([*map(repr, args), *(f'{k}={v!r}' for k, v in kwargs.items())])})"


def _conv(a: dict[str, Any], ins: list[Shape], out: Shape) -> str:
    return _call("ConvBNAct", ins[0][0], a["out_channels"], a["kernel"], a["stride"], a["groups"], a["act"], a["bn"])


def _pool(cls: str) -> Emitter:
    return lambda a, ins, out: _call(cls, a["kernel"], a["stride"], a["padding"], ceil_mode=True)


EMITTERS: dict[str, Emitter] = {
    **{op: _conv for op in CONV_OPS},
    "dcac": lambda a, ins, out: _call(
        "DoubleCondensingAttentionCondenser", ins[0][0], out[0], out[1:], _branch(a, "f_"), _branch(a, "a_"), a["act"], a["residual"]
    ),
    "attention_condenser": lambda a, ins, out: _call("AttentionCondenser", out[0], out[1:], act=a["act"], **_branch(a, "")),
    "squeeze_excitation": lambda a, ins, out: _call(
        "SqueezeExcitation", ins[0][0], blocks.make_divisible(ins[0][0] / a["reduction"], a["divisor"]), a["act"], a["gate"]
    ),
    "mobileone_block": lambda a, ins, out: _call(
        "MobileOneBlock", ins[0][0], a["out_channels"], a["kernel"], a["stride"], a["groups"], a["branches"], a["act"]
    ),
    "transformer": lambda a, ins, out: _call(
        "PatchTransformer", out[0], out[1:], a["patch"], a["depth"], a["heads"], a["mlp_ratio"], a["act"]
    ),
    "blurpool": lambda a, ins, out: _call("BlurPool2d", ins[0][0], a["filter_size"], a["stride"]),
    "avgpool": _pool("nn.AvgPool2d"),
    "maxpool": _pool("nn.MaxPool2d"),
    "concat": lambda a, ins, out: _call("Concat"),
    "add": lambda a, ins, out: _call("Add", a["act"]),
    "global_pool": lambda a, ins, out: _call("nn.AdaptiveAvgPool2d", 1),
    "classifier": lambda a, ins, out: _call("Classifier", ins[0][0], out[0], a["dropout"]),
}
"""The ops the exporter writes as source: gensynth's built-ins, whose modules come from ``gensynth.nn.blocks``."""


def unsupported_reason(op: str) -> str | None:
    """Why the exporter cannot write ``op`` as source, or None when it can."""
    if op == "input":
        return None
    if op not in EMITTERS:
        return f"op '{op}' is not a gensynth built-in: the PyTorch exporter copies gensynth.nn.blocks only"
    if getattr(OPS[op].module, "__module__", None) != layers.__name__:
        return f"op '{op}' has a module factory other than gensynth's (registered with override): its source is unknown"
    return None


def to_pytorch_source(graph: ArchGraph, resolution: int | None = None) -> str:
    """The source of a standalone module file defining ``Net``: ``graph`` built for ``resolution`` px (default: the graph's)."""
    from .. import __version__  # here: gensynth/__init__.py defines it after importing the search, which imports this

    shapes = graph.infer_shapes(resolution)
    order = graph.order()
    for node in order:
        reason = unsupported_reason(graph.op(node))
        if reason:
            raise UserError(f"node '{node}': {reason}")
    source = inspect.getsource(blocks)
    imports, definitions = _top_level(source)
    built = {node: EMITTERS[graph.op(node)](graph.attrs(node), [shapes[s] for s in graph.inputs(node)], shapes[node])
             for node in order if graph.op(node) != "input"}
    needed = _closure(set().union(*(_names(ast.parse(expr)) for expr in built.values())), definitions)
    copied = list(dict.fromkeys(definitions[name].source for name in sorted(needed, key=lambda n: definitions[n].line)))
    (c, h, w), out = shapes[graph.input_node()], shapes[graph.output_node()]
    header = (
        f'"""{_literal(graph.name)}: a standalone PyTorch network, written by gensynth {__version__} (gensynth export --format pytorch).\n\n'
        f"Architecture hash {graph.structural_hash()}; input N×{c}×{h}×{w}, output N×{'×'.join(map(str, out))}.\n"
        "Plain torch.nn code that imports nothing from gensynth: the blocks are copied from gensynth.nn.blocks,\n"
        "so a state dict of the network gensynth builds from the same graph at the same resolution loads as is:\n\n"
        "    model = Net()\n"
        '    model.load_state_dict(torch.load("weights.pt", map_location="cpu"))\n'
        "    model.eval()\n"
        '"""\n'
    )
    parts = [header + "from __future__ import annotations\n\n" + "\n".join(imports), f"INPUT_SHAPE = {(c, h, w)!r}", *copied,
             _net(graph, order, built, (c, h, w))]
    return "\n\n\n".join(parts) + "\n"


def _literal(text: str) -> str:
    """``text`` made safe inside a generated docstring (graph names are user data)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _top_level(source: str) -> tuple[list[str], dict[str, Definition]]:
    """A module's imports (``__future__`` aside) and its top-level definitions by name."""
    tree = ast.parse(source)
    lines = source.splitlines()
    imports: list[str] = []
    definitions: dict[str, Definition] = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if getattr(node, "module", None) != "__future__":
                imports.append(ast.get_source_segment(source, node) or "")
            continue
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
        else:  # the docstring, statements with no name to copy
            continue
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        definition = Definition(first, "\n".join(lines[first - 1:node.end_lineno]), _names(node))
        definitions.update(dict.fromkeys(names, definition))
    return imports, definitions


def _names(tree: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _closure(names: set[str], definitions: dict[str, Definition]) -> set[str]:
    """The definitions ``names`` use, and those they use in turn."""
    todo, seen = [n for n in names if n in definitions], set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [n for n in definitions[name].uses if n in definitions and n != name]
    return seen


def _net(graph: ArchGraph, order: list[str], built: dict[str, str], input_shape: Shape) -> str:
    """``class Net``: the submodules under the builder's names, called node by node."""
    local = _local_names(graph, order)
    init, forward = [], []
    for node, expr in built.items():
        name = module_name(node)
        if name.isidentifier() and not keyword.iskeyword(name) and not hasattr(nn.Module, name):
            init.append(f"self.{name} = {expr}")
            call = f"self.{name}"
        else:  # a name Python or nn.Module would misread as an attribute: registered and looked up by string
            init.append(f"self.add_module({name!r}, {expr})")
            call = f"self._modules[{name!r}]"
        forward.append(f"{local[node]} = {call}({', '.join(local[s] for s in graph.inputs(node))})")
    body = [
        "class Net(nn.Module):",
        f'    """{_literal(graph.name)} for {"×".join(map(str, input_shape))} inputs: one submodule per graph node, called in graph order."""',
        "",
        "    def __init__(self) -> None:",
        "        super().__init__()",
        *(f"        {line}" for line in init),
        "",
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:",
        *(f"        {line}" for line in forward),
        f"        return {local[graph.output_node()]}",
    ]
    return "\n".join(body)


def _local_names(graph: ArchGraph, order: list[str]) -> dict[str, str]:
    """A distinct Python identifier per node for ``forward``'s variables; the input is ``x``."""
    taken = {"self", "x"}
    local = {graph.input_node(): "x"}
    for node in (n for n in order if n not in local):
        base = module_name(node)
        if not base.isidentifier() or keyword.iskeyword(base):
            base = f"v_{base}"
        name, i = base, 1
        while name in taken:
            name, i = f"{base}_{i}", i + 1
        taken.add(name)
        local[node] = name
    return local
