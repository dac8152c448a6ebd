"""The search configuration: dataclasses, read from YAML and flags, checked key by key."""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from ..errors import UserError
from ..ir.serialize import read_data_file

DEFAULT_CONSTRAINTS = ["columnar", "pointwise_strided", "antialiased_downsampling"]


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
class LatencyConfig:
    """Batch-1 latency at the deployment shape: ``warmup`` runs, then the median of ``runs``."""

    runs: int = 10
    warmup: int = 3
    threads: int = 1
    onnx: bool = False


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
    data: str = "fashion-mnist"
    training: TrainingConfig = field(default_factory=TrainingConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    executor: str = "local"
    ray_address: str = ""
    workers: int = 2
    threads_per_worker: int = 1
    max_retries: int = 2
    storage: str = ""
    max_proposals: int = 0
    export_onnx: bool = True

    @property
    def run_dir(self) -> Path:
        return Path(self.out or f"runs/{self.name or self.space}")

    @property
    def proposal_cap(self) -> int:
        return self.max_proposals or 200 * self.budget

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SAMPLERS = ("tpe", "random", "nsga2")
EXECUTORS = ("local", "ray")


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
        path = Path(path)
        where = str(path)
        loaded = read_data_file(path)
        if loaded is not None and not isinstance(loaded, dict):
            raise UserError(f"{path}: expected a mapping of options, got {type(loaded).__name__}")
        data = loaded or {}
    config = from_mapping(SearchConfig, data, where)
    for key, value in overrides.items():
        _set(config, key, value)
    check(config, where)
    return config


def _set(config: SearchConfig, dotted: str, value: Any) -> None:
    target: Any = config
    *parents, leaf = dotted.split(".")
    for part in parents:
        target = getattr(target, part)
    hint = typing.get_type_hints(type(target))[leaf]
    setattr(target, leaf, _coerce(hint, value, "command line", dotted))


def check(config: SearchConfig, where: str) -> None:
    """Value checks that types alone cannot express."""
    if config.budget < 1:
        raise UserError(f"{where}: budget must be >= 1, got {config.budget}")
    if config.sampler not in SAMPLERS:
        raise UserError(f"{where}: sampler {config.sampler!r} unknown (expected one of: {', '.join(SAMPLERS)})")
    if config.executor not in EXECUTORS:
        raise UserError(f"{where}: executor {config.executor!r} unknown (expected one of: {', '.join(EXECUTORS)})")
    if config.history < 0:
        raise UserError(f"{where}: history must be >= 0 (0: the sampler sees every trial), got {config.history}")
    for key in ("workers", "threads_per_worker"):
        if getattr(config, key) < 1:
            raise UserError(f"{where}: {key} must be >= 1, got {getattr(config, key)}")
    t = config.training
    if min(t.epochs, t.train_images, t.val_images, t.batch_size) < 1 or t.lr <= 0:
        raise UserError(f"{where}: training epochs, train_images, val_images, batch_size and lr must be positive")
    if config.latency.runs < 0 or config.latency.threads < 1:
        raise UserError(f"{where}: latency.runs must be >= 0 and latency.threads >= 1")


def constraint_specs(config: SearchConfig) -> list[tuple[str, dict[str, Any]]]:
    """The ``constraints`` list as (reference, options) pairs: items are ``name`` or ``{name: {options}}``."""
    specs = []
    for i, item in enumerate(config.constraints):
        if isinstance(item, str):
            specs.append((item, {}))
        elif isinstance(item, dict) and len(item) == 1:
            ((ref, options),) = item.items()
            if options is not None and not isinstance(options, dict):
                raise UserError(f"constraints[{i}]: options of '{ref}' must be a mapping, got {options!r}")
            specs.append((str(ref), options or {}))
        else:
            raise UserError(f"constraints[{i}]: expected a name or {{name: {{options}}}}, got {item!r}")
    return specs


def dump(config: SearchConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
