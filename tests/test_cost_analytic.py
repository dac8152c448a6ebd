"""The graph-level MAC rules the search uses equal fvcore's count of the built model."""
from __future__ import annotations

import pytest

from gensynth.cost import count_macs, graph_macs
from gensynth.ir import OPS, ArchGraph, list_ops, no_macs
from gensynth.nn import build_model
from gensynth.space import load_space

SPACE = load_space("dcac")


def _fvcore(graph: ArchGraph, resolution: int | None = None) -> int:
    return count_macs(build_model(graph, resolution), graph.input_shape(resolution)).macs


@pytest.mark.parametrize("seed", range(0, 400, 20))
def test_sampled_architectures_match_fvcore_exactly(seed: int) -> None:
    graph = SPACE.to_graph(SPACE.sample(seed))
    assert sum(graph_macs(graph).values()) == _fvcore(graph)


def test_every_op_with_macs_has_a_rule_and_odd_sizes_match() -> None:
    """Ops the dcac space never uses (attention_condenser, gconv) and sizes that do not divide evenly."""
    g = ArchGraph("odd", 3, 37, 7)
    g.add("input", "input")
    g.add("stem", "stem", ["input"], out_channels=16, stride=2)
    g.add("grouped", "gconv", ["stem"], out_channels=24, groups=4, kernel=5)
    g.add("ac", "attention_condenser", ["grouped"], condense=4, pool="avg", ratio=0.5, kernel=5, groups=0)
    g.add("dc", "dcac", ["ac"], out_channels=40, f_condense=3, a_condense=8, f_groups=4, a_groups=1, a_kernel=7)
    g.add("blur", "blurpool", ["dc"], filter_size=5, stride=2)
    g.add("pool", "global_pool", ["blur"])
    g.add("fc", "classifier", ["pool"])
    per_node = graph_macs(g)
    assert all(per_node[n] > 0 for n in ("stem", "grouped", "ac", "dc", "blur", "fc"))
    assert sum(per_node.values()) == _fvcore(g)
    assert sum(graph_macs(g, 64).values()) == _fvcore(g, 64)


def test_only_pools_merges_and_the_input_declare_no_macs() -> None:
    """A built-in op with multiply-accumulates has a real rule, not ``no_macs``."""
    assert {op for op in list_ops() if OPS[op].macs is no_macs} == {"input", "avgpool", "maxpool", "concat", "add", "global_pool"}
