"""The sampler registry (names, entry points, errors) and the regularized-evolution plugin."""
from __future__ import annotations

import copy
import random
import sys
import types
from importlib.metadata import EntryPoint

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, create_trial

import gensynth.registry
from gensynth.errors import UserError
from gensynth.registry import Registry
from gensynth.samplers.regularized_evolution import RegularizedEvolutionSampler
from gensynth.search import samplers
from gensynth.search.samplers import SAMPLERS, list_samplers, make_sampler, register_sampler

BUILTINS = ["nsga2", "random", "regularized_evolution", "tpe"]


@pytest.fixture
def registry(monkeypatch) -> Registry:
    """A copy of the sampler registry that the test may add to; the module's own is restored after."""
    fresh = copy.deepcopy(SAMPLERS)
    monkeypatch.setattr(samplers, "SAMPLERS", fresh)
    return fresh


def _random_factory(seed: int, directions: tuple[str, ...], history: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


# -- the registry ---------------------------------------------------------------------------------
def test_builtins_are_listed_and_patterns_filter() -> None:
    assert set(BUILTINS) <= set(list_samplers())
    assert list_samplers("n*") == ["nsga2"]
    assert list_samplers("regularized_*") == ["regularized_evolution"]
    assert list_samplers("nothing*") == []


def test_an_unknown_name_is_a_one_line_user_error_listing_the_known_ones() -> None:
    with pytest.raises(UserError) as caught:
        make_sampler("tpee", 0, ("maximize",))
    message = str(caught.value)
    assert "\n" not in message and "'tpee'" in message
    assert all(name in message for name in BUILTINS)


def test_registering_a_name_twice_raises_unless_override(registry: Registry) -> None:
    register_sampler("mine", _random_factory)
    with pytest.raises(ValueError, match="already registered"):
        register_sampler("mine", lambda seed, directions, history: optuna.samplers.TPESampler(seed=seed))
    with pytest.raises(ValueError, match="already registered"):
        register_sampler("tpe", _random_factory)
    register_sampler("tpe", _random_factory, override=True)
    assert isinstance(make_sampler("tpe", 0, ("maximize",), 300), optuna.samplers.RandomSampler)
    assert "mine" in list_samplers()


def test_a_factory_that_returns_no_sampler_is_a_user_error_naming_it(registry: Registry) -> None:
    register_sampler("broken", lambda seed, directions, history: "not a sampler")
    with pytest.raises(UserError, match="sampler 'broken' .* returned str, not an optuna BaseSampler"):
        make_sampler("broken", 0, ("maximize",))


def test_an_installed_package_adds_a_sampler_through_the_entry_point_group(monkeypatch) -> None:
    plugin = types.ModuleType("fake_sampler_plugin")
    plugin.make = _random_factory
    monkeypatch.setitem(sys.modules, "fake_sampler_plugin", plugin)
    found = [EntryPoint(name="fake", value="fake_sampler_plugin:make", group="gensynth.samplers"),
             EntryPoint(name="broken", value="fake_sampler_plugin:missing", group="gensynth.samplers")]
    monkeypatch.setattr(gensynth.registry, "entry_points", lambda group: found if group == "gensynth.samplers" else [])
    fresh = Registry("sampler", entry_point_group="gensynth.samplers")
    monkeypatch.setattr(samplers, "SAMPLERS", fresh)
    assert list_samplers() == ["fake"]  # the broken one warns and is skipped
    assert isinstance(make_sampler("fake", 3, ("minimize",)), optuna.samplers.RandomSampler)
    assert fresh.origin("fake") == "entry point fake_sampler_plugin:make"


def test_regularized_evolution_comes_through_gensynths_own_entry_point() -> None:
    assert SAMPLERS.origin("regularized_evolution").startswith("entry point gensynth.samplers.regularized_evolution:make")
    assert SAMPLERS.origin("tpe") == "built-in"
    assert isinstance(make_sampler("regularized_evolution", 0, ("maximize",)), RegularizedEvolutionSampler)


def test_single_objective_samplers_refuse_several_directions_in_one_line() -> None:
    with pytest.raises(UserError) as caught:
        make_sampler("regularized_evolution", 0, ("maximize", "minimize"))
    assert "\n" not in str(caught.value) and "single-objective" in str(caught.value)
    for name in ("tpe", "random", "nsga2"):
        make_sampler(name, 0, ("maximize", "minimize"), 300)


# -- regularized evolution ------------------------------------------------------------------------
GENES, CHOICES = 10, 5
TARGET = [random.Random(42).randrange(CHOICES) for _ in range(GENES)]


def _matches(trial: optuna.Trial) -> float:
    """Toy categorical problem: how many of the genes hit a hidden target (maximize; 10 is the best)."""
    return float(sum(trial.suggest_categorical(f"g{i}", list(range(CHOICES))) == TARGET[i] for i in range(GENES)))


def _conditional(trial: optuna.Trial) -> float:
    """Define-by-run: ``depth`` decides how many ``w*`` genes exist."""
    depth = trial.suggest_categorical("depth", [1, 2, 3, 4])
    widths = [trial.suggest_categorical(f"w{i}", [8, 16, 32]) for i in range(depth)]
    act = trial.suggest_categorical("act", ["relu", "hswish"])
    return sum(widths) / 32 + (act == "hswish")


def _run(sampler: optuna.samplers.BaseSampler, objective, trials: int) -> list[FrozenTrial]:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=trials)
    return study.trials


