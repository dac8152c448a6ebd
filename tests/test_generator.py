"""The generator's sampler wrapper (bounded TPE history) and its storage mirror."""
from __future__ import annotations

import optuna

from gensynth.search.config import ObjectiveConfig
from gensynth.search.generator import Generator, RecentHistory, _RecentTrials, make_sampler
from gensynth.search.objective import make_objective
from gensynth.space import load_space

SPACE = load_space("dcac")


def _study_with(n: int) -> optuna.Study:
    study = optuna.create_study()
    for i in range(n):
        trial = study.ask()
        trial.suggest_categorical("x", [0, 1, 2])
        study.tell(trial, float(i))
    return study


def test_the_view_shows_only_the_most_recent_trials() -> None:
    study = _study_with(12)
    view = _RecentTrials(study, 5)
    assert [t.number for t in view._get_trials(deepcopy=False)] == [7, 8, 9, 10, 11]
    assert [t.number for t in view.get_trials()] == [7, 8, 9, 10, 11]
    assert view.directions == study.directions  # everything else is the study's


def test_tpe_with_history_is_seeded_and_keeps_sampling_past_the_window() -> None:
    def genomes(history: int) -> list[dict]:
        study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", 7, history))
        out = []
        for i in range(40):
            trial = study.ask()
            out.append(SPACE.suggest(trial))
            study.tell(trial, float(trial.params["head.width"]) + i % 3)
        return out

    assert isinstance(make_sampler("tpe", 0, 10), RecentHistory)
    assert not isinstance(make_sampler("tpe", 0, 0), RecentHistory)
    first, again = genomes(10), genomes(10)
    assert first == again
    assert first != genomes(0)  # past the 10-trial window the models differ


def test_mirror_holds_every_finished_trial_after_close(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    gen = Generator(SPACE, make_objective(ObjectiveConfig()), "random", 0, url, "mirror-test")
    for _ in range(5):
        number, _genome = gen.ask()
        gen.tell(number, [float(number)], {"columnar": 0.0})
    gen.close()
    mirrored = optuna.load_study(study_name="mirror-test", storage=url).get_trials()
    assert [t.number for t in mirrored] == [0, 1, 2, 3, 4]
    assert mirrored[3].values == [3.0] and mirrored[3].constraints == {"columnar": 0.0}
    assert mirrored[3].params == gen.study.trials[3].params


def test_flush_stops_when_asked_and_close_writes_the_rest(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    gen = Generator(SPACE, make_objective(ObjectiveConfig()), "random", 0, url, "stop-test")
    for _ in range(4):
        number, _genome = gen.ask()
        gen.tell(number, [float(number)], {})
    answers = iter([False, False, True])
    gen.flush(stop=lambda: next(answers))
    assert len(optuna.load_study(study_name="stop-test", storage=url).trials) == 2
    gen.close()
    assert [t.values for t in optuna.load_study(study_name="stop-test", storage=url).trials] == [[0.0], [1.0], [2.0], [3.0]]
