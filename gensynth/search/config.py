"""The search configuration: dataclasses, read from YAML and flags, checked key by key."""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Union

import yaml

from ..errors import UserError
from ..ir.serialize import read_data_file
from ..registry import Registry

DEFAULT_CONSTRAINTS = ["columnar", "pointwise_strided", "antialiased_downsampling"]
WARM_STARTS = ("", "seed")
LATENCY_BACKENDS = ("auto", "onnxruntime", "torch")


@dataclass
class TrainingConfig:
    """Proxy training: a short run at the space's proxy resolution on the proxy dataset."""

    epochs: int = 1
    train_images: int = 1024
    val_images: int = 500
    batch_size: int = 64
    lr: float = 0.004
    weight_decay: float = 0.0001
    channels_last: bool = True


@dataclass
class FidelityConfig:
    """Successive halving over training length (gensynth/search/fidelity.py): rung ``k`` trains ``rungs[k]`` × ``training.epochs``.

    After each rung but the last, the top ``1 / reduction_factor`` of the candidates (by the
    objective's score at that rung) go on. ``rungs: [1]`` is single-fidelity training.
    """

    rungs: list[int] = field(default_factory=lambda: [1])
    reduction_factor: int = 3


@dataclass
class LatencyConfig:
    """Batch-1 latency of the inference form at the deployment shape: ``warmup`` runs, then the median (and IQR) of ``runs``.

    ``backend``: ``onnxruntime`` (the exported ONNX on its CPU provider, as deployed), ``torch``
    (eager), or ``auto`` (onnxruntime when the ``[onnx]`` extra is installed, else torch; a run
    records the backend it resolved to, so a resume never mixes them).

    ``predict``: instead of timing each candidate, sum per-node latencies from a table measured
    once per device profile and cached on disk (gensynth/cost/latency_table.py; how close it
    comes is in docs/benchmarks.md); the emitted winner is still timed.

    ``table``: with ``predict``, a table file whose entries are used before the cache's (read
    only; a path relative to the config file), e.g. the one a published run predicted from, so
    that a rerun on a machine of the same profile predicts, and so proposes, exactly as it did.
    A table of another profile is left out with a notice (:func:`resolve`).
    """

    runs: int = 10
    warmup: int = 3
    threads: int = 1
    backend: str = "auto"
    predict: bool = False
    table: str = ""


@dataclass
class ObjectiveConfig:
    """The universal performance function (see gensynth.search.objective)."""

    name: str = "netscore"
    alpha: float = 2.0
    beta: float = 0.5
    gamma: float = 0.5
    weights: dict[str, float] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=lambda: ["accuracy", "latency_ms", "params"])


@dataclass
class SearchConfig:
    """Everything a run needs; written fully resolved to ``<run>/config.yaml``."""

    space: str = "dcac"
    budget: int = 500
    seed: int = 0
    name: str = ""
    out: str = ""
    sampler: str = "tpe"
    history: int = 300
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    constraints: list[Any] = field(default_factory=lambda: list(DEFAULT_CONSTRAINTS))
    stages: list[str] = field(default_factory=lambda: ["probe", "train"])
    data: str = "fashion-mnist"
    training: TrainingConfig = field(default_factory=TrainingConfig)
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    executor: str = "local"
    ray_address: str = ""
    workers: int = 0  # 0: the executor's default (resolve_workers)
    propose_ahead: int = 2  # candidates proposed ahead of the oldest unrecorded one (local executor); 1 before 2026-11-24
    threads_per_worker: int = 1
    max_retries: int = 2
    storage: str = ""
    max_proposals: int = 0
    export_onnx: bool = True
    timeout: float = 0.0
    warm_start: str = ""
    report: bool = True

    @property
    def run_dir(self) -> Path:
        return Path(self.out or f"runs/{self.name or self.space}")

    @property
    def proposal_cap(self) -> int:
        return self.max_proposals or 200 * self.budget

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


MAX_SEED = 2**32 - 1
"""The largest seed: numpy's and Optuna's random generators take seeds in [0, 2**32 - 1]."""

