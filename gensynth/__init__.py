"""gensynth: neural-architecture search by generative synthesis."""
from .errors import UserError
from .ir import ArchGraph, GraphError, load, save
from .nn import build_model

__version__ = "0.1.0"
__all__ = ["ArchGraph", "GraphError", "UserError", "build_model", "load", "save", "__version__"]
