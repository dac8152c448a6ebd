"""reference_beating in a run: references measured by the run's own (fake, instant) stages, once, cached per protocol.

The fake stage of test_loop.py is given latency too, and answers fixed figures
for the reference graph (named ``ref``), counting how often it is asked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from gensynth.constraint import Candidate, RunContext
from gensynth.constraints.reference_beating import ReferenceBeating
from gensynth.errors import UserError
from gensynth.ir import ArchGraph, save
from gensynth.ir.serialize import to_dict
from gensynth.references import list_references
from gensynth.search.inquisitor import TaskResult
from gensynth.search.record import Status
from gensynth.search.store import RunStore
from test_loop import FakeStage, FakeTask, _unit, make_search, tiny_space  # noqa: F401  (tiny_space is a fixture)

REFERENCE = {"params": 5e5, "macs": 5e7, "accuracy": 0.0, "latency_ms": 5.0}
"""The reference's figures: no candidate is less accurate; the fake latencies (0–10 ms) fall on both sides."""


@dataclass
class TimedTask(FakeTask):
    """test_loop's fake measurements plus a latency in [0, 10) ms; the reference's figures for the reference."""

    reference: dict[str, float] | None = None

    def __call__(self, data: Any = None) -> TaskResult:
        if self.reference is not None:
            return TaskResult(True, dict(self.reference))
        result = super().__call__(data)
        result.measurements["latency_ms"] = 10 * _unit(self.graph, "latency")
        return result


class TimedStage(FakeStage):
    """``knob`` stands for any protocol setting (it changes the fingerprint); ``_reference_tasks`` counts the reference's measurements."""

    measures = ("params", "macs", "accuracy", "latency_ms")

    def __init__(self, knob: int = 0):
        super().__init__()
        self.knob, self._reference_tasks = knob, 0

    def task(self, graph):
        if graph.name != "ref":
            return TimedTask(to_dict(graph))
        self._reference_tasks += 1
        return TimedTask(to_dict(graph), reference=REFERENCE)


@pytest.fixture
def reference(tiny_space, tmp_path):
    path = tmp_path / "ref.yaml"
    save(tiny_space.to_graph(tiny_space.sample(0), name="ref"), path)
    return path


def search(tiny_space, root, reference, budget: int, knob: int = 0) -> TimedStage:
    stage = TimedStage(knob)
    make_search(tiny_space, root, budget=budget, stages=[stage], emit=False, constraints=[ReferenceBeating([str(reference)])]).run()
    return stage


def test_a_slower_candidate_is_rejected_and_a_faster_one_accepted(tiny_space, tmp_path, reference):
    search(tiny_space, tmp_path / "run", reference, budget=8)
    inquired = [r for r in RunStore(tmp_path / "run").records() if r.inquired]
    slower = [r for r in inquired if r.measurements["latency_ms"] >= REFERENCE["latency_ms"]]
    faster = [r for r in inquired if r.measurements["latency_ms"] < REFERENCE["latency_ms"]]
    assert slower and faster
    for r in slower:
        assert r.status is Status.REJECTED and not r.feasible
        assert "reference_beating: does not beat: latency_ms" in r.reason and "vs ref 5" in r.reason
    for r in faster:
        assert r.status is Status.EVALUATED and r.feasible
        assert r.verdicts["reference_beating"]["reason"].startswith("beats ref on accuracy, latency_ms")


def test_references_are_measured_once_reused_on_resume_and_measured_again_for_another_protocol(tiny_space, tmp_path, reference):
    root = tmp_path / "run"
    assert search(tiny_space, root, reference, budget=2)._reference_tasks == 1
    assert search(tiny_space, root, reference, budget=4)._reference_tasks == 0  # resumed: the cached figures
    assert len(RunStore(root).records()) > 2
    assert search(tiny_space, root, reference, budget=6, knob=1)._reference_tasks == 1  # another protocol
    keys = list(RunStore(root).reference_cache())
    assert len(keys) == 2 and all(k.startswith("ref:") for k in keys) and keys[0] != keys[1]


def prepared(reference, **options: Any) -> ReferenceBeating:
    constraint = ReferenceBeating([str(reference)], **options)
    constraint.prepare(RunContext(lambda graph, label: {"accuracy": 70.0, "latency_ms": 5.0}))
    return constraint


def verdict(constraint: ReferenceBeating, accuracy: float, latency_ms: float = 1.0):
    return constraint.check(Candidate({}, ArchGraph(), "", {"accuracy": accuracy, "latency_ms": latency_ms}))


def test_an_accuracy_difference_within_two_binomial_standard_errors_is_called_within_noise(reference):
    noisy = prepared(reference, val_images=500)  # 2 SE at 70 % on 500 images: 4.1 pp
    win, loss, clear = verdict(noisy, 72.0), verdict(noisy, 68.0), verdict(noisy, 80.0)
    assert win.satisfied and "accuracy 72 vs ref 70: within noise, 2 SE = 4.1 pp" in win.reason
    assert not loss.satisfied and "accuracy 68 vs ref 70 (within noise, 2 SE = 4.1 pp)" in loss.reason
    assert clear.satisfied and "noise" not in clear.reason
    assert verdict(noisy, 70.0).satisfied  # at least the reference's accuracy; latency must be below
    assert not verdict(noisy, 75.0, latency_ms=5.0).satisfied
    assert "noise" not in verdict(prepared(reference), 72.0).reason  # the validation set's size unknown: no claim
    with pytest.raises(UserError, match="'val_images' must be an integer >= 1"):
        ReferenceBeating([str(reference)], val_images=0)


def test_references_are_zoo_names_or_files(reference):
    names = [info.name for info in list_references()]
    constraint = ReferenceBeating([names[0], str(reference)])
    assert constraint.references == [names[0], str(reference)]
    seen = []
    constraint.prepare(RunContext(lambda graph, label: seen.append(label) or {}))
    assert seen == [names[0], "ref"]
    with pytest.raises(UserError, match="unknown reference 'resnet_9000'"):
        ReferenceBeating(["resnet_9000"])
