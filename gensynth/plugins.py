"""Finding constraint plugins: entry points, ``path/to/file.py:ClassName`` references, Python objects."""
from __future__ import annotations

import importlib.util
import inspect
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .constraint import STAGES, Constraint
from .errors import UserError, first_line

ENTRY_POINT_GROUP = "gensynth.constraints"


@dataclass(frozen=True)
class PluginInfo:
    """A constraint class and where it was found."""

    name: str
    cls: type[Constraint]
    origin: str

    @property
    def doc(self) -> str:
        return self.cls.describe()


@lru_cache(maxsize=1)
def installed_constraints() -> dict[str, PluginInfo]:
    """Constraints registered under the ``gensynth.constraints`` entry-point group (built-ins included)."""
    found: dict[str, PluginInfo] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as err:  # a broken third-party plugin must not hide the others
            print(f"gensynth: warning: entry point '{ep.name}' ({ep.value}) failed to load: {err}", file=sys.stderr)
            continue
        dist = f" ({ep.dist.name} {ep.dist.version})" if ep.dist else ""
        found[ep.name] = PluginInfo(ep.name, _checked(cls, ep.value), f"entry point {ep.value}{dist}")
    return found


def resolve(ref: str | type[Constraint]) -> PluginInfo:
    """A constraint class from a registered name, a ``file.py:ClassName`` reference or the class itself."""
    if inspect.isclass(ref):
        return PluginInfo(ref.name, _checked(ref, ref.__qualname__), f"python {ref.__module__}.{ref.__qualname__}")
    path, sep, attr = ref.rpartition(":")
    if sep and path.endswith(".py"):
        return PluginInfo("", _from_file(Path(path), attr, ref), f"file {path}")
    known = installed_constraints()
    if ref not in known:
        raise UserError(f"unknown constraint '{ref}' (expected one of: {', '.join(sorted(known))}, or path/to/file.py:ClassName)")
    return known[ref]


def _from_file(path: Path, attr: str, ref: str) -> type[Constraint]:
    if not path.is_file():
        raise UserError(f"constraint plugin '{ref}': no such file {path}")
    module_name = f"gensynth_plugin_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise UserError(f"constraint plugin '{ref}': importing {path} failed: {type(err).__name__}: {err}") from None
    if not hasattr(module, attr):
        raise UserError(f"constraint plugin '{ref}': {path} has no class '{attr}'")
    return _checked(getattr(module, attr), ref)


def _checked(cls: Any, ref: str) -> type[Constraint]:
    if not (inspect.isclass(cls) and issubclass(cls, Constraint)):
        raise UserError(f"constraint plugin '{ref}' is not a subclass of gensynth.constraint.Constraint")
    if not getattr(cls, "name", None) or getattr(cls, "stage", None) not in STAGES:
        raise UserError(f"constraint plugin '{ref}' must set 'name' and a 'stage' in {STAGES}")
    return cls


def instantiate(ref: str | type[Constraint] | Constraint, options: dict[str, Any] | None = None) -> Constraint:
    """A ready constraint from a reference and its options (a :class:`Constraint` instance passes through)."""
    if isinstance(ref, Constraint):
        return ref
    info = resolve(ref)
    try:
        inspect.signature(info.cls).bind(**(options or {}))
    except TypeError as err:
        raise UserError(f"constraint '{info.cls.name}': bad options {options or {}}: {err}") from None
    try:
        return info.cls(**(options or {}))
    except UserError:
        raise
    except (TypeError, ValueError) as err:
        raise UserError(f"constraint '{info.cls.name}': bad options {options or {}}: {err}") from None
    except Exception as err:  # a plugin's own bug: name it, one line, never a traceback
        raise UserError(f"constraint '{info.cls.name}' ({info.origin}) raised {type(err).__name__} in __init__: {first_line(err)}") from None

