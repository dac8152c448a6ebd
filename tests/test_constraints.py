"""The built-in constraint plugins on hand-built graphs: each one broken and kept.

Graphs are tiny and built with :meth:`ArchGraph.add`; nothing here trains or
measures anything, so the whole module runs in a couple of seconds.
"""
from __future__ import annotations

import pytest

from gensynth.constraint import Candidate, Constraint, RunContext, Verdict
from gensynth.constraints.antialiased_downsampling import AntialiasedDownsampling
from gensynth.constraints.budgets import MaxLatency, MaxMacs, MaxParams
from gensynth.constraints.columnar import Columnar
from gensynth.constraints.pointwise_strided import PointwiseStrided
from gensynth.constraints.reference_beating import ReferenceBeating
from gensynth.errors import UserError
from gensynth.ir import ArchGraph, save
from gensynth.plugins import installed_constraints, instantiate
from gensynth.search.judge import ConstraintEngine
from gensynth.space import load_space

STRUCTURAL = (Columnar(), PointwiseStrided(), AntialiasedDownsampling())


def candidate(graph: ArchGraph, **measurements: float) -> Candidate:
    graph.validate()
    return Candidate({}, graph, graph.structural_hash(), dict(measurements))


def check(constraint: Constraint, graph: ArchGraph, **measurements: float) -> Verdict:
    verdict = constraint.check(candidate(graph, **measurements))
    # the contract every constraint must keep: 0 when satisfied, > 0 when not
    assert (verdict.violation == 0) == verdict.satisfied, verdict
    return verdict


def head(g: ArchGraph, src: str, channels: int) -> ArchGraph:
    g.add("gp", "global_pool", [src])
    g.add("fc", "classifier", ["gp"], in_channels=channels)
    return g


def start(name: str = "g", blur_stem: bool = True, width: int = 16) -> ArchGraph:
    """input → (blur) → stem 3×3 stride 2: an anti-aliased stem at 112 px."""
    g = ArchGraph(name, 3, 224, 10)
    g.add("input", "input")
    if blur_stem:
        g.add("blur", "blurpool", ["input"], stride=1)
    g.add("stem", "stem", ["blur" if blur_stem else "input"], out_channels=width, stride=2)
    return g


def columns(n: int) -> ArchGraph:
    """stem → n parallel columns of two convs → concat."""
    g = start(f"columns{n}")
    tips = []
    for i in range(n):
        g.add(f"c{i}.a", "conv", ["stem"], out_channels=8)
        g.add(f"c{i}.b", "dwconv", [f"c{i}.a"], out_channels=8)
        tips.append(f"c{i}.b")
    g.add("merge", "concat", tips)
    return head(g, "merge", 8 * n)


# -- columnar ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 4])
def test_columnar_counts_node_disjoint_columns(n):
    kept = check(Columnar(min_columns=n), columns(n))
    assert kept.satisfied and f"{n} node-disjoint column(s)" in kept.reason
    broken = check(Columnar(min_columns=n + 1), columns(n))
    assert not broken.satisfied
    assert broken.violation == pytest.approx(1.0)


def test_columnar_n_is_configurable():
    two = columns(2)
    assert check(Columnar(min_columns=2), two).satisfied
    four = check(Columnar(min_columns=4), two)
    assert not four.satisfied
    assert four.violation == pytest.approx(2.0)  # missing columns, so the generator sees how far off it is
    assert "need >= 4" in four.reason
    assert check(Columnar(), columns(4)).satisfied  # default: the paper's four
    assert not check(Columnar(), columns(3)).satisfied


def test_columnar_is_configured_from_options():
    constraint = instantiate("columnar", {"min_columns": 2})
    assert isinstance(constraint, Columnar) and constraint.min_columns == 2
    with pytest.raises(UserError, match="bad options"):
        instantiate("columnar", {"columns": 2})


