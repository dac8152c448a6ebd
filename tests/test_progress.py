"""Live progress, the resume message, --timeout then resume, and --warm-start (fake stages: no training)."""
from __future__ import annotations

import io
import time

import optuna

from gensynth.search.progress import SearchProgress
from gensynth.search.record import Status
from gensynth.search.store import RunStore
from test_loop import FakeStage, make_search, tiny_space  # noqa: F401  (the fixture)


class SlowStage(FakeStage):
    """The fake stage, taking ``seconds`` per candidate."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def task(self, graph):
        time.sleep(self.seconds)
        return super().task(graph)


def test_off_a_terminal_each_evaluated_candidate_is_one_line(tiny_space, tmp_path):
    search = make_search(tiny_space, tmp_path / "run", budget=3, emit=False)
    stream = io.StringIO()
    search.progress = SearchProgress(3, enabled=True, stream=stream)
    search.run()
    lines = stream.getvalue().splitlines()
    records = [r for r in RunStore(tmp_path / "run").records() if r.inquired]
    assert len(lines) == len(records) == 3
    for line, record in zip(lines, records):
        assert line.startswith(f"gensynth: candidate {record.number} evaluated (score {record.score:.2f}")
    assert lines[-1].split(" · ")[1] == "3/3 evaluated"
    rejected = sum(r.status is Status.REJECTED for r in RunStore(tmp_path / "run").records())
    assert rejected == 0 or "rejected by columnar" in lines[-1]


def test_a_resumed_run_says_how_many_finished_candidates_it_found(tiny_space, tmp_path):
    make_search(tiny_space, tmp_path / "run", budget=2, emit=False).run()
    found = len(RunStore(tmp_path / "run").records())
    search = make_search(tiny_space, tmp_path / "run", budget=3, emit=False)
    stream = io.StringIO()
    search.progress = SearchProgress(3, enabled=True, stream=stream)
    search.run()
    first = stream.getvalue().splitlines()[0]
    assert first == f"gensynth: resuming {tmp_path / 'run'}: {found} finished candidates found (2 evaluated, 2 feasible)"


def test_disabled_progress_prints_nothing(tiny_space, tmp_path, capsys):
    make_search(tiny_space, tmp_path / "run", budget=2, emit=False).run()
    assert capsys.readouterr().err == ""


def test_the_timeout_stops_starting_candidates_and_a_rerun_resumes(tiny_space, tmp_path):
    search = make_search(tiny_space, tmp_path / "run", budget=50, stages=[SlowStage(0.1)], emit=False)
    search.timeout = 0.35
    started = time.monotonic()
    result = search.run()
    assert time.monotonic() - started < 3
    assert result.timed_out and 1 <= result.evaluated < 50
    done = result.evaluated
    again = make_search(tiny_space, tmp_path / "run", budget=done + 2, emit=False).run()
    assert not again.timed_out and again.evaluated == done + 2
    hashes = [r.hash for r in RunStore(tmp_path / "run").records() if r.inquired]
    assert len(hashes) == len(set(hashes))


def test_warm_start_evaluates_the_seed_architecture_first(tiny_space, tmp_path):
    from gensynth.space import load_space

    space = load_space("dcac")
    search = make_search(space, tmp_path / "run", budget=1, emit=False, sampler=optuna.samplers.RandomSampler(seed=3))
    search.generator.enqueue(space.seed_genome)
    search.run()
    first = min(RunStore(tmp_path / "run").records(), key=lambda r: r.number)
    assert first.number == 0 and first.genome == space.seed_genome and first.status is Status.EVALUATED
    assert first.hash == space.seed_graph().structural_hash()
