"""Search spaces: genes, families (genome → graph) and the YAML loader."""
from . import dcac  # noqa: F401  (registers the built-in family)
from .families import FAMILIES, Family, list_families, register_family
from .genes import Choice, Genome, RandomChooser, Repeat, ReplayChooser, space_size, walk
from .space import Deployment, ProxyAdaptation, SearchSpace, builtin_spaces, load_space

__all__ = [
    "Choice", "Deployment", "FAMILIES", "Family", "Genome", "ProxyAdaptation", "RandomChooser", "Repeat",
    "ReplayChooser", "SearchSpace", "builtin_spaces", "list_families", "load_space", "register_family", "space_size",
    "walk",
]
