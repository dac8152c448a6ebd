"""The run directory: resolved config, Optuna storage, ``candidates.jsonl``, best weights, ``final/``.

``candidates.jsonl`` is append-only, one JSON line per finished candidate,
flushed and fsynced before the generator is told: a crash or ``kill -9``
loses at most the candidate in flight. A torn last line is cut on reopen.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError
from .config import SearchConfig, dump

RESUMABLE = {"out", "budget", "max_proposals", "executor", "ray_address", "workers", "threads_per_worker", "max_retries", "export_onnx"}


@dataclass
class RunStore:
    """Paths and durable writes of one run directory."""

    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def candidates_path(self) -> Path:
        return self.root / "candidates.jsonl"

    @property
    def best_weights_path(self) -> Path:
        return self.root / "best" / "weights.pt"

    @property
    def references_path(self) -> Path:
        return self.root / "references.json"

    @property
    def final_dir(self) -> Path:
        return self.root / "final"

    def storage_url(self, config: SearchConfig) -> str:
        return config.storage or f"sqlite:///{(self.root / 'study.db').resolve()}"

    @classmethod
    def open(cls, config: SearchConfig) -> RunStore:
        """Create the run directory, or check that an existing one was made by the same config."""
        store = cls(config.run_dir)
        if store.root.exists() and not store.root.is_dir():
            raise UserError(f"{store.root}: exists and is not a directory")
        store.root.mkdir(parents=True, exist_ok=True)
        if store.config_path.exists():
            store._check_same(config)
        _atomic_write(store.config_path, dump(config).encode())
        return store

    def _check_same(self, config: SearchConfig) -> None:
        before = yaml.safe_load(self.config_path.read_text()) or {}
        now = config.to_dict()
        for key in sorted(set(before) | set(now)):
            if key not in RESUMABLE and before.get(key) != now.get(key):
                raise UserError(
                    f"{self.config_path}: this run was made with {key}={before.get(key)!r}, now {now.get(key)!r} "
                    "(resume with the same options, or choose a new --out)"
                )

    def records(self) -> list[dict[str, Any]]:
        """Every finished candidate, in order; a torn last line (a kill mid-write) is cut off."""
        if not self.candidates_path.exists():
            return []
        raw = self.candidates_path.read_bytes()
        good_end = raw.rfind(b"\n") + 1
        if good_end < len(raw):
            with open(self.candidates_path, "r+b") as f:
                f.truncate(good_end)
        return [json.loads(line) for line in raw[:good_end].splitlines() if line.strip()]

    def append(self, record: dict[str, Any]) -> None:
        """Durably add one candidate line."""
        with open(self.candidates_path, "a") as f:
            f.write(json.dumps(record, sort_keys=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def save_best_weights(self, weights: bytes) -> None:
        self.best_weights_path.parent.mkdir(exist_ok=True)
        _atomic_write(self.best_weights_path, weights)

    def reference_cache(self) -> dict[str, Any]:
        return json.loads(self.references_path.read_text()) if self.references_path.exists() else {}

    def save_reference_cache(self, cache: dict[str, Any]) -> None:
        _atomic_write(self.references_path, json.dumps(cache, indent=1).encode())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
