"""Executors run inquisitor tasks: locally (the default) or as Ray tasks on a local or remote cluster.

Only the driver writes the run's storage: executors return results, never files.
While an executor works in the background the driver prepares the next
candidate (see :attr:`Executor.runs_in_background`).
"""
from __future__ import annotations

import socket
from abc import ABC, abstractmethod
from typing import Any, Callable

from ..data import ProxyDataset
from ..errors import UserError, first_line
from ..registry import Registry
from .config import SearchConfig, resolve_workers
from .inquisitor import TaskResult
from .probe_process import ProbeProcess
from .stages import Task


class Executor(ABC):
    """Runs evaluation tasks: :meth:`start` once, then :meth:`submit` tasks and :meth:`wait` for results.

    Call order: ``start(data)``; any number of ``submit(key, task)`` (at most
    ``capacity`` unfinished at once) and ``wait()``; ``shutdown()`` at the end,
    also after an error. A task never raises; a worker that dies must come back
    as a failed :class:`TaskResult`, never as an exception.
    """

    capacity: int = 1
    ordered: bool = False
    """True: the loop records candidates in proposal order, keeps ``max(capacity, propose_ahead + 1)`` of them
    unrecorded (those ahead of the oldest start as workers free up) and proposes only at fixed points,
    so a seeded run never depends on which task finishes first. False (Ray): candidates are recorded as they
    finish, ``capacity`` of them in flight and one proposed ahead."""

    @abstractmethod
    def start(self, data: ProxyDataset | None) -> None:
        """Get ready; ``data`` is what tasks whose ``needs_data`` is True are called with."""

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
    """One task at a time: tasks that need the dataset run in this process when submitted, others in a probe process.

    While a probe runs, :meth:`wait` is the only call that blocks, so the driver
    proposes meanwhile; a sequential run stays deterministic. The local executor
    with more than one worker is :class:`~gensynth.search.worker_pool.WorkerPool`.
    """

    ordered = True

    def start(self, data: ProxyDataset | None) -> None:
        self.data = data
        self.done: list[tuple[Any, TaskResult]] = []
        self.probing: Any = None
        self.probes = ProbeProcess()

    def submit(self, key: Any, task: Task) -> None:
        if self.probes.busy:
            self.done.append((self.probing, self.probes.result()))  # never two tasks at once
        if not task.needs_data:
            self.probes.submit(task)
            self.probing = key
        else:
            self.done.append((key, task(self.data)))

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
        if address and not ray.is_initialized():
            _check_reachable(address)  # at construction: a bad address is refused before the run directory exists

    def start(self, data: ProxyDataset | None) -> None:
        ray = self.ray
        self._started = not ray.is_initialized()
        if self._started:
            if self.address:
                try:
                    ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
                except (ConnectionError, RuntimeError, ValueError) as err:
                    raise UserError(f"--ray-address {self.address}: cannot connect to a Ray cluster: {first_line(err)}") from None
            else:
                ray.init(num_cpus=self.capacity * self.threads, include_dashboard=False, log_to_driver=False)
        options = {"num_cpus": self.threads, "max_retries": self.max_retries, "retry_exceptions": False}
        self._run = ray.remote(**options)(_run_task)
        self._data = ray.put(data)
        self._pending: dict[Any, Any] = {}

    def submit(self, key: Any, task: Task) -> None:
        self._pending[self._run.remote(task, self._data if task.needs_data else None)] = key

    def wait(self) -> list[tuple[Any, TaskResult]]:
        ready, _ = self.ray.wait(list(self._pending), num_returns=1)
        done = []
        for ref in ready:
            key = self._pending.pop(ref)
            try:
                done.append((key, self.ray.get(ref)))
            except Exception as err:  # the worker died past its retries, or Ray itself failed
                reason = f"worker failed after {self.max_retries} retries: {type(err).__name__}: {first_line(err)}"
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


def _run_task(task: Task, data: ProxyDataset | None) -> TaskResult:
    return task(data)


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A Ray address must answer within ``timeout`` seconds (``ray.init`` alone may retry for minutes)."""
    if address == "auto" or address.startswith("ray://"):
        host_port = address.removeprefix("ray://") if address != "auto" else ""
    else:
        host_port = address
    if not host_port:
        return
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray-address {address!r}: expected host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise UserError(f"--ray-address {address}: no Ray cluster answers there ({err.strerror or err})") from None


def _local(config: SearchConfig) -> Executor:
    """One worker: training in this process, probes in a probe process; more: a pool of single-task worker processes."""
    workers = resolve_workers(config)
    if workers == 1:
        return LocalExecutor()
    from .worker_pool import WorkerPool  # imports this module

    return WorkerPool(workers, config.threads_per_worker)


ExecutorFactory = Callable[[SearchConfig], Executor]
EXECUTORS: Registry[ExecutorFactory] = Registry("executor", entry_point_group="gensynth.executors")
EXECUTORS.register("local", _local, origin="built-in")
EXECUTORS.register("ray", lambda config: RayExecutor(config.ray_address, resolve_workers(config), config.threads_per_worker, config.max_retries),
                   origin="built-in")


def register_executor(name: str, factory: ExecutorFactory, override: bool = False) -> ExecutorFactory:
    """Add an executor that ``--executor NAME`` selects: ``factory(SearchConfig) -> Executor``."""
    return EXECUTORS.register(name, factory, override)


def list_executors(pattern: str = "*") -> list[str]:
    return EXECUTORS.names(pattern)


def make_executor(config: SearchConfig) -> Executor:
    return EXECUTORS.get(config.executor)(config)
