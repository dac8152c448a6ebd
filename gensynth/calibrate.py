"""``gensynth calibrate``: how well every probe of the inquisitor ranks architectures, against a high-fidelity reference.

N distinct, structurally feasible architectures are sampled from a space. Each gets a
*reference* accuracy (a long training run at a resolution nearer deployment, validated on
thousands of images, over several seeds) and the value of every *probe*: each named proxy
training protocol (over the same number of seeds), NetScore on each protocol's accuracy,
and the zero-cost proxies of the ``screen`` stage with the ``params`` and ``macs``
baselines. For each probe: Spearman ρ and Kendall τ against the reference's mean accuracy,
its seed-to-seed ρ and its cost per candidate; the reference's own seed-to-seed ρ is the
ceiling. Every measurement is appended to ``results.jsonl`` as soon as it is taken
(flushed and fsynced) under its (architecture hash, fingerprint, seed) key, and a rerun
skips what is there. See docs/calibration.md.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Sequence

from . import interrupts
from .calibration_report import write_report
from .constraint import Candidate
from .data import ProxyDataset, load_dataset
from .data.registry import FASHION_MNIST, FASHION_MNIST_FULL, fashion_mnist_dir
from .errors import UserError
from .ir.graph import ArchGraph
from .ir.serialize import to_dict
from .plugins import instantiate
from .rank_agreement import Agreement, mean, mean_of_all, number, rank_agreement, repeats_for, seed_agreement, spearman_brown
from .search.config import DEFAULT_CONSTRAINTS, LatencyConfig, ObjectiveConfig, SearchConfig, TrainingConfig, load_config
from .search.inquisitor import FailureGuard, ProbeTask, torch_threads
from .search.objective import netscore
from .search.training import proxy_graph, proxy_train
from .search.zero_cost import SCREEN_BATCH, SCREENED, ZERO_COST, fixed_batch, init_model
from .space import SearchSpace, load_space
from .space.space import ProxyAdaptation

FORMAT = "gensynth-calibration/1"
RESULTS = "results.jsonl"
DEFAULT_RESOLUTION = 64
"""The reference's resolution: a network built for 224 px with total stride 32 keeps 2×2 maps (1×1 at 32 px), at 4× the
proxy's cost per step; Fashion-MNIST's images are 28 px, so more pixels would add compute, not detail."""
STEPS_FACTOR = 10
"""The reference trains this many times the default protocol's optimisation steps (by default)."""
REFERENCE_VAL_IMAGES = 10_000
"""The reference's validation images: all of Fashion-MNIST's test split (binomial SE about 0.3 points at 90 %)."""
REFERENCE_SEED_BASE = 1000
"""The reference's training seeds start here: initial weights independent of the probes' (seeds 0, 1, ...)."""
ZERO_COST_PROBES = (*SCREENED, "params", "macs")
AUTO = "auto"
TRAINING_KEYS = tuple(f.name for f in dataclasses.fields(TrainingConfig))
ADAPTATION_KEYS = ("resolution", "skip_reductions")


# -- plain data -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Protocol:
    """A training protocol: settings, the graph adaptation (resolution), the dataset and its subset seed, the training seeds."""

    name: str
    training: TrainingConfig
    adaptation: ProxyAdaptation
    data: str
    data_seed: int
    seeds: tuple[int, ...]

    @property
    def fingerprint(self) -> str:
        """12 hex digits of everything that decides a measurement but the architecture and the training seed."""
        return fingerprint({"kind": "train", "training": dataclasses.asdict(self.training),
                            "adaptation": dataclasses.asdict(self.adaptation), "data": self.data, "data_seed": self.data_seed})

    def steps(self, data: ProxyDataset) -> int:
        """Optimisation steps of one training run on ``data`` (the dataset loaded for this protocol)."""
        return self.training.epochs * data.num_batches("train", self.training.batch_size)

    def describe(self, data: ProxyDataset) -> dict[str, Any]:
        """The settings, as ``calibration.json`` records them, with the images actually used."""
        return {"name": self.name, "fingerprint": self.fingerprint, "data": self.data, "data_seed": self.data_seed,
                "resolution": self.adaptation.resolution, "skip_reductions": self.adaptation.skip_reductions,
                "steps": self.steps(data), "train_images": len(data.train_y), "val_images": len(data.val_y),
                "seeds": list(self.seeds), "training": dataclasses.asdict(self.training)}


