"""Executors run inquisitor tasks: locally (the default) or as Ray tasks on a local or remote cluster.

Only the driver writes the run's storage: executors return results, never files.
While an executor works in the background the driver prepares the next
candidate (see :attr:`Executor.runs_in_background`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Union

from ..data import ProxyDataset
from ..errors import UserError
from .config import SearchConfig
from .inquisitor import ProbeTask, TaskResult, TrainTask, probe, train
from .probe_process import ProbeProcess

Task = Union[ProbeTask, TrainTask]


class Executor(ABC):
    """Submit tasks, then wait for some of them to finish."""

    capacity: int = 1

    @abstractmethod
    def start(self, data: ProxyDataset) -> None: ...

    @abstractmethod
    def submit(self, key: Any, task: Task) -> None: ...

    @abstractmethod
    def wait(self) -> list[tuple[Any, TaskResult]]:
        """Block until at least one submitted task finishes; return the finished ``(key, result)`` pairs."""

    @property
    def runs_in_background(self) -> bool:
        """Whether submitted work is running without the driver, which may meanwhile prepare the next candidate."""
        return False

    def has_results(self) -> bool:
        """Whether :meth:`wait` would return at once."""
        return True

    def shutdown(self) -> None:
        """Release workers."""


class LocalExecutor(Executor):
    """One task at a time: training in this process when it is submitted, a probe in a probe process beside it.

    While a probe runs, :meth:`wait` is the only call that blocks, so the driver
    proposes meanwhile; a sequential run stays deterministic.
    """

    def start(self, data: ProxyDataset) -> None:
        self.data = data
        self.done: list[tuple[Any, TaskResult]] = []
        self.probing: Any = None
        self.probes = ProbeProcess()

    def submit(self, key: Any, task: Task) -> None:
        if self.probes.busy:
            self.done.append((self.probing, self.probes.result()))  # never two tasks at once
        if isinstance(task, ProbeTask):
            self.probes.submit(task)
            self.probing = key
        else:
            self.done.append((key, train(task, self.data)))

    @property
    def runs_in_background(self) -> bool:
        return self.probes.busy

    def has_results(self) -> bool:
        return bool(self.done) or (self.probes.busy and self.probes.has_result())

    def wait(self) -> list[tuple[Any, TaskResult]]:
        done, self.done = self.done, []
        if not done and self.probes.busy:
            done.append((self.probing, self.probes.result()))
        return done

    def shutdown(self) -> None:
        self.probes.stop()


class RayExecutor(Executor):
    """Each task is a Ray task with its own thread budget; a dead worker is retried, then reported failed."""

    def __init__(self, address: str, workers: int, threads: int, max_retries: int):
        try:
            import ray
        except ImportError:
            raise UserError("--executor ray needs Ray: pip install 'gensynth[ray]'") from None
        self.ray = ray
        self.address, self.capacity, self.threads, self.max_retries = address, workers, threads, max_retries

    def start(self, data: ProxyDataset) -> None:
        ray = self.ray
        self._started = not ray.is_initialized()
        if self._started:
            if self.address:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(num_cpus=self.capacity * self.threads, include_dashboard=False, log_to_driver=False)
        options = {"num_cpus": self.threads, "max_retries": self.max_retries, "retry_exceptions": False}
        self._probe = ray.remote(**options)(probe)
        self._train = ray.remote(**options)(train)
        self._data = ray.put(data)
        self._pending: dict[Any, Any] = {}

    def submit(self, key: Any, task: Task) -> None:
        ref = self._probe.remote(task) if isinstance(task, ProbeTask) else self._train.remote(task, self._data)
        self._pending[ref] = key

    def wait(self) -> list[tuple[Any, TaskResult]]:
        ready, _ = self.ray.wait(list(self._pending), num_returns=1)
        done = []
        for ref in ready:
            key = self._pending.pop(ref)
            try:
                done.append((key, self.ray.get(ref)))
            except Exception as err:  # the worker died past its retries, or Ray itself failed
                reason = f"worker failed after {self.max_retries} retries: {type(err).__name__}: {str(err).splitlines()[0]}"
                done.append((key, TaskResult(False, reason=reason)))
        return done

    @property
    def runs_in_background(self) -> bool:
        return bool(self._pending)

    def has_results(self) -> bool:
        ready, _ = self.ray.wait(list(self._pending), num_returns=1, timeout=0)
        return bool(ready)

    def shutdown(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()


def make_executor(config: SearchConfig) -> Executor:
    if config.executor == "ray":
        return RayExecutor(config.ray_address, config.workers, config.threads_per_worker, config.max_retries)
    return LocalExecutor()
