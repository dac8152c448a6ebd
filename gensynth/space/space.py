"""Search spaces as data: loading a space YAML, sampling genomes, genome → graph."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import UserError
from ..ir import serialize
from ..ir.graph import ArchGraph, GraphError
from ..ir.ops import MAX_GROUPS, OPS
from .dcac import DOWNSAMPLERS, MICRO
from .families import FAMILIES
from .genes import Choice, Chooser, Gene, Genome, RandomChooser, Repeat, ReplayChooser, gene_names, space_size, walk

_KEYS = {"name", "family", "description", "deployment", "proxy", "genes", "seed", "seed_genome", "added_genes"}


@dataclass(frozen=True)
class OptionRule:
    """What every option of one gene must be: ``test`` passes it, ``expected`` says it in errors."""

    expected: str
    test: Callable[[Any], bool]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def int_in(low: int, high: int) -> OptionRule:
    """An integer in [low, high] (bounds keep a typo like 1000000 from building a network no machine holds)."""
    return OptionRule(f"an integer in [{low}, {high}]", lambda v: _is_int(v) and low <= v <= high)


POSITIVE_INT = int_in(1, 1 << 16)
DEPTH = int_in(1, 64)
GROUPS = int_in(0, MAX_GROUPS)
POSITIVE_NUMBER = OptionRule("a finite number > 0", lambda v: _is_number(v) and v > 0)
BOOLEAN = OptionRule("true or false", lambda v: isinstance(v, bool))


def one_of(choices: Iterable[Any]) -> OptionRule:
    """One of ``choices``, of the same type (``true`` is not ``1``)."""
    allowed = tuple(choices)
    return OptionRule(f"one of {list(allowed)}", lambda v: any(type(v) is type(c) and v == c for c in allowed))


def _dcac_options() -> dict[str, OptionRule]:
    """The ``dcac`` family's options: what its builder and the ops it emits accept."""
    dcac = OPS["dcac"].attrs
    least = dcac["f_ratio"].minimum
    branch = {
        "condense": POSITIVE_INT, "pool": one_of(dcac["f_pool"].choices), "groups": GROUPS,
        "ratio": OptionRule(f"a number in [{least}, 1]", lambda v: _is_number(v) and least <= v <= 1),
        "kernel": one_of(dcac["f_kernel"].choices),
    }
    return {
        "activation": one_of(dcac["act"].choices), "stem.width": POSITIVE_INT, "stem.downsample": one_of(("blur_conv", "strided_conv")),
        "col.depth": DEPTH, "col.width": POSITIVE_INT, "col.unit": one_of(("dwsep", "conv")),
        "columns.reduce": BOOLEAN, "columns.downsample": one_of(DOWNSAMPLERS), "merge.op": one_of(("concat", "add")),
        "merge.width": POSITIVE_INT, "stage.depth": DEPTH, "stage.growth": POSITIVE_NUMBER,
        "stage.downsample": one_of(DOWNSAMPLERS), "stage.shortcut": one_of(("none", "avgpool_pw", "strided_pw")),
        "head.width": POSITIVE_INT,
        **{f"{part}.{m}": branch[m[2:]] for part in ("col", "stage") for m in MICRO},
    }


FAMILY_OPTIONS: dict[str, dict[str, OptionRule]] = {"dcac": _dcac_options()}
"""Per family, the rule each gene's options must follow (by family gene name, ``col.width``); checked at load."""


@dataclass(frozen=True)
class Deployment:
    """The shape that params, MACs and latency are reported at."""

    channels: int = 3
    resolution: int = 224
    num_classes: int = 1000


@dataclass(frozen=True)
class ProxyAdaptation:
    """How a candidate is adapted for proxy training (see :func:`gensynth.ir.for_proxy`)."""

    resolution: int = 32
    skip_reductions: int = 0


