"""SIGTERM handled like Ctrl-C, reliably.

Raising ``KeyboardInterrupt`` from a signal handler is not enough: when the
signal lands while Python runs a finaliser (a weakref callback, ``__del__``),
the exception is printed as "ignored" and the program goes on. So the handler
also records the request, and long-running loops call :func:`check` at safe
points, which raises it again there.
"""
from __future__ import annotations

import signal
import threading
from typing import NoReturn

_requested = threading.Event()


def install() -> None:
    """Handle SIGTERM like Ctrl-C (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)


def check() -> None:
    """Raise ``KeyboardInterrupt`` if SIGTERM arrived, even if its first raise was swallowed."""
    if _requested.is_set():
        raise KeyboardInterrupt


def _terminate(signum: int, frame: object) -> NoReturn:
    _requested.set()
    raise KeyboardInterrupt