@dataclass(frozen=True)
class ZeroCost:
    """The screen stage's setting: proxies scored at initialisation on one fixed batch of the default protocol's data."""

    adaptation: ProxyAdaptation
    data: str
    train_images: int
    val_images: int
    data_seed: int
    seeds: tuple[int, ...]
    proxies: tuple[str, ...] = ZERO_COST_PROBES
    batch_size: int = SCREEN_BATCH

    @property
    def fingerprint(self) -> str:
        return fingerprint({"kind": "zero-cost", **{k: v for k, v in dataclasses.asdict(self).items() if k != "seeds"}})


@dataclass(frozen=True)
class Architecture:
    """A sampled architecture: its structural hash, the seed of the draw that gave it (``spaces sample --seed``), its set."""

    digest: str
    graph: ArchGraph
    draw_seed: int
    set: str = "calibration"


@dataclass
class Settings:
    """What ``gensynth calibrate`` was asked to do (the defaults are the command's)."""

    out: Path
    space: str = "dcac"
    n: int = 30
    seed: int = 0
    seeds: int = 2
    reference_seeds: int | None = None  # None: ``seeds``
    protocols: tuple[str, ...] = ("default",)
    resolution: int = DEFAULT_RESOLUTION
    reference_steps: int | None = None  # None: STEPS_FACTOR x the default protocol's
    reference_val_images: int = REFERENCE_VAL_IMAGES
    reference_data: str = AUTO
    holdout_seed: int | None = None
    threads: int = 1
    report_only: bool = False  # measure nothing: summarise what results.jsonl holds


@dataclass
class Plan:
    """Everything resolved from :class:`Settings`: what to measure, on which architectures, with which data."""

    space: SearchSpace
    reference: Protocol
    reference_note: str
    protocols: list[Protocol]
    zero_cost: ZeroCost
    architectures: list[Architecture]
    data: dict[str, ProxyDataset] = field(default_factory=dict)  # by fingerprint


def fingerprint(settings: dict[str, Any]) -> str:
    """A stable 12-hex-digit hash of JSON-able ``settings`` (key order does not matter)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


# -- sampling ---------------------------------------------------------------------------------------------

def sample_architectures(space: SearchSpace, n: int, first_seed: int, exclude: Collection[str] = (), set_name: str = "calibration",
                         max_draws: int | None = None) -> list[Architecture]:
    """``n`` distinct random graphs of ``space`` that keep rules 1-3, drawn with seeds ``first_seed``, ``first_seed + 1``, ...

    Hashes in ``exclude`` are skipped (a hold-out set disjoint from the calibration set). Gives up
    with a :class:`UserError` after ``max_draws`` draws (default: 5,000 per architecture; about 1 in 200
    random ``dcac`` genomes keeps all three rules).
    """
    rules = [instantiate(name) for name in DEFAULT_CONSTRAINTS]
    found: dict[str, Architecture] = {}
    limit = max_draws if max_draws is not None else 5000 * n
    for seed in range(first_seed, first_seed + limit):
        if len(found) == n:
            break
        genome = space.sample(seed)
        graph = space.to_graph(genome)
        digest = graph.structural_hash()
        if digest in found or digest in exclude:
            continue
        if all(rule.check(Candidate(genome, graph, digest)).satisfied for rule in rules):
            found[digest] = Architecture(digest, graph, seed, set_name)
    if len(found) < n:
        raise UserError(f"space '{space.name}': only {len(found)} distinct structurally feasible architecture(s) in {limit} draws "
                        f"from seed {first_seed} (asked for {n})")
    return list(found.values())


def feasible_architectures(n: int, first_seed: int, space: SearchSpace | str = "dcac") -> dict[str, ArchGraph]:
    """``n`` distinct random graphs that keep rules 1-3 (by structural hash), by sampling seeds from ``first_seed`` on."""
    space = load_space(space) if isinstance(space, str) else space
    return {a.digest: a.graph for a in sample_architectures(space, n, first_seed)}


# -- protocols --------------------------------------------------------------------------------------------

def default_protocol(space: SearchSpace, seeds: int) -> Protocol:
    """The run's default proxy protocol: ``SearchConfig()``'s training and data, the space's proxy adaptation."""
    config = SearchConfig()
    return Protocol("default", config.training, space.proxy, config.data, config.seed, tuple(range(config.seed, config.seed + seeds)))