@dataclass
class SearchSpace:
    """A family of architectures and the choices that span it."""

    name: str
    family: str
    genes: tuple[Gene, ...]
    description: str = ""
    deployment: Deployment = field(default_factory=Deployment)
    proxy: ProxyAdaptation = field(default_factory=ProxyAdaptation)
    seed_genome: Genome | None = None
    seed_path: Path | None = None
    path: Path | None = None
    added_genes: dict[str, Any] = field(default_factory=dict)
    """Genes added to the space after runs were recorded: the value that reproduces a genome recorded without them."""

    def sample(self, seed: int | random.Random) -> Genome:
        """A uniformly random genome, deterministic for ``seed``."""
        return walk(self.genes, RandomChooser(seed))

    def suggest(self, chooser: Chooser) -> Genome:
        """A genome decided by ``chooser`` (an Optuna trial, for instance)."""
        return walk(self.genes, chooser)

    def check(self, genome: Genome) -> Genome:
        """Return ``genome`` if it belongs to this space; else raise ``UserError``."""
        try:
            replayed = walk(self.genes, ReplayChooser(genome))
        except (KeyError, ValueError) as err:
            raise UserError(f"space '{self.name}': {err.args[0]}") from None
        extra = sorted(set(genome) - set(replayed))
        if extra:
            raise UserError(f"space '{self.name}': gene '{extra[0]}' is not part of this genome")
        return replayed

    def upgrade(self, genome: Genome) -> Genome:
        """A genome recorded before some of :attr:`added_genes` existed, with their old-behaviour values filled in."""
        missing = {name: value for name, value in self.added_genes.items() if name not in genome}
        return walk(self.genes, ReplayChooser({**genome, **missing})) if missing else genome

    def to_graph(self, genome: Genome, name: str | None = None) -> ArchGraph:
        """Build and validate the architecture graph of ``genome``.

        A genome the family cannot build (an option value the ops reject, a shape
        that does not fit) is a mistake in the space file: ``UserError`` naming it.
        """
        try:
            graph = FAMILIES[self.family].build(self.upgrade(genome), self)
            graph.validate()
        except (GraphError, ValueError) as err:
            raise UserError(f"{self.path or self.name}: genome → graph: {err}") from None
        if name:
            graph.g.graph["name"] = name
        return graph

    def size(self) -> int:
        """The number of distinct genomes (column permutations count separately)."""
        return space_size(self.genes)

    def seed_graph(self) -> ArchGraph | None:
        """The seed architecture shipped beside the space, if any."""
        return serialize.load(self.seed_path) if self.seed_path else None


def load_space(spec: str | Path) -> SearchSpace:
    """Load a space by name (one that ships with gensynth) or by YAML path."""
    path = Path(spec)
    if path.suffix not in (".yaml", ".yml"):
        shipped = builtin_spaces()
        if str(spec) not in shipped:
            raise UserError(f"unknown space '{spec}' (expected one of: {', '.join(sorted(shipped))}, or a path to a space .yaml)")
        path = shipped[str(spec)]
    return parse_space(serialize.read_data_file(path), path)


def builtin_spaces() -> dict[str, Path]:
    """Spaces that ship inside the package: name → YAML path."""
    root = Path(str(resources.files("gensynth.search_spaces")))
    return {p.stem: p for p in sorted(root.glob("*.yaml")) if _is_space(p)}


def _is_space(path: Path) -> bool:
    data = serialize.read_data_file(path)
    return isinstance(data, dict) and "family" in data


def parse_space(data: Any, path: Path) -> SearchSpace:
    """Check a space document key by key; every mistake names the file and the key."""
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping with keys {', '.join(sorted(_KEYS))}")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise UserError(f"{path}: unknown key '{unknown[0]}' (expected one of: {', '.join(sorted(_KEYS))})")
    for key in ("name", "family", "genes"):
        if key not in data:
            raise UserError(f"{path}: missing key '{key}'")
    family = data["family"]
    if family not in FAMILIES:
        raise UserError(f"{path}: key 'family': unknown family {family!r} (expected one of: {', '.join(sorted(FAMILIES))})")
    genes = _parse_genes(data["genes"], path)
    _check_family_genes(genes, FAMILIES[family].genes, path)
    _check_options(genes, FAMILY_OPTIONS.get(family, {}), path)
    space = SearchSpace(
        name=_typed(data, "name", str, path),
        family=family,
        genes=genes,
        description=str(data.get("description", "")).strip(),
        deployment=_dataclass(Deployment, data.get("deployment", {}), "deployment", path),
        proxy=_dataclass(ProxyAdaptation, data.get("proxy", {}), "proxy", path),
        path=path,
    )
    space.added_genes = _added_genes(genes, data.get("added_genes", {}), path)
    if "seed_genome" in data:
        space.seed_genome = _seed_genome(space, data["seed_genome"], path)
    if "seed" in data:
        space.seed_path = path.parent / _typed(data, "seed", str, path)
        if not space.seed_path.is_file():
            raise UserError(f"{path}: key 'seed': no such file {space.seed_path}")
    return space


def _added_genes(genes: tuple[Gene, ...], raw: Any, path: Path) -> dict[str, Any]:
    """``added_genes``: a mapping of a top-level gene to one of its options."""
    if not isinstance(raw, dict):
        raise UserError(f"{path}: key 'added_genes' must be a mapping of gene → the value genomes recorded without it had")
    choices = {gene.name: gene.options for gene in genes if isinstance(gene, Choice)}
    for name, value in raw.items():
        if name not in choices:
            raise UserError(f"{path}: key 'added_genes.{name}': not a top-level gene of this space (expected one of: {', '.join(choices)})")
        if value not in choices[name]:
            raise UserError(f"{path}: key 'added_genes.{name}': {value!r} is not one of its options {list(choices[name])}")
    return dict(raw)


