"""``gensynth export``: a graph file as a standalone PyTorch module or an ONNX file, optionally with weights."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from ..errors import UserError
from ..ir import load
from .args import integer
from .inspect_cmd import check_size


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write an architecture as a standalone PyTorch module or as ONNX",
        description="Write an architecture graph file as a standalone PyTorch module (plain torch.nn code defining Net, "
        "no gensynth import; a state dict of gensynth's model loads into it) or as an ONNX file with a dynamic batch axis.",
    )
    p.add_argument("graph", type=Path, help="architecture graph file (.yaml or .json), e.g. a run's final/proxy.yaml")
    p.add_argument("--format", choices=("pytorch", "onnx"), default="pytorch", help="pytorch (a .py file) or onnx (default: pytorch)")
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="the file to write")
    p.add_argument("--weights", type=Path, metavar="FILE",
                   help="a state dict (e.g. final/weights.pt, which fits final/proxy.yaml): checked to load into the "
                   "PyTorch module, or baked into the ONNX file (without it, the ONNX says its weights are untrained)")
    p.add_argument("--resolution", type=integer(1), help="input resolution in px (default: the graph's)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..export import build_with_weights, graph_to_onnx, to_pytorch_source

    graph = load(args.graph)
    check_size(graph, args.resolution, args.graph)
    shape = "×".join(map(str, graph.input_shape(args.resolution)))
    if args.format == "pytorch":
        source = to_pytorch_source(graph, args.resolution)
        if args.weights is not None:
            build_with_weights(graph, args.weights, args.resolution)  # a mismatch is a one-line error before anything is written
        _write(args.out, lambda: args.out.write_text(source))
        fits = f"; {args.weights} loads into it" if args.weights is not None else ""
        print(f"wrote {args.out}: class Net for N×{shape} inputs, no gensynth import{fits}")
        return 0
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise UserError("ONNX export needs the onnx extra: pip install 'gensynth[onnx]'") from None
    _write(args.out, lambda: graph_to_onnx(graph, args.out, args.weights, args.resolution))
    trained = f"weights from {args.weights}" if args.weights is not None else "UNTRAINED weights (random initialisation)"
    print(f"wrote {args.out}: N×{shape} input, dynamic batch, {trained}")
    return 0


def _write(path: Path, write: Callable[[], object]) -> None:
    """Run ``write()`` into ``path``'s folder (made if missing); an OS error is one line naming ``--out``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write()
    except OSError as err:
        raise UserError(f"--out {path}: cannot write ({err.strerror or err})") from None
