"""A graph built with a saved state dict, and its ONNX file labelled trained or untrained.

A deployer who finds an ONNX file on its own must be able to tell random
weights from trained ones: :func:`graph_to_onnx` says which in the file's
``doc_string`` and ``metadata_props``.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import fx

from ..cost import export_onnx
from ..errors import UserError
from ..ir.graph import ArchGraph
from ..nn.builder import build_model

UNTRAINED = "UNTRAINED: randomly initialised weights, for deployment tooling and latency, not for predictions."


def build_with_weights(graph: ArchGraph, weights: Path | None = None, resolution: int | None = None) -> fx.GraphModule:
    """``build_model(graph, resolution)`` in eval mode, with the state dict in ``weights`` loaded strictly if given."""
    model = build_model(graph, resolution)
    if weights is not None:
        model.load_state_dict(_fitting_state(model, weights, graph))
    return model.eval()


def _fitting_state(model: torch.nn.Module, weights: Path, graph: ArchGraph) -> dict[str, torch.Tensor]:
    """The state dict in ``weights``, checked key by key and shape by shape; a mismatch is one line."""
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{weights}: no such file") from None
    except Exception as err:  # a pickle, zip or torch error: anything else is not a state dict either
        raise UserError(f"{weights}: not a PyTorch state dict file ({type(err).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{weights}: not a state dict of tensors")
    own = model.state_dict()
    problems = [f"missing {k}" for k in own if k not in state] + [f"unexpected {k}" for k in state if k not in own]
    problems += [f"{k} is {list(state[k].shape)}, the graph's is {list(v.shape)}"
                 for k, v in own.items() if k in state and state[k].shape != v.shape]
    if problems:
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise UserError(f"{weights} does not fit graph '{graph.name}': {'; '.join(problems[:3])}{more} "
                        "(a run's final/weights.pt fits its final/proxy.yaml)")
    return state


def graph_to_onnx(graph: ArchGraph, path: Path, weights: Path | None = None, resolution: int | None = None) -> Path:
    """Export ``graph`` (dynamic batch) with ``weights`` or, without them, labelled UNTRAINED in the file itself."""
    from .. import __version__  # here: gensynth/__init__.py defines it after importing the search, which imports this

    shape = graph.input_shape(resolution)
    model = build_with_weights(graph, weights, resolution)
    digest = graph.structural_hash()
    described = f"gensynth {__version__} graph '{graph.name}' (hash {digest}), input N×{'×'.join(map(str, shape))}"
    trained = f"Weights: {weights.name}." if weights is not None else UNTRAINED
    metadata = {"gensynth.graph": graph.name, "gensynth.hash": digest,
                "gensynth.input_shape": "x".join(map(str, shape)), "gensynth.weights": "untrained" if weights is None else "trained"}
    if weights is not None:
        metadata["gensynth.weights_file"] = weights.name
    return export_onnx(model, shape, path, doc_string=f"{trained} {described}.", metadata=metadata)