def _seed_genome(space: SearchSpace, genome: Any, path: Path) -> Genome:
    if not isinstance(genome, dict):
        raise UserError(f"{path}: key 'seed_genome' must be a mapping of gene → value")
    try:
        return space.check(genome)
    except UserError as err:
        raise UserError(f"{path}: key 'seed_genome': {str(err).split(': ', 1)[1]}") from None


def _parse_genes(raw: Any, path: Path) -> tuple[Gene, ...]:
    if not isinstance(raw, dict) or not raw:
        raise UserError(f"{path}: key 'genes' must be a non-empty mapping of gene → list of options")
    genes: list[Gene] = []
    for name, value in raw.items():
        if isinstance(value, dict):
            genes.append(_parse_repeat(str(name), value, path))
        else:
            genes.append(Choice(str(name), _options(value, f"genes.{name}", path)))
    return tuple(genes)


def _parse_repeat(prefix: str, raw: dict[str, Any], path: Path) -> Repeat:
    where = f"genes.{prefix}"
    if set(raw) != {"count", "genes"}:
        raise UserError(f"{path}: key '{where}' is a repeated group and needs exactly 'count' and 'genes', got {sorted(raw)}")
    counts = _options(raw["count"], f"{where}.count", path)
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in counts):
        raise UserError(f"{path}: key '{where}.count' must be a list of positive integers, got {counts!r}")
    body = raw["genes"]
    if not isinstance(body, dict) or not body:
        raise UserError(f"{path}: key '{where}.genes' must be a non-empty mapping of gene → list of options")
    return Repeat(prefix, tuple(counts), tuple(Choice(str(k), _options(v, f"{where}.genes.{k}", path)) for k, v in body.items()))


def _options(value: Any, where: str, path: Path) -> tuple[Any, ...]:
    if not isinstance(value, list) or not value:
        raise UserError(f"{path}: key '{where}' must be a non-empty list of options, got {value!r}")
    for option in value:
        if not isinstance(option, (str, int, float, bool)):
            raise UserError(f"{path}: key '{where}': option {option!r} must be a string, number or boolean")
    if len(set(map(repr, value))) != len(value):
        raise UserError(f"{path}: key '{where}' lists an option twice: {value!r}")
    return tuple(value)


def _check_family_genes(genes: tuple[Gene, ...], wanted: frozenset[str], path: Path) -> None:
    have = gene_names(genes)
    missing, extra = sorted(wanted - have), sorted(have - wanted)
    if missing:
        raise UserError(f"{path}: key 'genes': missing gene '{missing[0]}' that the family reads")
    if extra:
        raise UserError(f"{path}: key 'genes': unknown gene '{extra[0]}' (the family reads: {', '.join(sorted(wanted))})")


def _check_options(genes: tuple[Gene, ...], rules: dict[str, OptionRule], path: Path) -> None:
    """Every option against its gene's rule: an option no architecture can use fails here, not in every proposal."""
    for gene in genes:
        if isinstance(gene, Choice):
            choices = [(gene.name, f"genes.{gene.name}", gene.options)]
        else:
            choices = [(f"{gene.prefix}.{m.name}", f"genes.{gene.prefix}.genes.{m.name}", m.options) for m in gene.body]
        for name, key, options in choices:
            rule = rules.get(name)
            bad = [o for o in options if not rule.test(o)] if rule else []
            if rule and bad:
                raise UserError(f"{path}: key '{key}': option {bad[0]!r} is not allowed (expected {rule.expected})")


def _typed(data: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    if not isinstance(data[key], kind):
        raise UserError(f"{path}: key '{key}' must be {kind.__name__}, got {data[key]!r}")
    return data[key]


def _dataclass(cls: type, raw: Any, key: str, path: Path) -> Any:
    fields = cls.__dataclass_fields__
    if not isinstance(raw, dict):
        raise UserError(f"{path}: key '{key}' must be a mapping with {', '.join(fields)}")
    for name, value in raw.items():
        if name not in fields:
            raise UserError(f"{path}: unknown key '{key}.{name}' (expected one of: {', '.join(fields)})")
        least = 0 if name == "skip_reductions" else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise UserError(f"{path}: key '{key}.{name}' must be an integer >= {least}, got {value!r}")
    return cls(**raw)