def parse_protocols(items: Sequence[str], space: SearchSpace, seeds: int) -> list[Protocol]:
    """The protocols named: ``default``; a config file or shipped experiment (its ``training`` and ``data``);
    or ``key=value[+key=value...]`` overrides of the default (training keys, ``resolution``, ``skip_reductions``, ``data``).

    ``default`` comes first, added when not named.
    """
    names = list(dict.fromkeys(item.strip() for item in items if item.strip()))
    if "default" not in names:
        names.insert(0, "default")
    protocols = []
    for name in names:
        if name == "default":
            protocols.append(default_protocol(space, seeds))
        elif "=" in name:
            protocols.append(_inline_protocol(name, space, seeds))
        else:
            config = load_config(name, {})
            protocols.append(Protocol(name, config.training, space.proxy, config.data, config.seed,
                                      tuple(range(config.seed, config.seed + seeds))))
    return protocols


def _inline_protocol(spec: str, space: SearchSpace, seeds: int) -> Protocol:
    """``epochs=4+train_images=2048+resolution=64``: the default protocol with these settings changed."""
    training: dict[str, Any] = {}
    adaptation = dataclasses.asdict(space.proxy)
    data = SearchConfig().data
    for part in spec.split("+"):
        key, sep, text = (s.strip() for s in part.partition("="))
        if not sep or not key or not text:
            raise UserError(f"--protocols: '{part}' in '{spec}' is not key=value")
        value = _scalar(text)
        if key == "data":
            data = str(text)
        elif key in ADAPTATION_KEYS:
            least = 1 if key == "resolution" else 0
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise UserError(f"--protocols: '{key}' must be an integer >= {least}, got {text!r}")
            adaptation[key] = value
        elif key in TRAINING_KEYS:
            training[f"training.{key}"] = value
        else:
            raise UserError(f"--protocols: unknown key '{key}' in '{spec}' (expected one of: "
                            f"{', '.join([*TRAINING_KEYS, *ADAPTATION_KEYS, 'data'])})")
    config = load_config(None, {**training, "data": data})  # checks every type and value
    return Protocol(spec, config.training, ProxyAdaptation(**adaptation), config.data, config.seed,
                    tuple(range(config.seed, config.seed + seeds)))


