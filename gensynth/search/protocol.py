"""The measuring protocol: its fingerprint (what must match for a cached measurement to be re-used) and its noise.

Reference architectures are measured once per run and cached in the run
directory (``references.json``, keyed ``label:structural hash:fingerprint``).
A measurement is only comparable with the candidates' when it was taken the
same way, so the key includes this fingerprint: the stages in order with their
settings (training, latency, seed, the space's proxy adaptation: all held by
the stages that use them) and the dataset. A changed protocol misses the cache
and the references are measured again.

Proxy top-1 on a finite validation set is a binomial estimate: differences
below a couple of :func:`binomial_se` are not evidence of a better network.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

from ..data import ProxyDataset
from .stages import EvaluationStage

IGNORED = frozenset({"threads"})
"""Stage attributes that are not protocol: the intra-op threads a task runs with depend on the machine's cores
(latency's own thread count is ``latency.threads``, part of the protocol)."""


def protocol_fingerprint(stages: Sequence[EvaluationStage], data: ProxyDataset | None = None) -> str:
    """12 hex digits that change whenever a stage's name, class or settings, their order, or the dataset change.

    A stage's settings are its public attributes holding plain data (numbers,
    strings, dataclasses such as :class:`TrainingConfig`, lists and mappings of
    them), except :data:`IGNORED`; any other object counts by its class (its
    ``repr`` may hold an address, which would change the fingerprint every run).
    """
    described = [{"name": stage.name, "class": f"{type(stage).__module__}.{type(stage).__qualname__}",
                  "settings": {k: _plain(v) for k, v in sorted(vars(stage).items())
                               if not k.startswith("_") and k not in IGNORED and k != "name"}}
                 for stage in stages]
    dataset = None if data is None else {"name": data.name, "source": data.source, "classes": data.num_classes,
                                         "train": len(data.train_y), "val": len(data.val_y)}
    text = json.dumps({"stages": described, "data": dataset}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _plain(value: Any) -> Any:
    """``value`` as JSON-able data: dataclasses as mappings, paths as text, other objects by their class."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def binomial_se(accuracy: float, n: int) -> float:
    """The standard error, in percentage points, of a top-1 of ``accuracy`` % measured on ``n`` images: ``sqrt(p(1-p)/n)``."""
    p = min(max(accuracy / 100, 0.0), 1.0)
    return 100 * math.sqrt(p * (1 - p) / n)
