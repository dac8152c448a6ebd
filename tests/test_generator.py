"""The generator and its samplers' bounded history window (the storage mirror: test_storage.py)."""
from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from gensynth.search.generator import Generator
from gensynth.search.record import CandidateRecord, Status
from gensynth.search.samplers import HistoryWindow, make_sampler
from gensynth.space import load_space

SPACE = load_space("dcac")


def _seen(window: HistoryWindow, study: optuna.Study) -> list[float]:
    """Values of the finished trials the wrapped sampler models now."""
    return [t.value for t in window.view(study).get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]


def test_tpe_with_history_is_seeded_and_equals_plain_tpe_until_the_window_opens() -> None:
    def genomes(history: int) -> list[dict]:
        study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", 7, ("maximize",), history))
        out = []
        for i in range(40):
            trial = study.ask()
            out.append(SPACE.suggest(trial))
            study.tell(trial, float(trial.params["head.width"]) + i % 3)
        return out

    assert isinstance(make_sampler("tpe", 0, ("maximize",), 10), HistoryWindow)
    assert not isinstance(make_sampler("tpe", 0, ("maximize",), 0), HistoryWindow)
    windowed, again, plain = genomes(10), genomes(10), genomes(0)
    assert windowed == again
    assert windowed[:20] == plain[:20]  # fewer than 2 * history finished trials: TPE sees the study itself
    assert windowed[20:] != plain[20:]  # from then on it models only the most recent 10 to 19


def test_the_window_holds_between_history_and_twice_history_most_recent_trials() -> None:
    window = HistoryWindow(optuna.samplers.RandomSampler(0), 5)
    study = optuna.create_study(sampler=window)
    for i in range(60):
        trial = study.ask()
        trial.suggest_categorical("x", [0, 1, 2])
        seen = _seen(window, study)
        assert seen == [float(n) for n in range(i - len(seen), i)], i  # the most recent, each once
        assert len(seen) == i if i < 10 else 5 <= len(seen) < 10, i
        study.tell(trial, float(i))
    assert len(study.trials) == 60 and [t.number for t in study.trials] == list(range(60))  # the study is untouched


def test_the_window_takes_added_trials_and_trials_that_finish_out_of_order_once() -> None:
    window = HistoryWindow(optuna.samplers.RandomSampler(0), 3)
    study = optuna.create_study(sampler=window)
    dist = {"x": CategoricalDistribution([0, 1])}
    study.add_trials([create_trial(params={"x": 0}, distributions=dist, value=float(n)) for n in range(7)])  # as a replay does
    slow = study.ask()  # 7: the window opens on the last 3 added
    assert _seen(window, study) == [4.0, 5.0, 6.0]
    for _ in range(2):
        trial = study.ask()  # 8, 9
        study.tell(trial, float(trial.number))
    study.tell(slow, 7.0)  # finishes after 8 and 9
    failed = study.ask()  # 10: sees 8, then 7 and 9 (6 >= 2 * 3: rolled to the last 3)
    assert sorted(_seen(window, study)) == [7.0, 8.0, 9.0]
    study.tell(failed, state=TrialState.FAIL)  # failed trials are not modelled
    study.ask()
    assert sorted(_seen(window, study)) == [7.0, 8.0, 9.0]


def test_windowed_tpe_stands_in_for_trials_in_flight() -> None:
    sampler = make_sampler("tpe", 3, ("maximize",), 10)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    in_flight: list[optuna.Trial] = []
    for _ in range(50):  # three in flight at each ask, as when a run proposes ahead of two workers
        trial = study.ask()
        SPACE.suggest(trial)
        in_flight.append(trial)
        if len(in_flight) == 3:
            done = in_flight.pop(0)
            study.tell(done, float(done.params["head.width"]))
    window = sampler.view(study).get_trials(deepcopy=False)
    assert [t.state for t in window].count(TrialState.RUNNING) == 3  # 47, 48, 49 at the last ask
    assert 10 <= [t.state for t in window].count(TrialState.COMPLETE) < 20
    assert TrialState.FAIL in {t.state for t in window}  # stand-ins of trials that came in since


def test_generator_numbers_stay_global_through_rolls_and_a_replay() -> None:
    def generator() -> tuple[Generator, HistoryWindow]:
        sampler = make_sampler("tpe", 0, ("maximize",), 5)
        return Generator(SPACE, ["maximize"], sampler, [-1e9]), sampler

    gen, _ = generator()
    records = []
    for _ in range(30):
        number, genome = gen.ask()
        records.append(CandidateRecord(number, f"h{number}", Status.EVALUATED, genome,
                                       score=float(genome["head.width"]), values=[float(genome["head.width"])]))
        gen.tell(records[-1])
    assert [r.number for r in records] == list(range(30)) and gen.proposals == 30
    resumed, sampler = generator()
    resumed.replay(records)
    assert resumed.ask()[0] == 30
    assert 5 <= len(sampler.view(resumed.study).get_trials(states=(TrialState.COMPLETE,))) < 10