def _scalar(text: str) -> int | float | bool | str:
    """A command-line value as the config file would hold it: an integer, a number (``4e-3`` too), a boolean, or text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def fit_steps(steps: int, batch_size: int, available: int) -> tuple[int, int]:
    """``(epochs, train_images)`` that give at least ``steps`` optimisation steps from ``available`` training images.

    One epoch over ``steps × batch_size`` distinct images when there are that many; else as few
    epochs as it takes, each over the same subset.
    """
    if steps * batch_size <= available:
        return 1, steps * batch_size
    per_epoch = max(1, available // batch_size)
    epochs = math.ceil(steps / per_epoch)
    per_epoch = math.ceil(steps / epochs)  # spread evenly: no more images than needed
    return epochs, per_epoch * batch_size


def reference_protocol(settings: Settings, space: SearchSpace) -> tuple[Protocol, str]:
    """The high-fidelity reference and a sentence about its dataset (the fallback when the full set is missing)."""
    base = default_protocol(space, 1)
    t = base.training
    steps = settings.reference_steps or STEPS_FACTOR * t.epochs * max(1, t.train_images // t.batch_size)
    spec, note = settings.reference_data, ""
    if spec == AUTO:
        try:
            fashion_mnist_dir()
            spec = FASHION_MNIST_FULL
        except UserError:
            spec = FASHION_MNIST
            note = (f"'{FASHION_MNIST_FULL}' is not installed (apt-get install dataset-fashion-mnist): the reference falls back to "
                    f"the embedded subset's whole validation split, fewer than {settings.reference_val_images} images")
    everything = load_dataset(spec)
    epochs, train_images = fit_steps(steps, base.training.batch_size, len(everything.train_y))
    training = dataclasses.replace(base.training, epochs=epochs, train_images=train_images, val_images=settings.reference_val_images)
    seeds = tuple(range(REFERENCE_SEED_BASE, REFERENCE_SEED_BASE + (settings.reference_seeds or settings.seeds)))
    return Protocol("reference", training, ProxyAdaptation(settings.resolution, 0), spec, 0, seeds), note


def plan(settings: Settings) -> Plan:
    """Resolve ``settings``: the space, the protocols, the datasets, the architectures (a mistake is refused before any work)."""
    space = load_space(settings.space)
    reference, note = reference_protocol(settings, space)
    protocols = parse_protocols(settings.protocols, space, settings.seeds)
    base = protocols[0]
    zero_cost = ZeroCost(base.adaptation, base.data, base.training.train_images, base.training.val_images, base.data_seed, base.seeds)
    data = {p.fingerprint: load_dataset(p.data, train_limit=p.training.train_images, val_limit=p.training.val_images, seed=p.data_seed)
            for p in [reference, *protocols]}
    data[zero_cost.fingerprint] = load_dataset(zero_cost.data, train_limit=zero_cost.train_images, val_limit=zero_cost.val_images,
                                               seed=zero_cost.data_seed)
    if note:
        note += f" ({len(data[reference.fingerprint].val_y)})"
    architectures = sample_architectures(space, settings.n, settings.seed)
    if settings.holdout_seed is not None:
        architectures += sample_architectures(space, settings.n, settings.holdout_seed, {a.digest for a in architectures}, "holdout")
    return Plan(space, reference, note, protocols, zero_cost, architectures, data)


# -- the results file -------------------------------------------------------------------------------------

Key = tuple[str, str, int | None]


class ResultStore:
    """``results.jsonl``: one JSON line per measurement, keyed (architecture hash, fingerprint, seed); appended and fsynced."""

    def __init__(self, path: Path, read_only: bool = False):
        self.path = path
        self.records: dict[Key, dict[str, Any]] = {}
        self.damaged = 0
        self._file = None
        try:
            if not read_only:
                path.parent.mkdir(parents=True, exist_ok=True)
            text = path.read_text() if path.exists() else ""
            if not read_only:  # read only: another command may be appending now
                self._file = open(path, "a")
        except OSError as err:
            raise UserError(f"--out {path.parent}: cannot {'read' if read_only else 'write'} ({err.strerror or err})") from None
        for line in text.splitlines():
            try:
                record = json.loads(line)
                self.records[(record["arch"], record["fingerprint"], record["seed"])] = record
            except (ValueError, KeyError, TypeError):
                self.damaged += 1  # a line cut by a kill: measured again
        if self._file and text and not text.endswith("\n"):
            self._file.write("\n")

    def get(self, arch: str, fp: str, seed: int | None) -> dict[str, Any] | None:
        return self.records.get((arch, fp, seed))

    def put(self, record: dict[str, Any]) -> None:
        """Append ``record`` durably: on disk before the next measurement starts."""
        assert self._file is not None, "a read-only store"
        try:
            self._file.write(json.dumps(record, sort_keys=True) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as err:
            raise UserError(f"{self.path}: cannot write ({err.strerror or err})") from None
        self.records[(record["arch"], record["fingerprint"], record["seed"])] = record

    def close(self) -> None:
        if self._file:
            self._file.close()


# -- measuring --------------------------------------------------------------------------------------------

Outcome = tuple[bool, dict[str, Any], str]
"""``(ok, values, reason)``."""


def train_once(graph: ArchGraph, protocol: Protocol, data: ProxyDataset, seed: int) -> Outcome:
    """One seeded training run under ``protocol``: top-1 %, last loss, steps; a crash or divergence is the reason."""
    with FailureGuard() as guard:
        result = proxy_train(graph, data, protocol.adaptation, protocol.training, seed)
        return True, {"accuracy": result.accuracy, "train_loss": number(result.train_loss), "steps": result.steps,
                      "val_images": len(data.val_y)}, ""
    return False, {}, guard.reason


def zero_cost_once(graph: ArchGraph, zc: ZeroCost, data: ProxyDataset, seed: int) -> Outcome:
    """Every zero-cost proxy of ``zc`` as the screen stage scores it (same network, seed and batch), each with its seconds.

    ``values`` holds the finite scores and ``seconds`` (``setup``: building and the batch; then one entry per proxy);
    a proxy that crashes or is not finite is left out, its reason in ``failed``.
    """
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    with FailureGuard() as guard:
        adapted = proxy_graph(graph, zc.adaptation, data.num_classes)
        model = init_model(adapted, seed)
        inputs, targets = fixed_batch(data, zc.batch_size, zc.adaptation.resolution, adapted.input_channels, seed)
        seconds["setup"] = time.perf_counter() - start
        values: dict[str, Any] = {}
        failed: dict[str, str] = {}
        for name in zc.proxies:
            start = time.perf_counter()
            with FailureGuard() as one:
                value = float(ZERO_COST.get(name)(model, inputs, targets, adapted))
                if math.isfinite(value):
                    values[name] = value
                else:
                    failed[name] = f"not finite ({value})"
            if one.reason:
                failed[name] = one.reason
            seconds[name] = time.perf_counter() - start
        reason = "; ".join(f"{name}: {why}" for name, why in failed.items())
        return bool(values), {**values, "seconds": seconds, "failed": failed}, reason
    return False, {"seconds": seconds}, guard.reason


def deployment_costs(graph: ArchGraph, threads: int) -> Outcome:
    """Params and MACs at the deployment shape, as the ``probe`` stage measures them (NetScore reads these)."""
    result = ProbeTask(to_dict(graph), LatencyConfig(runs=0), threads)()
    return result.ok, dict(result.measurements), result.reason


COSTS_FINGERPRINT = fingerprint({"kind": "deployment-costs"})


def measure(plan: Plan, store: ResultStore, threads: int, say: Callable[[str], None]) -> int:
    """Take every measurement ``store`` lacks, architecture by architecture; returns how many were taken."""
    taken = 0
    total = len(plan.architectures)
    zc_data = plan.data[plan.zero_cost.fingerprint]
    for i, arch in enumerate(plan.architectures, 1):
        jobs: list[tuple[str, str, int | None, Callable[[], Outcome]]] = [
            ("costs", COSTS_FINGERPRINT, None, lambda: deployment_costs(arch.graph, threads))]
        jobs += [("zero-cost", plan.zero_cost.fingerprint, s, lambda s=s: zero_cost_once(arch.graph, plan.zero_cost, zc_data, s))
                 for s in plan.zero_cost.seeds]
        for p in [*plan.protocols, plan.reference]:
            jobs += [(p.name, p.fingerprint, s, lambda p=p, s=s: train_once(arch.graph, p, plan.data[p.fingerprint], s)) for s in p.seeds]
        for probe, fp, seed, job in jobs:
            if store.get(arch.digest, fp, seed) is not None:
                continue
            interrupts.check()
            start = time.perf_counter()
            with torch_threads(threads):
                ok, values, reason = job()
            seconds = time.perf_counter() - start
            store.put({"arch": arch.digest, "fingerprint": fp, "seed": seed, "probe": probe, "ok": ok, "values": values,
                       "reason": reason, "seconds": round(seconds, 4)})
            taken += 1
            shown = f"{values['accuracy']:.2f} %" if ok and "accuracy" in values else ("ok" if ok else f"FAILED: {reason}")
            seed_text = "" if seed is None else f" seed {seed}"
            say(f"[{i}/{total}] {arch.digest[:10]} {probe}{seed_text}: {shown} ({seconds:.1f} s)")
    return taken


# -- summarising ----------------------------------------------------------------------------------------

@dataclass
class ProbeValues:
    """One probe's values over a set's architectures: ``by_seed[i][j]`` for seed i, architecture j (``None``: failed)."""

    name: str
    kind: str
    by_seed: list[list[float | None]]
    seconds: list[list[float | None]]

    def means(self) -> list[float | None]:
        """Per architecture, the mean over seeds; ``None`` unless every seed succeeded."""
        return [mean_of_all(column) for column in zip(*self.by_seed)]


def probe_values(plan: Plan, store: ResultStore, archs: Sequence[Architecture]) -> tuple[ProbeValues, list[ProbeValues]]:
    """The reference's accuracies and every probe's values over ``archs``, from the store."""
    def get(arch: Architecture, fp: str, seed: int | None) -> dict[str, Any] | None:
        record = store.get(arch.digest, fp, seed)
        return record if record and record["ok"] else None

    def accuracies(p: Protocol) -> tuple[list[list[float | None]], list[list[float | None]]]:
        found = [[get(a, p.fingerprint, s) for a in archs] for s in p.seeds]
        return ([[r["values"]["accuracy"] if r else None for r in row] for row in found],
                [[r["seconds"] if r else None for r in row] for row in found])

    reference = ProbeValues("reference", "reference", *accuracies(plan.reference))
    costs = [get(a, COSTS_FINGERPRINT, None) for a in archs]
    objective = ObjectiveConfig()
    probes = []
    for p in plan.protocols:
        acc, secs = accuracies(p)
        probes.append(ProbeValues(p.name, "training", acc, secs))
        scores = [[netscore(v, c["values"]["params"], c["values"]["macs"], objective.alpha, objective.beta, objective.gamma)
                   if v is not None and c else None for v, c in zip(row, costs)] for row in acc]
        cost_secs = [[s + c["seconds"] if s is not None and c else None for s, c in zip(row, costs)] for row in secs]
        probes.append(ProbeValues(f"netscore[{p.name}]", "netscore", scores, cost_secs))
    zc = [[get(a, plan.zero_cost.fingerprint, s) for a in archs] for s in plan.zero_cost.seeds]
    for name in plan.zero_cost.proxies:
        values = [[number(r["values"].get(name)) if r else None for r in row] for row in zc]
        secs = [[r["values"]["seconds"]["setup"] + r["values"]["seconds"][name] if r and name in r["values"] else None for r in row]
                for row in zc]
        baseline = name in ("params", "macs")
        probes.append(ProbeValues(name if baseline else f"zc_{name}", "baseline" if baseline else "zero-cost", values, secs))
    return reference, probes


RELIABILITY_TARGET = 0.9
"""The seed-to-seed ρ the issue asks of the reference; the report says how many seeds' mean would reach it."""


