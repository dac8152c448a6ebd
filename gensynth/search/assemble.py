"""``run_search(config)``: build the default collaborators from a config and run the search.

Everything a user can get wrong is checked before the run directory is made
(config values, space, objective, constraints and their metrics, sampler,
executor, storage URL, dataset), so a start that fails leaves nothing behind
that would refuse the corrected retry; a directory this call made is removed
again if the start fails before any candidate finished.
"""
from __future__ import annotations

import shutil
import sys
from typing import Any, Sequence

from ..constraint import Constraint
from ..data import load_dataset
from ..errors import UserError
from ..plugins import instantiate
from ..report import write_report
from ..space.space import load_space
from .config import SearchConfig, constraint_specs, resolve, training_threads, validate
from .emit import emit_final
from .executors import make_executor
from .generator import Generator
from .judge import ConstraintEngine
from .lock import RunLock
from .mirror import StorageMirror, open_storage
from .objective import Objective
from .objective import make_objective
from .run import LOOKAHEAD, RunResult, Search
from .samplers import make_sampler
from .stages import EvaluationStage, make_stages, measured_by
from .store import RunStore

ConstraintRef = Constraint | str | type


def run_search(config: SearchConfig, constraints: Sequence[ConstraintRef] = (), progress: bool = True) -> RunResult:
    """Run (or resume) the search that ``config`` describes; ``constraints`` are added to the configured ones."""
    validate(config, "python")
    given_table, config = config.latency.table, resolve(config)  # latency.backend 'auto' becomes what it means here, and is recorded so
    if given_table and not config.latency.table:
        print(f"gensynth: latency.table {given_table} was measured on another device profile: latency is predicted from "
              "this machine's own table instead, so proposals will differ from that table's run", file=sys.stderr)
    space = load_space(config.space)
    objective = make_objective(config.objective)
    configured = [instantiate(ref, options) for ref, options in constraint_specs(config)]
    engine = ConstraintEngine(configured + [instantiate(c) for c in constraints])
    stages = make_stages(config, space, training_threads(config))
    check_measurable(objective, engine, stages, config)
    sampler = make_sampler(config.sampler, config.seed, objective.directions, config.history)
    executor = make_executor(config)
    store = RunStore(config.run_dir)
    signature = [constraint_signature(c) for c in engine.constraints]
    store.check_resumable(config, signature)
    finished = store.records()  # a damaged candidates.jsonl is refused now, naming its line, before anything is written
    if config.warm_start == "seed" and space.seed_genome is None:
        raise UserError(f"warm_start: the space '{space.name}' has no seed architecture (seed_genome) to start from")
    storage = open_storage(config.storage) if config.storage else None
    data = load_dataset(config.data, train_limit=config.training.train_images, val_limit=config.training.val_images, seed=config.seed)
    data.check_channels(space.deployment.channels)  # the space's input must be servable before any candidate is spent
    created = store.create()
    lock = RunLock(store.root)
    lock.acquire()
    try:
        store.write_config(config, signature)
        generator = Generator(space, list(objective.directions), sampler, objective.placeholder())
        if config.warm_start == "seed" and not finished:
            generator.enqueue(space.seed_genome)
        mirror = StorageMirror(storage or store.default_storage_url, config.name or store.root.resolve().name,
                               list(objective.directions), objective.metric_names, generator.distributions, objective.name)
        search = Search(space=space, generator=generator, executor=executor, store=store, objective=objective, constraints=engine,
                        stages=stages, budget=config.budget, proposal_cap=config.proposal_cap, mirror=mirror, data=data,
                        emit=lambda s: emit_final(s, config), progress=progress, timeout=config.timeout,
                        lookahead=getattr(sampler, "lookahead", LOOKAHEAD), propose_ahead=config.propose_ahead)
        result = search.run()
    except UserError:
        if created and not store.records():
            lock.release()
            shutil.rmtree(store.root, ignore_errors=True)
        raise
    finally:
        lock.release()
    if config.report:
        write_report(store.root)  # the run's page: plots, the emitted architecture, the protocol
    return result


def check_measurable(objective: Objective, engine: ConstraintEngine, stages: list[EvaluationStage], config: SearchConfig) -> None:
    """Refuse an objective or measured constraint that needs a metric no stage of this run measures."""
    measured = measured_by(stages)
    needs = [(f"objective '{objective.name}'", objective.requires)]
    needs += [(f"constraint '{c.name}'", tuple(c.requires)) for c in engine.of_stage("measured")]
    for who, requires in needs:
        missing = [m for m in requires if m not in measured]
        if missing:
            why = " (latency.runs is 0)" if missing[0] == "latency_ms" and not config.latency.runs else ""
            raise UserError(f"{who} needs '{missing[0]}', which no stage of this run measures{why} "
                            f"(stages {', '.join(config.stages)} measure: {', '.join(sorted(measured))})")


def constraint_signature(constraint: Constraint) -> dict[str, Any]:
    """What a resumed run must match: the constraint's name, class and plain-valued public attributes."""
    cls = type(constraint)
    options = {k: _plain(v) for k, v in sorted(vars(constraint).items()) if not k.startswith("_") and _plain(v) is not _SKIP}
    return {"name": constraint.name, "class": f"{cls.__module__}.{cls.__qualname__}", "options": options}


_SKIP = object()


def _plain(value: Any) -> Any:
    """``value`` as JSON-able data, or ``_SKIP`` for what has no stable form (objects, functions)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "__fspath__"):
        return str(value)
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return _SKIP if any(i is _SKIP for i in items) else items
    if isinstance(value, dict):
        items = {str(k): _plain(v) for k, v in value.items()}
        return _SKIP if any(i is _SKIP for i in items.values()) else items
    return _SKIP
