"""The architecture graph (IR): typed operations on a networkx DiGraph."""
from .draw import draw, to_dot
from .graph import ArchGraph, GraphError, NodeInfo
from .ops import OPS, Attr, MacRule, ModuleFactory, OpSpec, Shape, list_ops, no_macs, register_op
from .serialize import from_dict, load, save, to_dict, write_graphml
from .transforms import for_proxy, reductions

__all__ = [
    "ArchGraph", "Attr", "GraphError", "MacRule", "ModuleFactory", "NodeInfo", "OPS", "OpSpec", "Shape", "draw",
    "for_proxy", "from_dict", "list_ops", "load", "no_macs", "reductions", "register_op", "save", "to_dict", "to_dot",
    "write_graphml",
]