def _differences(child: FrozenTrial, parent: FrozenTrial) -> list[str]:
    """Genes both have whose values differ."""
    return [name for name in child.params if name in parent.params and child.params[name] != parent.params[name]]


def test_evolution_is_seeded() -> None:
    def proposals(seed: int) -> list[dict]:
        return [t.params for t in _run(RegularizedEvolutionSampler(population_size=10, sample_size=3, seed=seed), _matches, 40)]

    assert proposals(3) == proposals(3)
    assert proposals(3) != proposals(4)


def test_evolution_samples_at_random_until_the_population_is_full() -> None:
    evolved = _run(RegularizedEvolutionSampler(population_size=10, sample_size=3, seed=5), _matches, 12)
    randomly = _run(optuna.samplers.RandomSampler(seed=5), _matches, 12)
    assert [t.params for t in evolved[:10]] == [t.params for t in randomly[:10]]
    assert [t.params for t in evolved[10:]] != [t.params for t in randomly[10:]]


def test_each_offspring_differs_from_a_member_of_the_population_in_exactly_one_gene() -> None:
    trials = _run(RegularizedEvolutionSampler(population_size=10, sample_size=3, seed=0), _matches, 60)
    for k in range(10, 60):
        population = trials[k - 10:k]
        assert any(len(_differences(trials[k], p)) == 1 for p in population), k
    # a random proposal is almost never one mutation away from anything (5^10 genomes)
    randomly = _run(optuna.samplers.RandomSampler(seed=0), _matches, 60)
    assert sum(any(len(_differences(randomly[k], p)) == 1 for p in randomly[k - 10:k]) for k in range(10, 60)) <= 2


def test_conditional_genes_mutate_once_and_new_branches_are_drawn() -> None:
    trials = _run(RegularizedEvolutionSampler(population_size=20, sample_size=5, seed=1), _conditional, 150)
    grew = 0
    for k in range(20, 150):
        child = trials[k]
        parents = [p for p in trials[k - 20:k] if len(_differences(child, p)) == 1]
        assert parents, k
        # a child asks for genes its parent lacks only when the mutated gene was ``depth``
        assert any(set(child.params) == set(p.params) or _differences(child, p) == ["depth"] for p in parents), k
        grew += any(_differences(child, p) == ["depth"] and set(child.params) > set(p.params) for p in parents)
    assert grew > 0


def test_the_tournament_prefers_feasible_trials_then_the_smallest_violation() -> None:
    dist = {f"g{i}": CategoricalDistribution([0, 1, 2, 3]) for i in range(3)}

    def child_of(members: list[tuple[int, float, float]]) -> dict:
        sampler = RegularizedEvolutionSampler(population_size=len(members), sample_size=len(members), seed=0)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.add_trials([create_trial(params={name: gene for name in dist}, distributions=dist, value=value,
                                       constraints={"budget": violation}) for gene, value, violation in members])
        trial = study.ask()
        return {name: trial.suggest_categorical(name, [0, 1, 2, 3]) for name in dist}

    def one_mutation_from(params: dict, gene: int) -> bool:
        return sum(v != gene for v in params.values()) == 1

    # (gene of every parameter, value, violation): the best by value is infeasible, 2 is the best feasible
    assert one_mutation_from(child_of([(0, 1.0, 0.0), (1, 9.0, 1.0), (2, 5.0, -0.5), (3, 100.0, 0.2)]), 2)
    # none feasible: the smallest violation wins, whatever its value
    assert one_mutation_from(child_of([(0, 1.0, 0.3), (1, 9.0, 1.0), (3, 100.0, 2.0)]), 0)


def test_evolution_beats_random_search_on_a_toy_categorical_problem() -> None:
    evolved = [t.value for t in _run(RegularizedEvolutionSampler(seed=0), _matches, 200)]
    randomly = [t.value for t in _run(optuna.samplers.RandomSampler(seed=0), _matches, 200)]
    assert max(evolved) >= max(randomly) + 2
    assert sum(evolved[-50:]) / 50 >= sum(randomly[-50:]) / 50 + 3
