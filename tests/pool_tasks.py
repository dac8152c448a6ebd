"""Small picklable tasks for tests/test_worker_pool.py: the pool's worker processes import this module by name.

They find it because the tests put ``tests/`` on ``PYTHONPATH``, which the workers inherit.
"""
from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import os
import random
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from gensynth.search.executors import Executor
from gensynth.search.inquisitor import TaskResult
from gensynth.ir.serialize import to_dict
from gensynth.search.stages import EvaluationStage, Task


@dataclass
class Sleep:
    """Sleeps ``seconds``, then measures its ``value`` and the worker's pid."""

    seconds: float
    value: float = 0.0
    needs_data: ClassVar[bool] = False

    def __call__(self, data: Any = None) -> TaskResult:
        time.sleep(self.seconds)
        return TaskResult(True, {"value": self.value, "pid": float(os.getpid())})


@dataclass
class Environment:
    """What the task sees in its worker: torch threads, OpenMP's setting, the dataset's size."""

    needs_data: ClassVar[bool] = True

    def __call__(self, data: Any = None) -> TaskResult:
        import torch

        return TaskResult(True, {"threads": float(torch.get_num_threads()), "omp": float(os.environ.get("OMP_NUM_THREADS", "0")),
                                 "train_images": float(len(data.train_y)), "pid": float(os.getpid())})


def unit(graph: dict[str, Any], salt: str) -> float:
    """A number in [0, 1) fixed by the graph and ``salt``."""
    digest = hashlib.sha256((salt + json.dumps(graph, sort_keys=True)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


FAKE_METRICS = {"params": (1e5, 1e6), "macs": (1e7, 1e8), "accuracy": (50.0, 40.0)}
"""Each fake metric: its least value and its range."""


@dataclass
class Hashed:
    """Measures ``metrics`` from the graph's hash after a short sleep fixed by it (so tasks finish out of order)."""

    graph: dict[str, Any]
    metrics: tuple[str, ...]
    needs_data: bool = False
    stop_below: float = 0.0
    offset: float = 0.0  # added to every value: a later rung's accuracy

    def __call__(self, data: Any = None) -> TaskResult:
        time.sleep(0.05 * unit(self.graph, "delay" + self.metrics[0]))
        u = unit(self.graph, "outcome")
        if u < self.stop_below:
            return TaskResult(True, stopped=f"{u:.2f} below {self.stop_below}")
        return TaskResult(True, {m: FAKE_METRICS[m][0] + FAKE_METRICS[m][1] * unit(self.graph, m) + self.offset for m in self.metrics})


class Shuffled(Executor):
    """Runs tasks in this process, handing back one finished task at a time in an order drawn from ``seed``."""

    ordered = True

    def __init__(self, seed: int, capacity: int = 2):
        self.rng, self.capacity = random.Random(seed), capacity

    def start(self, data):
        self.tasks: list[tuple[Any, Task]] = []

    def submit(self, key, task):
        self.tasks.append((key, task))

    def wait(self):
        key, task = self.tasks.pop(self.rng.randrange(len(self.tasks)))
        return [(key, task(None))]

    @property
    def runs_in_background(self) -> bool:
        return True


class HashedStage(EvaluationStage):
    """A stage of :class:`Hashed` tasks."""

    def __init__(self, name: str, measures: tuple[str, ...], needs_data: bool, stop_below: float = 0.0, offset: float = 0.0):
        self.name, self.measures, self.needs_data, self.stop_below, self.offset = name, measures, needs_data, stop_below, offset

    def task(self, graph) -> Task:
        return Hashed(to_dict(graph), self.measures, self.needs_data, self.stop_below, self.offset)


class Clocked(Executor):
    """Runs tasks in this process on a virtual clock: a :class:`Hashed` task lasts the fraction of a second its graph's
    hash gives; :meth:`wait` hands back the task that ends first. ``idle_s``: the workers' clock time spent in no task."""

    ordered = True

    def __init__(self, capacity: int = 2):
        self.capacity, self.now, self.busy_s = capacity, 0.0, 0.0
        self.order = itertools.count()  # ties end in submission order

    def start(self, data):
        self.running: list[tuple[float, int, Any, Task]] = []

    def submit(self, key, task):
        seconds = unit(task.graph, "delay" + task.metrics[0])
        self.busy_s += seconds
        heapq.heappush(self.running, (self.now + seconds, next(self.order), key, task))

    def wait(self):
        self.now, _, key, task = heapq.heappop(self.running)
        return [(key, task(None))]

    @property
    def idle_s(self) -> float:
        return self.capacity * self.now - self.busy_s

    @property
    def runs_in_background(self) -> bool:
        return True