# the least value of each integer setting (types are checked before values)
_AT_LEAST = {
    "budget": 1, "history": 0, "workers": 0, "propose_ahead": 1, "threads_per_worker": 1, "max_retries": 0, "max_proposals": 0,
    "training.epochs": 1, "training.train_images": 1, "training.val_images": 1, "training.batch_size": 1,
    "latency.runs": 0, "latency.warmup": 0, "latency.threads": 1, "fidelity.reduction_factor": 2,
}


class ConfigError(UserError):
    """A setting's value is wrong: ``key`` and the ``problem`` (the message reads ``key: problem``)."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


def from_mapping(cls: type, data: Any, source: str, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``, checking every key and type; errors name ``source`` and the key."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: key '{prefix.rstrip('.') or '(top level)'}' must be a mapping, got {data!r}")
    fields = {f.name for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in data.items():
        if key not in fields:
            raise UserError(f"{source}: unknown key '{prefix}{key}' (expected one of: {', '.join(sorted(fields))})")
        values[key] = _coerce(hints[key], value, source, f"{prefix}{key}")
    return cls(**values)


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, source, f"{key}.")
    if origin in (Union, types.UnionType):
        return _coerce(next(a for a in typing.get_args(hint) if a is not type(None)), value, source, key)
    if origin is list:
        if not isinstance(value, list):
            raise UserError(f"{source}: key '{key}' must be a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_coerce(item, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{source}: key '{key}' must be a mapping, got {value!r}")
        _, item = typing.get_args(hint)
        return {str(k): _coerce(item, v, source, f"{key}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise UserError(f"{source}: key '{key}' must be {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> SearchConfig:
    """Options from ``path`` (YAML), then ``overrides`` (flags; dotted keys allowed), checked."""
    data: dict[str, Any] = {}
    where = "command line"
    if path is not None:
        path = _config_file(path)
        where = str(path)
        loaded = read_data_file(path)
        if loaded is not None and not isinstance(loaded, dict):
            raise UserError(f"{path}: expected a mapping of options, got {type(loaded).__name__}")
        data = upgrade_legacy(loaded or {})
    config = from_mapping(SearchConfig, data, where)
    table = config.latency.table
    if path is not None and table and not Path(table).is_absolute():
        config.latency.table = str(path.parent / table)  # the config's own files sit beside it
    for key, value in overrides.items():
        _set(config, key, value)
    _validate(config, lambda key: "command line" if key in overrides else where)
    return config


def shipped_experiments() -> dict[str, Path]:
    """The experiment configs that ship inside the package (the repository's ``experiments/*.yaml``): name → path."""
    root = resources.files("gensynth.experiments")
    files = sorted((Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")), key=lambda p: p.name)
    return {p.stem: p for p in files}


def _config_file(path: str | Path) -> Path:
    """``path``; or, for a bare name that is no file (``demo``), the shipped experiment of that name."""
    text = str(path)
    if Path(text).exists() or "/" in text or os.sep in text or text.endswith((".yaml", ".yml", ".json")):
        return Path(text)
    shipped = shipped_experiments()
    if text not in shipped:
        raise UserError(f"--config {text}: no such file, nor a shipped experiment ({', '.join(shipped)}; see 'gensynth experiments list')")
    return shipped[text]


def _set(config: SearchConfig, dotted: str, value: Any) -> None:
    target: Any = config
    *parents, leaf = dotted.split(".")
    for part in parents:
        target = getattr(target, part)
    hint = typing.get_type_hints(type(target))[leaf]
    setattr(target, leaf, _coerce(hint, value, "command line", dotted))


def validate(config: SearchConfig, where: str = "python") -> None:
    """Check ``config`` exactly as :func:`load_config` checks a YAML file: every field's type, then its value.

    For configs built in Python; a mistake is a one-line :class:`UserError` starting with ``where``.
    """
    _validate(config, lambda key: where)


def _validate(config: SearchConfig, source: Callable[[str], str]) -> None:
    """Types, then values; ``source(key)`` says where the value of ``key`` came from."""
    if not isinstance(config, SearchConfig):
        raise UserError(f"{source('')}: expected a SearchConfig, got {type(config).__name__}")
    _check_types(config, source, "")
    try:
        _check_values(config)
    except ConfigError as err:
        raise UserError(f"{source(err.key)}: key '{err.key}': {err.problem}") from None


def _check_types(section: Any, source: Callable[[str], str], prefix: str) -> None:
    """Every field of the dataclass ``section`` against its type hint, sections recursively."""
    hints = typing.get_type_hints(type(section))
    for f in dataclasses.fields(section):
        key, value, hint = f"{prefix}{f.name}", getattr(section, f.name), hints[f.name]
        if not dataclasses.is_dataclass(hint):
            _coerce(hint, value, source(key), key)
        elif isinstance(value, hint):
            _check_types(value, source, f"{key}.")
        else:
            raise UserError(f"{source(key)}: key '{key}' must be {hint.__name__}, got {type(value).__name__} {value!r}")


def _check_values(config: SearchConfig) -> None:
    """Value checks that types alone cannot express; raises :class:`ConfigError` naming the key."""
    if not 0 <= config.seed <= MAX_SEED:
        raise ConfigError("seed", f"must be an integer in [0, {MAX_SEED}], got {config.seed}")
    for key, least in _AT_LEAST.items():
        if _get(config, key) < least:
            raise ConfigError(key, f"must be >= {least}, got {_get(config, key)}")
    t, o = config.training, config.objective
    numbers = {"training.lr": t.lr, "training.weight_decay": t.weight_decay, "objective.alpha": o.alpha, "objective.beta": o.beta,
               "objective.gamma": o.gamma, **{f"objective.weights.{k}": w for k, w in o.weights.items()}}
    for key, value in numbers.items():
        if not math.isfinite(value):
            raise ConfigError(key, f"must be a finite number, got {value}")
    if t.lr <= 0:
        raise ConfigError("training.lr", f"must be > 0, got {t.lr}")
    if t.weight_decay < 0:
        raise ConfigError("training.weight_decay", f"must be >= 0, got {t.weight_decay}")
    for key in ("space", "data"):
        if not getattr(config, key).strip():
            raise ConfigError(key, "must not be empty")
    if config.name and (config.name in (".", "..") or "/" in config.name or "\\" in config.name or not config.name.isprintable()):
        raise ConfigError("name", f"must be a plain name (it names runs/<name> and the Optuna study; use --out for a path), got {config.name!r}")
    if not config.stages:
        raise ConfigError("stages", "must name at least one evaluation stage")
    rungs = config.fidelity.rungs
    if not rungs or rungs[0] < 1 or any(b <= a for a, b in zip(rungs, rungs[1:])):
        raise ConfigError("fidelity.rungs", f"must be increasing training-length multiples >= 1 (e.g. [1, 3, 9]), got {rungs}")
    if not math.isfinite(config.timeout) or config.timeout < 0:
        raise ConfigError("timeout", f"must be a finite number of seconds >= 0 (0: no limit), got {config.timeout}")
    if config.warm_start not in WARM_STARTS:
        raise ConfigError("warm_start", f"must be one of {list(WARM_STARTS)} ('seed': evaluate the space's seed architecture first), got {config.warm_start!r}")
    if config.latency.backend not in LATENCY_BACKENDS:
        raise ConfigError("latency.backend", f"must be one of {list(LATENCY_BACKENDS)}, got {config.latency.backend!r}")
    if config.latency.table and not config.latency.predict:
        raise ConfigError("latency.table", "is read only when latency.predict is true")
    if config.latency.table and not Path(config.latency.table).is_file():
        raise ConfigError("latency.table", f"no such file: {config.latency.table}")
    if config.latency.backend == "onnxruntime" and _resolved_backend("auto") != "onnxruntime":
        raise ConfigError("latency.backend", "onnxruntime is not installed (pip install 'gensynth[onnx]'), or use 'torch'")
    names = {"sampler": config.sampler, "executor": config.executor, "objective.name": o.name}
    names.update((f"stages[{i}]", stage) for i, stage in enumerate(config.stages))
    registries = _registries()
    for key, name in names.items():
        try:
            registries[key.split("[")[0]].get(name)
        except UserError as err:
            raise ConfigError(key, str(err)) from None
    constraint_specs(config)


def _resolved_backend(backend: str) -> str:
    from ..cost.latency import resolve_backend  # torch: imported only when a config is checked

    return resolve_backend(backend)


def resolve(config: SearchConfig) -> SearchConfig:
    """A copy of ``config`` with ``latency.backend: auto`` and ``workers: 0`` replaced by what they mean on this machine,
    and ``latency.table`` made absolute, or empty when the table was measured on another device profile."""
    backend = _resolved_backend(config.latency.backend)
    table = config.latency.table and str(Path(config.latency.table).resolve())
    if table and not _same_profile(table, backend, config.latency.threads):
        table = ""
    latency = dataclasses.replace(config.latency, backend=backend, table=table)
    return dataclasses.replace(config, latency=latency, workers=resolve_workers(config))


def _same_profile(table: str, backend: str, threads: int) -> bool:
    from ..cost.latency_table import LatencyProfile, read_table  # torch: imported only when a run starts

    return read_table(Path(table), remedy="")[0] == LatencyProfile.current(backend, threads)


def training_threads(config: SearchConfig) -> int:
    """The torch threads a candidate trains with under ``config``: ``threads_per_worker`` in worker processes or Ray tasks,
    else (one local worker, training in the driver) torch's default. The thread count changes the floating-point
    rounding, so ``compare`` trains with the same number to reproduce a run's accuracies."""
    pooled = config.executor == "ray" or (config.executor == "local" and resolve_workers(config) > 1)
    return config.threads_per_worker if pooled else _default_threads()


def _default_threads() -> int:
    import torch  # only when a run or a comparison starts, never at --help

    return torch.get_num_threads()


LOCAL_WORKERS = 2
"""The most workers ``workers: 0`` gives the local executor (measured on 2 cores only; ask for more with ``workers``)."""


def resolve_workers(config: SearchConfig) -> int:
    """``workers``, or for 0 the executor's default: ``local``, this machine's usable cores up to :data:`LOCAL_WORKERS`; otherwise 2."""
    if config.workers:
        return config.workers
    return min(usable_cores(), LOCAL_WORKERS) if config.executor == "local" else 2


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def upgrade_stored(data: Any) -> Any:
    """A run's stored ``config.yaml`` data as this version reads it: :func:`upgrade_legacy`, and a run written before
    ``propose_ahead`` existed (every stored config has every key) proposed one candidate ahead."""
    data = upgrade_legacy(data)
    if isinstance(data, dict) and "propose_ahead" not in data:
        data["propose_ahead"] = 1
    return data


def upgrade_legacy(data: Any) -> Any:
    """Config data as this version reads it: configs written before ``latency.backend`` said ``latency.onnx: false``
    (timed in torch) and ran the local executor with one worker."""
    latency = data.get("latency") if isinstance(data, dict) else None
    if isinstance(latency, dict) and "onnx" in latency and "backend" not in latency:
        data["latency"] = {**{k: v for k, v in latency.items() if k != "onnx"}, "backend": "onnxruntime" if latency["onnx"] else "torch"}
        if data.get("executor", "local") == "local":
            data["workers"] = 1  # the local executor then had one worker whatever 'workers' said (it was Ray's setting)
    return data


def _registries() -> dict[str, Registry[Any]]:
    """The registries that name-valued settings pick from (imported here: their modules import this one)."""
    from .executors import EXECUTORS
    from .objective import OBJECTIVES
    from .samplers import SAMPLERS
    from .stages import STAGES

    return {"sampler": SAMPLERS, "executor": EXECUTORS, "objective.name": OBJECTIVES, "stages": STAGES}


def _get(config: SearchConfig, dotted: str) -> Any:
    """The setting at the dotted key (``training.lr``)."""
    return functools.reduce(getattr, dotted.split("."), config)


def constraint_specs(config: SearchConfig) -> list[tuple[str, dict[str, Any]]]:
    """The ``constraints`` list as (reference, options) pairs: items are ``name`` or ``{name: {options}}``."""
    specs = []
    for i, item in enumerate(config.constraints):
        if isinstance(item, str):
            specs.append((item, {}))
        elif isinstance(item, dict) and len(item) == 1:
            ((ref, options),) = item.items()
            if options is not None and not isinstance(options, dict):
                raise ConfigError(f"constraints[{i}]", f"options of '{ref}' must be a mapping, got {options!r}")
            specs.append((str(ref), options or {}))
        else:
            raise ConfigError(f"constraints[{i}]", f"expected a name or {{name: {{options}}}}, got {item!r}")
    return specs


def dump(config: SearchConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