def summarise_set(plan: Plan, store: ResultStore, archs: Sequence[Architecture]) -> dict[str, Any]:
    """A set's figures: the reference's noise and ceiling; per probe ρ, τ, one-seed ρ, seed-to-seed ρ, attainable ρ, cost.

    Predicted with the Spearman-Brown prophecy from the seed-to-seed ρ: the reliability of the
    reference's mean over its seeds, the seeds whose mean would reach 0.9, and per probe the
    highest ρ it could reach against this reference, ``sqrt(r_probe · r_reference)`` (the
    attenuation bound: both means' reliabilities; a seed-independent baseline counts as 1).
    """
    reference, probes = probe_values(plan, store, archs)
    truth = reference.means()
    kept = [t for t in truth if t is not None]
    sds = [statistics.stdev(c) for c in zip(*reference.by_seed) if len(c) > 1 and all(v is not None for v in c)]
    ceiling = seed_agreement(reference.by_seed)
    reliability = spearman_brown(ceiling, len(reference.by_seed))
    summary: dict[str, Any] = {
        "architectures": len(archs), "reference_ok": len(kept),
        "reference": {"seed_rho": ceiling, "mean_reliability": reliability, "seeds_for_0.9": repeats_for(ceiling, RELIABILITY_TARGET),
                      "mean_accuracy": mean(kept),
                      "cost_s": mean(s for row in reference.seconds for s in row),
                      "sd_across_architectures": statistics.stdev(kept) if len(kept) > 1 else None,
                      "mean_seed_sd": mean(sds), "range": [min(kept), max(kept)] if kept else None},
        "probes": {},
    }
    for probe in probes:
        overall = rank_agreement(probe.means(), truth)
        one_seed = [rank_agreement(row, truth).spearman for row in probe.by_seed]
        per_seed = [s for row in probe.seconds for s in row if s is not None]
        cost = mean(per_seed)
        seed_rho = seed_agreement(probe.by_seed)
        own = 1.0 if probe.kind == "baseline" else spearman_brown(seed_rho, len(probe.by_seed))
        summary["probes"][probe.name] = {
            "kind": probe.kind, "spearman": overall.spearman, "kendall": overall.kendall, "n": overall.n,
            "spearman_one_seed": mean(one_seed), "seed_rho": seed_rho,
            "attainable": math.sqrt(own * reliability) if own is not None and reliability is not None else None,
            "seeds": len(probe.by_seed), "cost_s": cost, "cost_s_all_seeds": None if cost is None else cost * len(probe.by_seed),
        }
    return summary