def test_columns_that_share_a_node_count_once():
    """Four branches, two of which meet before the merge: three node-disjoint columns, not four."""
    g = start("shared")
    for i in range(4):
        g.add(f"c{i}", "conv", ["stem"], out_channels=8)
    g.add("meet", "add", ["c0", "c1"])
    g.add("merge", "concat", ["meet", "c2", "c3"])
    verdict = check(Columnar(min_columns=4), head(g, "merge", 24))
    assert not verdict.satisfied
    assert "3 node-disjoint" in verdict.reason and verdict.violation == pytest.approx(1.0)
    assert check(Columnar(min_columns=3), head(_copy_without_head(g), "merge", 24)).satisfied


def _copy_without_head(g: ArchGraph) -> ArchGraph:
    new = g.copy()
    new.g.remove_nodes_from(["gp", "fc"])
    return new


def test_a_funnel_is_not_columnar():
    g = start("funnel")
    g.add("a", "conv", ["stem"], out_channels=8)
    g.add("b", "conv", ["stem"], out_channels=8)
    g.add("mid", "add", ["a", "b"])
    g.add("c", "conv", ["mid"], out_channels=8)
    g.add("d", "conv", ["c"], out_channels=8)
    g.add("merge", "add", ["c", "d"])
    verdict = check(Columnar(min_columns=4), head(g, "merge", 8))
    assert not verdict.satisfied and "2 node-disjoint" in verdict.reason


def test_residual_skip_is_not_a_column():
    g = start("residual")
    g.add("body", "conv", ["stem"], out_channels=16)
    g.add("sum", "add", ["stem", "body"])
    verdict = check(Columnar(min_columns=2), head(g, "sum", 16))
    assert not verdict.satisfied
    assert "1 node-disjoint" in verdict.reason


def test_columnar_only_counts_early_layers():
    """Four columns after a stride of 16 are not 'early' (early_stride 4 by default)."""
    g = start("late")
    g.add("d1", "blurpool", ["stem"])
    g.add("d2", "blurpool", ["d1"])
    g.add("d3", "blurpool", ["d2"])  # 14 px: stride 16
    for i in range(4):
        g.add(f"c{i}", "conv", ["d3"], out_channels=8)
    g.add("merge", "concat", [f"c{i}" for i in range(4)])
    g = head(g, "merge", 32)
    assert not check(Columnar(min_columns=4), g).satisfied
    assert check(Columnar(min_columns=4, early_stride=16), g).satisfied


# -- pointwise_strided ---------------------------------------------------------------------------


def test_pointwise_strided_rejects_strided_1x1():
    g = start("pw")
    g.add("pw", "pwconv", ["stem"], out_channels=32, stride=2)
    verdict = check(PointwiseStrided(), head(g, "pw", 32))
    assert not verdict.satisfied and "'pw'" in verdict.reason
    assert verdict.violation == pytest.approx(1.0)


def test_pointwise_strided_rejects_dense_1x1_conv_with_stride():
    g = start("conv1x1")
    g.add("c", "conv", ["stem"], out_channels=32, kernel=1, stride=2)
    assert not check(PointwiseStrided(), head(g, "c", 32)).satisfied


def shortcut_block(kind: str) -> ArchGraph:
    """A downsampling residual block: blur-pool → 3×3 on the main path, ``kind`` on the shortcut."""
    g = start(f"short-{kind}")
    g.add("down", "blurpool", ["stem"])
    g.add("body", "conv", ["down"], out_channels=32)
    if kind == "strided_pw":
        g.add("short", "pwconv", ["stem"], out_channels=32, stride=2, act="none")
    elif kind == "avgpool_pw":
        g.add("short.pool", "avgpool", ["stem"], kernel=2, stride=2)
        g.add("short", "pwconv", ["short.pool"], out_channels=32, act="none")
    g.add("sum", "add", ["body", "short"])
    return head(g, "sum", 32)


def test_pointwise_strided_checks_shortcuts():
    broken = check(PointwiseStrided(), shortcut_block("strided_pw"))
    assert not broken.satisfied and "'short'" in broken.reason
    kept = check(PointwiseStrided(), shortcut_block("avgpool_pw"))  # ResNet-D: avg-pool, then 1×1
    assert kept.satisfied and kept.violation == 0


