"""One registry shape for every extension point: ops, space families, samplers, objectives, executors.

Like timm's model registry: register once under a name, look up by name, list
by pattern. Registering a name twice raises unless ``override=True``; looking
up an unknown name is a :class:`~gensynth.errors.UserError` (one line, listing
the known names). A registry may also read an entry-point group, so an
installed package adds entries without any import by the user::

    [project.entry-points."gensynth.samplers"]
    my_sampler = "my_package.sampler:make"
"""
from __future__ import annotations

import fnmatch
import sys
from importlib.metadata import entry_points
from typing import Callable, Generic, Iterator, TypeVar

from .errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind (``kind`` names them in errors, e.g. "sampler")."""

    def __init__(self, kind: str, entry_point_group: str = ""):
        self.kind, self.entry_point_group = kind, entry_point_group
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._entry_points_loaded = not entry_point_group

    def register(self, name: str, entry: T, override: bool = False, origin: str = "") -> T:
        """Add ``entry`` under ``name``; a name already taken raises ``ValueError`` unless ``override``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} needs a non-empty name, got {name!r}")
        if name in self._entries and not override:
            raise ValueError(f"{self.kind} '{name}' is already registered ({self._origins[name]}); pass override=True to replace it")
        self._entries[name] = entry
        self._origins[name] = origin or _origin_of(entry)
        return entry

    def decorator(self, name: str, override: bool = False) -> Callable[[T], T]:
        """``@registry.decorator("name")`` registers the decorated object."""
        return lambda entry: self.register(name, entry, override)

    def get(self, name: str) -> T:
        """The entry called ``name``; an unknown name is a one-line user error listing the known ones."""
        self._load_entry_points()
        if name not in self._entries:
            raise UserError(f"unknown {self.kind} {name!r} (expected one of: {', '.join(self.names()) or 'none registered'})")
        return self._entries[name]

    __getitem__ = get

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching the shell-style ``pattern``, sorted."""
        self._load_entry_points()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def origin(self, name: str) -> str:
        """Where ``name`` came from (module, or entry point and distribution)."""
        self.get(name)
        return self._origins[name]

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _load_entry_points(self) -> None:
        """Read the entry-point group once; a broken third-party entry warns and is skipped."""
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.entry_point_group):
            if ep.name in self._entries:
                continue  # built-ins registered in code keep their place
            try:
                entry = ep.load()
            except Exception as err:  # one broken plugin must not hide the others
                print(f"gensynth: warning: entry point '{ep.name}' ({ep.value}) failed to load: {err}", file=sys.stderr)
                continue
            dist = f" ({ep.dist.name} {ep.dist.version})" if ep.dist else ""
            self.register(ep.name, entry, origin=f"entry point {ep.value}{dist}")


def _origin_of(entry: object) -> str:
    """``python module.name`` of a function or class; of an object, where its class is defined."""
    named = entry if hasattr(entry, "__qualname__") else type(entry)
    return f"python {named.__module__}.{named.__qualname__}"