def rows(plan: Plan, store: ResultStore) -> list[dict[str, Any]]:
    """Every architecture's numbers: reference accuracies by seed and every probe's values by seed."""
    out = []
    for arch in plan.architectures:
        reference, probes = probe_values(plan, store, [arch])
        out.append({"hash": arch.digest, "set": arch.set, "draw_seed": arch.draw_seed,
                    "reference": [row[0] for row in reference.by_seed], "probes": {p.name: [row[0] for row in p.by_seed] for p in probes}})
    return out


def plan_records(plan: Plan, store: ResultStore) -> list[dict[str, Any]]:
    """The stored measurements this plan uses (a results file may also hold other settings' measurements)."""
    digests = {a.digest for a in plan.architectures}
    wanted = {plan.reference.fingerprint, COSTS_FINGERPRINT, plan.zero_cost.fingerprint, *(p.fingerprint for p in plan.protocols)}
    return [r for (arch, fp, _), r in store.records.items() if arch in digests and fp in wanted]


def failures(plan: Plan, store: ResultStore) -> list[dict[str, Any]]:
    """Every failed measurement (and every zero-cost proxy left out) with its reason."""
    return [{"arch": r["arch"], "probe": r["probe"], "seed": r["seed"], "reason": r["reason"]}
            for r in plan_records(plan, store) if not r["ok"] or r["values"].get("failed")]