def test_pointwise_strided_counts_every_offender():
    g = start("two")
    g.add("a", "pwconv", ["stem"], out_channels=16, stride=2)
    g.add("b", "pwconv", ["a"], out_channels=16, stride=2)
    verdict = check(PointwiseStrided(), head(g, "b", 16))
    assert verdict.violation == pytest.approx(2.0)


def test_pointwise_strided_allows_strided_3x3_and_unstrided_1x1():
    g = start("fine")
    g.add("dw", "dwconv", ["stem"], out_channels=16, stride=2)
    g.add("pw", "pwconv", ["dw"], out_channels=32)
    assert check(PointwiseStrided(), head(g, "pw", 32)).satisfied


# -- antialiased_downsampling ------------------------------------------------------------------------


def down(kind: str) -> ArchGraph:
    """An anti-aliased stem, then one reduction of kind ``kind``."""
    g = start(f"down-{kind}")
    if kind == "strided_conv":
        g.add("down", "conv", ["stem"], out_channels=16, stride=2)
    elif kind == "blur_then_strided_conv":
        g.add("lp", "blurpool", ["stem"], stride=1)
        g.add("down", "conv", ["lp"], out_channels=16, stride=2)
    elif kind == "blur_conv_strided_conv":  # a blur, but not *directly* before the reduction
        g.add("lp", "blurpool", ["stem"], stride=1)
        g.add("mid", "conv", ["lp"], out_channels=16)
        g.add("down", "conv", ["mid"], out_channels=16, stride=2)
    elif kind == "blurpool":
        g.add("down", "blurpool", ["stem"], stride=2)
    elif kind == "avgpool":
        g.add("down", "avgpool", ["stem"], kernel=2, stride=2)
    elif kind == "maxpool":
        g.add("down", "maxpool", ["stem"], kernel=2, stride=2)
    elif kind == "max_blurpool":  # Zhang's MaxBlurPool: dense max, then blur-pool
        g.add("m", "maxpool", ["stem"], kernel=3, stride=1, padding=1)
        g.add("down", "blurpool", ["m"], stride=2)
    elif kind == "subsample_avgpool":  # kernel 1: plain subsampling
        g.add("down", "avgpool", ["stem"], kernel=1, stride=2)
    elif kind == "subsample_blurpool":  # filter 1: plain subsampling
        g.add("down", "blurpool", ["stem"], stride=2, filter_size=1)
    else:
        raise ValueError(kind)
    return head(g, "down", 16)


@pytest.mark.parametrize(
    ("kind", "ok"),
    [
        ("strided_conv", False),
        ("blur_then_strided_conv", True),
        ("blur_conv_strided_conv", False),
        ("blurpool", True),
        ("avgpool", True),
        ("maxpool", False),
        ("max_blurpool", True),
        ("subsample_avgpool", False),
        ("subsample_blurpool", False),
    ],
)
def test_antialiased_downsampling(kind, ok):
    verdict = check(AntialiasedDownsampling(), down(kind))
    assert verdict.satisfied is ok, verdict.reason
    if not ok:
        assert "'down'" in verdict.reason
        assert verdict.violation == pytest.approx(1.0)


def test_antialiased_stem_must_be_blurred():
    broken = check(AntialiasedDownsampling(), head(start("raw", blur_stem=False), "stem", 16))
    assert not broken.satisfied and "'stem'" in broken.reason
    assert check(AntialiasedDownsampling(), head(start("blurred"), "stem", 16)).satisfied


def test_antialiased_counts_every_aliased_reduction_shortcuts_included():
    g = start("many", blur_stem=False)  # 1: the stem
    g.add("down", "maxpool", ["stem"])  # 2: max-pool
    g.add("body", "conv", ["down"], out_channels=32)
    g.add("short", "pwconv", ["stem"], out_channels=32, stride=2)  # 3: the shortcut
    g.add("sum", "add", ["body", "short"])
    verdict = check(AntialiasedDownsampling(), head(g, "sum", 32))
    assert verdict.violation == pytest.approx(3.0)
    assert "'short'" in verdict.reason
    assert check(AntialiasedDownsampling(), shortcut_block("avgpool_pw")).satisfied


