"""The run directory: resolved config, ``candidates.jsonl``, the best candidate's weights, ``final/``.

``candidates.jsonl`` is append-only, one :class:`CandidateRecord` per line,
flushed and fsynced before the generator is told: a crash or ``kill -9``
loses at most the candidates in flight. A torn last line (a kill mid-write) is
cut when a search reopens the run; any other damaged line is a one-line error
naming it. Readers (``gensynth show``) never write.

Weights are kept per candidate (``best/<number>.pt``) and written *before*
the candidate's line, so the best record always has its own weights and a
kill at any instant never pairs one candidate's record with another's weights.
``final/`` is written beside itself and swapped in by renames.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..files import atomic_write
from ..ir.serialize import read_data_file
from .config import SearchConfig, dump, from_mapping, resolve, upgrade_stored
from .record import CandidateRecord, RecordError

RESUMABLE = {"out", "budget", "max_proposals", "executor", "ray_address", "workers", "propose_ahead", "threads_per_worker", "max_retries", "export_onnx", "storage",
             "timeout", "report"}


@dataclass
class RunStore:
    """Paths and durable writes of one run directory."""

    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def constraints_path(self) -> Path:
        return self.root / "constraints.json"

    @property
    def candidates_path(self) -> Path:
        return self.root / "candidates.jsonl"

    @property
    def references_path(self) -> Path:
        return self.root / "references.json"

    @property
    def final_dir(self) -> Path:
        return self.root / "final"

    @property
    def default_storage_url(self) -> str:
        """The run's own Optuna storage: a journal file, ``study.log`` (an SQLite file costs about 0.1 s per trial of
        ~80 genes, a journal 1.5 ms); a run written before keeps its ``study.db``."""
        legacy = self.root / "study.db"
        if legacy.exists():
            return f"sqlite:///{legacy.resolve()}"
        return str((self.root / "study.log").resolve())

    def weights_path(self, number: int) -> Path:
        return self.root / "best" / f"{number}.pt"

    # -- opening ------------------------------------------------------------------------------
    def check_resumable(self, config: SearchConfig, constraints: list[dict[str, Any]]) -> None:
        """Refuse (read-only) an existing run made with other options or other constraints."""
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"{self.root}: exists and is not a directory (choose another --out)")
        if self.config_path.exists():
            before = resolve(from_mapping(SearchConfig, upgrade_stored(read_data_file(self.config_path) or {}), str(self.config_path))).to_dict()
            now = config.to_dict()
            for key in sorted(set(before) | set(now)):
                if key not in RESUMABLE and before.get(key) != now.get(key):
                    raise UserError(
                        f"{self.config_path}: this run was made with {key}={before.get(key)!r}, now {now.get(key)!r} "
                        "(resume with the same options, or choose a new --out)"
                    )
        if self.constraints_path.exists():
            before_constraints = _read_json(self.constraints_path)
            if before_constraints != constraints:
                names = lambda cs: [c.get("name") for c in cs] if isinstance(cs, list) else cs  # noqa: E731
                raise UserError(
                    f"{self.constraints_path}: this run was made with constraints {names(before_constraints)} "
                    f"(with their options), now {names(constraints)} (resume with the same constraints, or choose a new --out)"
                )

    def create(self) -> bool:
        """Make the directory; True when this call created it (a failed start then removes it)."""
        existed = self.root.exists()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise UserError(f"{self.root}: cannot create or write the run directory ({err.strerror})") from None
        return not existed

    def write_config(self, config: SearchConfig, constraints: list[dict[str, Any]]) -> None:
        atomic_write(self.config_path, dump(config).encode())
        atomic_write(self.constraints_path, json.dumps(constraints, indent=1).encode())

    # -- candidates ---------------------------------------------------------------------------
    def records(self, repair: bool = False) -> list[CandidateRecord]:
        """Every finished candidate, in file order; ``repair`` cuts a torn last line (a kill mid-write)."""
        if not self.candidates_path.exists():
            return []
        raw = self.candidates_path.read_bytes()
        good_end = raw.rfind(b"\n") + 1
        if repair and good_end < len(raw):
            with open(self.candidates_path, "r+b") as f:
                f.truncate(good_end)
        records = []
        for i, line in enumerate(raw[:good_end].splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(CandidateRecord.from_json(line.decode()))
            except (RecordError, UnicodeDecodeError) as err:
                raise UserError(f"{self.candidates_path}:{i}: damaged candidate record ({err}); "
                                "restore the file or remove the lines from here on to resume") from None
        numbers = [r.number for r in records]
        if len(set(numbers)) != len(numbers):
            twice = next(n for n in numbers if numbers.count(n) > 1)
            raise UserError(f"{self.candidates_path}: candidate {twice} is recorded twice (two searches wrote this run?)")
        return records

    def append(self, record: CandidateRecord) -> None:
        """Durably add one candidate line."""
        with open(self.candidates_path, "a") as f:
            f.write(record.to_json() + "\n")
            f.flush()
            os.fsync(f.fileno())

    # -- weights and final/ ---------------------------------------------------------------------
    def save_weights(self, number: int, weights: bytes) -> None:
        """Candidate ``number``'s trained weights, durable before its record is."""
        self.weights_path(number).parent.mkdir(exist_ok=True)
        atomic_write(self.weights_path(number), weights)

    def keep_weights_of(self, number: int | None) -> None:
        """Delete every candidate's weights but ``number``'s (the best)."""
        folder = self.root / "best"
        for path in folder.glob("*.pt") if folder.is_dir() else ():
            if path.name != f"{number}.pt":
                path.unlink(missing_ok=True)

    def replace_final(self, staged: Path) -> Path:
        """Swap ``staged`` in as ``final/`` by renames (a kill leaves the old or the new one, never a mix)."""
        old = self.root / "final.old"
        shutil.rmtree(old, ignore_errors=True)
        if self.final_dir.exists():
            os.replace(self.final_dir, old)
        os.replace(staged, self.final_dir)
        shutil.rmtree(old, ignore_errors=True)
        return self.final_dir

    def staging_dir(self) -> Path:
        staged = self.root / "final.partial"
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir()
        return staged

    # -- references -----------------------------------------------------------------------------
    def reference_cache(self) -> dict[str, Any]:
        return _read_json(self.references_path) if self.references_path.exists() else {}

    def save_reference_cache(self, cache: dict[str, Any]) -> None:
        atomic_write(self.references_path, json.dumps(cache, indent=1).encode())


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: damaged ({err}); remove it to measure again") from None