def summarise(plan: Plan, store: ResultStore, settings: Settings, command: str, machine: str, seconds: float) -> dict[str, Any]:
    """``calibration.json``'s content."""
    sets = {name: summarise_set(plan, store, [a for a in plan.architectures if a.set == name])
            for name in ("calibration", "holdout") if any(a.set == name for a in plan.architectures)}
    result: dict[str, Any] = {
        "format": FORMAT, "command": command, "machine": machine, "seconds": round(seconds, 1),
        "measured_s": round(sum(r["seconds"] for r in plan_records(plan, store)), 1),
        "space": plan.space.name, "n": settings.n, "seed": settings.seed, "holdout_seed": settings.holdout_seed,
        "reference": {**plan.reference.describe(plan.data[plan.reference.fingerprint]), "note": plan.reference_note},
        "protocols": [p.describe(plan.data[p.fingerprint]) for p in plan.protocols],
        "zero_cost": {**dataclasses.asdict(plan.zero_cost), "fingerprint": plan.zero_cost.fingerprint},
        "objective": dataclasses.asdict(ObjectiveConfig()),
        "sets": sets, "failures": failures(plan, store), "rows": rows(plan, store),
    }
    if "holdout" in sets:
        ranked = [(v["spearman"], k) for k, v in sets["calibration"]["probes"].items() if v["spearman"] is not None]
        if ranked:
            best = max(ranked)[1]
            result["selected"] = {"probe": best, "calibration_spearman": sets["calibration"]["probes"][best]["spearman"],
                                  "holdout_spearman": sets["holdout"]["probes"][best]["spearman"]}
    return result


# -- the command ------------------------------------------------------------------------------------------

def calibrate(settings: Settings, command: str, say: Callable[[str], None] = lambda line: None) -> tuple[dict[str, Any], list[Path]]:
    """Plan, measure what ``results.jsonl`` lacks (unless ``report_only``), summarise and write the report; returns the summary
    and the files written."""
    from .compare import machine

    started = time.perf_counter()
    the_plan = plan(settings)  # every mistake in the settings is refused before the output folder is touched
    store = ResultStore(settings.out / RESULTS, read_only=settings.report_only)
    try:
        for name in ("calibration", "holdout"):
            seeds = [a.draw_seed for a in the_plan.architectures if a.set == name]
            if seeds:
                say(f"{name} set: {len(seeds)} architectures of '{the_plan.space.name}' (draw seeds {min(seeds)} to {max(seeds)})")
        if the_plan.reference_note:
            say(the_plan.reference_note)
        if store.records:
            say(f"{len(store.records)} measurement(s) in {store.path}: not measured again")
        if store.damaged:
            say(f"{store.damaged} damaged line(s) in {store.path} (cut by a kill?): measured again")
        if settings.report_only:
            say("report only: nothing is measured; architectures without a reference are left out of the figures")
        else:
            measure(the_plan, store, settings.threads, say)
        result = summarise(the_plan, store, settings, command, machine(settings.threads), time.perf_counter() - started)
    finally:
        store.close()
    return result, write_report(result, settings.out)


__all__ = ["Agreement", "Architecture", "Protocol", "ResultStore", "Settings", "ZeroCost", "calibrate", "feasible_architectures",
           "fit_steps", "parse_protocols", "rank_agreement", "reference_protocol", "sample_architectures",
           "seed_agreement"]
