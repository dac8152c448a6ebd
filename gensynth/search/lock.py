"""One search per run directory: an advisory lock on ``<run>/.lock`` holding the owner's pid.

Two searches writing one run directory would record trial numbers twice and
mix their candidates, so the second is refused with one line naming the
first. The lock is ``flock``-based: the kernel releases it when its process
dies, however it dies, so a lock left by a dead process is simply taken over.
"""
from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from ..errors import UserError


class RunLock:
    """Held while a search runs in ``root``; :meth:`acquire` refuses when another live process holds it."""

    def __init__(self, root: Path):
        self.path = Path(root) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise UserError(f"{self.path.parent}: cannot write the run directory ({err.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise UserError(f"{self.path.parent}: another search is running in this run directory ({owner}); wait for it or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays, naming the last owner
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
