"""Writing a file so that a kill at any instant leaves either the old content or the new, never a part."""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over ``path``.

    The file keeps the mode of the one it replaces; a new file gets the mode ``open()`` would
    give it (0o666 less the umask), not the temporary file's private 0o600.
    """
    mode = _mode_for(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _mode_for(path: Path) -> int:
    """The permission bits ``path`` has now, or those a new file gets from ``open()`` under this process's umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0o022)  # reading the umask means setting it: put it straight back
        os.umask(umask)
        return 0o666 & ~umask