def test_attention_condensation_does_not_count_as_a_reduction():
    """DC-AC and attention condensers pool internally (max-pool by 8!) but expand back: exempt."""
    g = start("condensers")
    g.add("dcac", "dcac", ["stem"], f_condense=4, f_pool="max", a_condense=8, a_pool="max")
    g.add("ac", "attention_condenser", ["dcac"], condense=4, pool="max")
    g = head(g, "ac", 16)
    assert check(AntialiasedDownsampling(), g).satisfied
    # the same condensers behind an aliased reduction: only that reduction is named
    g2 = start("condensers2")
    g2.add("down", "maxpool", ["stem"])
    g2.add("dcac", "dcac", ["down"], f_condense=4, a_condense=8)
    verdict = check(AntialiasedDownsampling(), head(g2, "dcac", 16))
    assert not verdict.satisfied and verdict.violation == pytest.approx(1.0)
    assert "'dcac'" not in verdict.reason


def test_global_pool_is_not_an_aliased_reduction():
    g = start("gp")
    assert check(AntialiasedDownsampling(), head(g, "stem", 16)).satisfied  # stem 112 px → global pool 1 px


# -- the shipped seed architecture ------------------------------------------------------------------


@pytest.fixture(scope="module")
def dcac():
    return load_space("dcac")


def test_seed_architecture_satisfies_the_structural_rules(dcac):
    seed = dcac.seed_graph()
    assert seed is not None
    for constraint in STRUCTURAL:
        verdict = check(constraint, seed)
        assert verdict.satisfied, f"{constraint.name}: {verdict.reason}"
    assert "4 node-disjoint column(s)" in Columnar().check(candidate(seed)).reason


def test_seed_genome_graph_satisfies_the_structural_rules(dcac):
    graph = dcac.to_graph(dcac.seed_genome)
    for constraint in STRUCTURAL:
        assert check(constraint, graph).satisfied, constraint.name


def test_rule_breaking_genome_options_are_caught(dcac):
    """The space's rule-breaking options are each caught by the rule they break."""
    base = dict(dcac.seed_genome)
    cases = {
        ("col.count", 2): Columnar(),
        ("stage0.shortcut", "strided_pw"): PointwiseStrided(),
        ("stage1.downsample", "strided_pwconv"): PointwiseStrided(),
        ("stage1.downsample", "maxpool"): AntialiasedDownsampling(),
        ("stem.downsample", "strided_conv"): AntialiasedDownsampling(),
        ("columns.downsample", "strided_conv"): AntialiasedDownsampling(),
    }
    for (gene, value), constraint in cases.items():
        genome = dict(base)
        genome[gene] = value
        if gene == "col.count":
            genome = {k: v for k, v in genome.items() if not k.startswith(("col2.", "col3."))}
        verdict = check(constraint, dcac.to_graph(dcac.check(genome)))
        assert not verdict.satisfied, (gene, value, constraint.name)


# -- budgets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "key", "limit"),
    [(MaxParams, "params", 1e6), (MaxMacs, "macs", 3e8), (MaxLatency, "latency_ms", 20.0)],
)
def test_budgets(cls, key, limit):
    g = head(start("budget"), "stem", 16)
    constraint = cls(limit)
    assert constraint.stage == "measured" and constraint.requires == (key,)
    kept = check(constraint, g, **{key: limit * 0.5})
    assert kept.satisfied and kept.violation == 0
    at_limit = check(constraint, g, **{key: limit})
    assert at_limit.satisfied
    broken = check(constraint, g, **{key: limit * 2.5})
    assert not broken.satisfied
    assert broken.violation == pytest.approx(1.5)  # relative excess
    worse = check(constraint, g, **{key: limit * 4})
    assert worse.violation > broken.violation  # the generator sees "further off"


def test_budget_limit_must_be_positive():
    with pytest.raises((ValueError, UserError)):
        MaxParams(0)


