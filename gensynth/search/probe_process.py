"""The probe process: a child Python process that runs probe tasks beside the driver.

The local executor trains in the driver's process but sends probes (build,
params, MACs, single-thread latency timing) here. The timing then runs apart
from the driver's threads and heap, and on a machine with a spare core the
driver prepares the next candidate and writes the storage mirror while it
runs, so the engine's own work overlaps the timing instead of adding to it.

Requests and replies are pickles on the child's stdin and stdout, one task
at a time. The child is a plain subprocess, not ``multiprocessing``,
so a user's script or notebook needs no ``if __name__ == "__main__"`` guard.
A child that dies (killed, out of memory, a crash in native code) fails the
task it was running; the next task starts a fresh one.
"""
from __future__ import annotations

import os
import pickle
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

from .inquisitor import ProbeTask, TaskResult

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_DRIVER_PID = "GENSYNTH_PROBE_DRIVER_PID"


class ProbeProcess:
    """Runs one task that needs no dataset (a :class:`ProbeTask`) at a time in a child process."""

    def __init__(self) -> None:
        self._child: subprocess.Popen[bytes] | None = None
        self.busy = False

    def submit(self, task: ProbeTask) -> None:
        """Send ``task``; its result comes back from :meth:`result`."""
        assert not self.busy, "one probe at a time: read the last result first"
        if self._child is None or self._child.poll() is not None:
            self._start()
        assert self._child is not None and self._child.stdin is not None
        try:
            pickle.dump(task, self._child.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._child.stdin.flush()
        except BrokenPipeError:  # died just now: reading the result reports it
            pass
        self.busy = True

    def result(self) -> TaskResult:
        """The submitted task's result (blocks until it is done)."""
        assert self._child is not None and self._child.stdout is not None and self.busy
        self.busy = False
        try:
            return pickle.load(self._child.stdout)
        except (EOFError, pickle.UnpicklingError):
            code = self._child.wait()
            self._child = None
            return TaskResult(False, reason=f"crashed: the probe process died ({_exit_status(code)})")

    def has_result(self) -> bool:
        """Whether the result (or the child's death) can be read without waiting."""
        assert self._child is not None and self._child.stdout is not None
        readable, _, _ = select.select([self._child.stdout], [], [], 0)
        return bool(readable)

    def stop(self) -> None:
        """End the child; a task it is still running is abandoned."""
        if self._child is None:
            return
        assert self._child.stdin is not None
        if self.busy:
            self._child.kill()
        self._child.stdin.close()
        try:
            self._child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()
        self._child, self.busy = None, False

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child else None

    def _start(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p))
        env[_DRIVER_PID] = str(os.getpid())
        # ``-c`` puts the working directory first on sys.path: drop it, so a user's torch.py or gensynth/ there is never imported
        code = f"import sys; del sys.path[0]; from {__name__} import main; main()"
        self._child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)


def _exit_status(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        return f"killed by {name}" + (", which the kernel's out-of-memory killer sends" if name == "SIGKILL" else "")
    return f"exit code {code}"


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """The child's loop: read a task, reply with its result, until the driver closes the pipe."""
    while True:
        try:
            task = pickle.load(requests)
        except EOFError:
            return
        result = task(None)
        try:
            pickle.dump(result, replies, protocol=pickle.HIGHEST_PROTOCOL)
            replies.flush()
        except BrokenPipeError:  # the driver is gone: nobody wants the result
            return


def _die_with_parent() -> None:
    """On Linux, ask the kernel to send SIGTERM when the driver dies, so a long task does not outlive it."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the closed pipe still ends the child after its task
        pass
    if str(os.getppid()) != os.environ.get(_DRIVER_PID, str(os.getppid())):
        sys.exit(0)  # the driver died while this child was still starting


def main() -> None:
    _die_with_parent()
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints go to stderr, not into the replies
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        serve(sys.stdin.buffer, replies)
    except (KeyboardInterrupt, BrokenPipeError):  # Ctrl-C reaches the whole group; a dead driver closed the pipe
        pass
    finally:
        try:
            replies.close()
        except BrokenPipeError:
            pass
