"""The probe process: a child Python process that runs tasks beside the driver.

The one-worker local executor trains in the driver's process but sends probes
(build, params, MACs, single-thread latency timing) here. The timing then runs
apart from the driver's threads and heap, and on a machine with a spare core
the driver prepares the next candidate and writes the storage mirror while it
runs, so the engine's own work overlaps the timing instead of adding to it.
The workers of :class:`~gensynth.search.worker_pool.WorkerPool` are such
children too, given the run's dataset and a torch thread count at start.

The child reads its :class:`Setup`, then tasks, one at a time, on its stdin,
each as a length line and a pickle (the setup is read before torch is
imported, so the driver never waits for the child's imports; a task that
cannot be unpickled there fails alone); it replies with pickles on its
stdout. The child is a plain subprocess, not ``multiprocessing``, so a user's
script or notebook needs no ``if __name__ == "__main__"`` guard (but a task's
class must be importable by module name, not defined in the script). A child
that dies (killed, out of memory, a crash in native code) fails the task it
was running; the next task starts a fresh one. A child dies with its driver.
"""
from __future__ import annotations

import os
import pickle
import select
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..data import ProxyDataset
from ..errors import first_line
from .inquisitor import TaskResult
from .stages import Task

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_DRIVER_PID = "GENSYNTH_PROBE_DRIVER_PID"


@dataclass
class Setup:
    """What a child holds for all its tasks: the dataset (for tasks that need it) and its torch threads (0: torch's default)."""

    data: ProxyDataset | None = None
    threads: int = 0


class ProbeProcess:
    """Runs one task at a time in a child process: tasks that need no dataset, and with ``setup.data`` any task.

    ``role`` names the child in the reason of a task it died running.
    """

    def __init__(self, setup: Setup | None = None, role: str = "probe process") -> None:
        self.setup, self.role = setup or Setup(), role
        self._child: subprocess.Popen[bytes] | None = None
        self.busy = False

    def submit(self, task: Task) -> None:
        """Send ``task``; its result comes back from :meth:`result`."""
        assert not self.busy, "one task at a time: read the last result first"
        if self._child is None or self._child.poll() is not None:
            self.start()
        assert self._child is not None and self._child.stdin is not None
        try:
            self._child.stdin.write(_framed(task))
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
            return TaskResult(False, reason=f"crashed: the {self.role} died ({_exit_status(code)})")

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

    def fileno(self) -> int:
        """The child's reply pipe, for ``select`` over several children."""
        assert self._child is not None and self._child.stdout is not None
        return self._child.stdout.fileno()

    def start(self) -> None:
        """Start the child now (else the first :meth:`submit` does), so that its imports overlap the driver's work."""
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p))
        env[_DRIVER_PID] = str(os.getpid())
        if self.setup.threads:  # before the child imports torch: OpenMP and MKL read these once
            env.update(OMP_NUM_THREADS=str(self.setup.threads), MKL_NUM_THREADS=str(self.setup.threads))
        # ``-c`` puts the working directory first on sys.path: drop it, so a user's torch.py or gensynth/ there is never imported
        code = f"import sys; del sys.path[0]; s = sys.stdin.buffer; setup = s.read(int(s.readline())); from {__name__} import main; main(setup)"
        self._child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert self._child.stdin is not None
        try:  # the child reads it before its imports: this waits for the interpreter's start at most
            self._child.stdin.write(_framed(self.setup))
            self._child.stdin.flush()
        except BrokenPipeError:  # died at once: the next result reports it
            pass


def _framed(message: object) -> bytes:
    """``message`` as the child reads it: the length of its pickle on a line, then the pickle."""
    blob = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return b"%d\n" % len(blob) + blob


def _exit_status(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        return f"killed by {name}" + (", which the kernel's out-of-memory killer sends" if name == "SIGKILL" else "")
    return f"exit code {code}"


def serve(setup: Setup, requests: BinaryIO, replies: BinaryIO) -> None:
    """The child's loop: read a framed task, reply with its result's pickle, until the driver closes the pipe."""
    if setup.threads:
        import torch

        torch.set_num_threads(setup.threads)
    while line := requests.readline():
        blob = requests.read(int(line))
        try:
            task = pickle.loads(blob)
        except Exception as err:  # its class is not importable here, e.g. defined in a script's __main__
            result = TaskResult(False, reason=f"crashed: the task cannot be loaded in a child process (its class must be importable "
                                              f"by module name): {type(err).__name__}: {first_line(err)}")
        else:
            result = task(setup.data if task.needs_data else None)
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


def main(setup: bytes) -> None:
    """The child's entry: ``setup`` is the pickled :class:`Setup` the driver wrote first."""
    _die_with_parent()
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints go to stderr, not into the replies
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        serve(pickle.loads(setup), sys.stdin.buffer, replies)
    except (KeyboardInterrupt, BrokenPipeError):  # Ctrl-C reaches the whole group; a dead driver closed the pipe
        pass
    finally:
        try:
            replies.close()
        except BrokenPipeError:
            pass
    # every reply is written and every task's files are closed: skip the interpreter's teardown, which takes about a
    # second with torch loaded and which the driver would wait for at the end of every search
    sys.stderr.flush()
    os._exit(0)
