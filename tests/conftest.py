"""Shared fixtures for the core tests (IR, builder, search space, CLI).

The fixtures here are opt-in (nothing is autouse), so other test modules keep
torch's default settings. Modules that run forward passes use ``one_thread``:
the suite is meant to run on 2 CPU cores, and the big sweep in test_space.py
runs two single-thread worker processes instead of one two-thread process.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from gensynth.ir import ArchGraph
from gensynth.space import SearchSpace, load_space


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test``: one worker more than the cores) each worker is one process with one torch thread.

    Single-thread processes out-run multi-thread ones on 2 cores; a worker with as
    many threads as cores would oversubscribe them (up to 100x slower), while a third
    single-thread worker only fills the time the others wait on subprocesses.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``first`` (the longest) run before the others, so that parallel workers end together."""
    items.sort(key=lambda item: item.get_closest_marker("first") is None)


@pytest.fixture
def importable(monkeypatch):
    """Worker processes can import the tests' helper modules (``pool_tasks``): ``tests/`` on ``PYTHONPATH``."""
    tests = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p))


@pytest.fixture
def one_thread():
    """Run the test with one intra-op torch thread; restore the previous setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def dcac_space() -> SearchSpace:
    """The shipped ``dcac`` search space."""
    return load_space("dcac")


@pytest.fixture(scope="session")
def seed_graph(dcac_space: SearchSpace) -> ArchGraph:
    """The shipped AttendNeXt seed architecture (search_spaces/attendnext_seed.yaml)."""
    graph = dcac_space.seed_graph()
    assert graph is not None, "the dcac space ships no seed architecture"
    return graph


def small_graph(resolution: int = 32, num_classes: int = 10) -> ArchGraph:
    """A hand-built graph with every kind of wiring: a branch, concat, blur-pool, DC-AC, pools.

    Shapes at 32 px (hand-computed in test_ir.py)::

        input 3x32x32 → stem(16, s2) 16x16x16 ┬ left  dwconv   16x16x16 ┐
                                              └ right pwconv(8)  8x16x16 ┴ cat 24x16x16
        → down blurpool 24x8x8 → att dcac(32) 32x8x8 → mp maxpool(3,2,1, ceil) 32x5x5
        → ap avgpool(2,2, ceil) 32x3x3 → gp 32x1x1 → fc (10,)
    """
    g = ArchGraph("small", 3, resolution, num_classes)
    g.add("input", "input")
    g.add("stem", "stem", ["input"], out_channels=16, stride=2)
    g.add("left", "dwconv", ["stem"], out_channels=16)
    g.add("right", "pwconv", ["stem"], out_channels=8)
    g.add("cat", "concat", ["left", "right"])
    g.add("down", "blurpool", ["cat"])
    g.add("att", "dcac", ["down"], out_channels=32)
    g.add("mp", "maxpool", ["att"], kernel=3, stride=2, padding=1)
    g.add("ap", "avgpool", ["mp"])
    g.add("gp", "global_pool", ["ap"])
    g.add("fc", "classifier", ["gp"], in_channels=32)
    return g


@pytest.fixture
def small() -> ArchGraph:
    return small_graph()


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give batch norms and attention scales random (but tame) values, so outputs are O(1).

    Freshly initialised models have BN = identity and tiny logits, which makes a
    numerical comparison (ONNX vs torch, traced vs built) nearly vacuous.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            elif isinstance(module, torch.nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) / module.in_features**0.5)
        for name, param in model.named_parameters():
            if name.endswith("scale"):
                param.copy_(torch.rand(param.shape, generator=gen) + 0.5)
    return model


@pytest.fixture(scope="session")
def make_small_graph():
    """The :func:`small_graph` factory (call it with another resolution or head size)."""
    return small_graph


@pytest.fixture(scope="session")
def randomize():
    """The :func:`randomize_` helper."""
    return randomize_