def test_measured_constraints_wait_for_their_measurements():
    g = head(start("engine"), "stem", 16)
    engine = ConstraintEngine([MaxParams(1000), MaxLatency(5.0)])
    probe_without_latency = engine.judge(candidate(g, params=5000.0), "measured")
    assert set(probe_without_latency.verdicts) == {"max_params"}
    assert not probe_without_latency.feasible
    later = engine.judge(candidate(g, params=5000.0, latency_ms=1.0), "measured", skip={"max_params"})
    assert set(later.verdicts) == {"max_latency_ms"} and later.feasible
    assert engine.violations({**probe_without_latency.verdicts, **later.verdicts}) == {
        "max_params": pytest.approx(4.0), "max_latency_ms": 0.0,
    }


# -- reference_beating --------------------------------------------------------------------------------


@pytest.fixture
def reference_file(tmp_path):
    path = tmp_path / "refnet.yaml"
    save(head(start("refnet"), "stem", 16), path)
    return path


REFERENCE = {"accuracy": 70.0, "latency_ms": 10.0, "params": 2e6, "macs": 3e8, "score": 50.0}


def prepared(path, metrics=("accuracy", "latency_ms")) -> tuple[ReferenceBeating, list[str]]:
    constraint = ReferenceBeating([str(path)], metrics)
    seen: list[str] = []

    def measure(graph: ArchGraph, label: str) -> dict[str, float]:
        seen.append(label)
        assert isinstance(graph, ArchGraph) and len(graph) == 5
        return dict(REFERENCE)

    constraint.prepare(RunContext(measure))
    return constraint, seen


def test_reference_beating_measures_references_in_prepare(reference_file):
    constraint, seen = prepared(reference_file)
    assert seen == ["refnet"]
    assert constraint.stage == "measured"
    assert set(constraint.requires) == {"accuracy", "latency_ms"}


def test_reference_beating_better_is_feasible(reference_file):
    constraint, _ = prepared(reference_file)
    g = head(start("cand"), "stem", 16)
    verdict = check(constraint, g, accuracy=75.0, latency_ms=5.0)
    assert verdict.satisfied and verdict.violation == 0
    assert "refnet" in verdict.reason


def test_reference_beating_worse_is_violated(reference_file):
    constraint, _ = prepared(reference_file)
    g = head(start("cand"), "stem", 16)
    slower = check(constraint, g, accuracy=75.0, latency_ms=15.0)
    assert not slower.satisfied and slower.violation > 0
    assert "latency_ms" in slower.reason and "refnet" in slower.reason
    assert slower.violation == pytest.approx(0.5)
    worse_both = check(constraint, g, accuracy=35.0, latency_ms=15.0)
    assert worse_both.violation == pytest.approx(1.0)  # 0.5 latency + 0.5 accuracy shortfall
    assert worse_both.violation > slower.violation
    accuracy_tie = check(constraint, g, accuracy=70.0, latency_ms=5.0)  # accuracy: at least the reference's
    assert accuracy_tie.satisfied
    latency_tie = check(constraint, g, accuracy=75.0, latency_ms=10.0)  # latency: strictly below it
    assert not latency_tie.satisfied and "latency_ms" in latency_tie.reason


def test_reference_beating_other_metrics(reference_file):
    constraint, _ = prepared(reference_file, metrics=("params", "macs", "score"))
    g = head(start("cand"), "stem", 16)
    assert check(constraint, g, params=1e6, macs=1e8, score=60.0).satisfied
    assert not check(constraint, g, params=3e6, macs=1e8, score=60.0).satisfied


def test_reference_beating_checks_its_options(reference_file):
    with pytest.raises(UserError, match="at least one"):
        ReferenceBeating([])
    with pytest.raises(UserError, match="unknown metric 'speed'"):
        ReferenceBeating([str(reference_file)], ["speed"])


# -- registry -----------------------------------------------------------------------------------------


def test_every_builtin_is_an_entry_point():
    found = installed_constraints()
    expected = {
        "columnar": Columnar, "pointwise_strided": PointwiseStrided, "antialiased_downsampling": AntialiasedDownsampling,
        "reference_beating": ReferenceBeating, "max_params": MaxParams, "max_macs": MaxMacs, "max_latency_ms": MaxLatency,
    }
    for name, cls in expected.items():
        assert name in found, name
        assert found[name].cls is cls
        assert found[name].cls.name == name
        assert found[name].doc  # a one-line doc for `gensynth constraints list`
        assert "entry point" in found[name].origin
