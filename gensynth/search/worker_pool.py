"""The local executor with several workers: each a child process holding the run's dataset, with one torch thread.

On a machine with two cores, two single-thread processes out-run one
two-thread process, and more torch threads than free cores slow training by
up to 100×: so each worker runs with ``threads`` torch threads (set before
torch is imported in the child) and runs any task, probe, screen or training.
A worker is a :class:`~gensynth.search.probe_process.ProbeProcess` given the
dataset once at its start: it dies with the driver, and one that dies fails
its task, naming the cause; the next task it is given starts a fresh one.

Results come back as tasks finish. The search loop records candidates in
proposal order (:attr:`Executor.ordered`), so which worker finishes first
never changes what the sampler hears.
"""
from __future__ import annotations

import select
from typing import Any

from ..data import ProxyDataset
from .executors import Executor
from .inquisitor import TaskResult
from .probe_process import ProbeProcess, Setup
from .stages import Task


class WorkerPool(Executor):
    """``workers`` child processes, each running one task at a time with ``threads`` torch threads."""

    ordered = True

    def __init__(self, workers: int, threads: int = 1):
        self.capacity, self.threads = workers, threads
        self.workers: list[ProbeProcess] = []
        self.running: dict[ProbeProcess, tuple[int, Any]] = {}  # worker → (submission number, key)
        self.submitted = 0

    def start(self, data: ProxyDataset | None) -> None:
        setup = Setup(data, self.threads)
        self.workers = [ProbeProcess(setup, role="worker process") for _ in range(self.capacity)]
        for worker in self.workers:
            worker.start()  # their imports overlap the driver's start

    def submit(self, key: Any, task: Task) -> None:
        idle = [w for w in self.workers if not w.busy]
        assert idle, f"at most {self.capacity} tasks at once: wait for a result first"
        worker = idle[0]
        worker.submit(task)
        self.running[worker] = (self.submitted, key)
        self.submitted += 1

    def wait(self) -> list[tuple[Any, TaskResult]]:
        """Block until a task finishes; every finished task's ``(key, result)``, in submission order."""
        if not self.running:
            return []
        return [self._collect(worker) for worker in self._finished(timeout=None)]

    @property
    def runs_in_background(self) -> bool:
        return True  # always, so the loop's proposing ahead never depends on how far the workers got

    def has_results(self) -> bool:
        return bool(self.running) and bool(self._finished(timeout=0))

    def shutdown(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.running = {}

    def _finished(self, timeout: float | None) -> list[ProbeProcess]:
        """Workers whose result (or death) can be read, oldest task first."""
        readable, _, _ = select.select(list(self.running), [], [], timeout)
        return sorted(readable, key=lambda worker: self.running[worker][0])

    def _collect(self, worker: ProbeProcess) -> tuple[Any, TaskResult]:
        _, key = self.running.pop(worker)
        return key, worker.result()
