"""The architecture graph IR: shape inference, validation messages, serialisation, drawing, proxy rewrite."""
from __future__ import annotations

import json
import re
import shutil

import networkx as nx
import pytest
import torch

from gensynth.errors import UserError
from gensynth.ir import (
    OPS,
    ArchGraph,
    GraphError,
    draw,
    for_proxy,
    from_dict,
    list_ops,
    load,
    reductions,
    save,
    to_dict,
    to_dot,
    write_graphml,
)
from gensynth.ir.ops import spatial_out
from gensynth.nn import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


def chain(*specs, resolution=32, num_classes=10, name="g") -> ArchGraph:
    """A graph from (name, op, inputs, attrs) tuples, after an 'input' node."""
    g = ArchGraph(name, 3, resolution, num_classes)
    g.add("input", "input")
    for node, op, inputs, attrs in specs:
        g.add(node, op, inputs, **attrs)
    return g


def head(src: str, channels: int | None = None):
    return [("gp", "global_pool", [src], {}), ("fc", "classifier", ["gp"], {"in_channels": channels} if channels else {})]


def graph_error(fn) -> str:
    with pytest.raises(GraphError) as info:
        fn()
    return str(info.value)


# -- shape inference ------------------------------------------------------------------

SMALL_32 = {
    "input": (3, 32, 32), "stem": (16, 16, 16), "left": (16, 16, 16), "right": (8, 16, 16), "cat": (24, 16, 16),
    "down": (24, 8, 8), "att": (32, 8, 8), "mp": (32, 5, 5), "ap": (32, 3, 3), "gp": (32, 1, 1), "fc": (10,),
}
SMALL_33 = {
    "input": (3, 33, 33), "stem": (16, 17, 17), "left": (16, 17, 17), "right": (8, 17, 17), "cat": (24, 17, 17),
    "down": (24, 9, 9), "att": (32, 9, 9), "mp": (32, 5, 5), "ap": (32, 3, 3), "gp": (32, 1, 1), "fc": (10,),
}


def test_shapes_of_a_hand_built_graph(small):
    assert small.infer_shapes() == SMALL_32
    assert small.infer_shapes(33) == SMALL_33  # odd sizes: conv floor, pools ceil
    small.validate()
    assert [info.shape for info in small.nodes()] == [SMALL_32[n] for n in small.order()]


@pytest.mark.parametrize("resolution", [32, 33, 17])
def test_inferred_shapes_match_torch(make_small_graph, resolution):
    """Every node's module output has the shape the IR inferred (odd sizes included)."""
    graph = make_small_graph(resolution)
    shapes = graph.infer_shapes()
    model = build_model(graph).eval()
    seen = {}
    for name, node in model.node_names.items():
        model.get_submodule(name).register_forward_hook(lambda m, i, o, node=node: seen.__setitem__(node, tuple(o.shape[1:])))
    with torch.no_grad():
        out = model(torch.randn(1, 3, resolution, resolution))
    assert tuple(out.shape) == (1, 10)
    assert seen == {n: s for n, s in shapes.items() if n != "input"}


def test_shape_rules_per_op():
    g = chain(
        ("s2", "conv", ["input"], {"out_channels": 8, "kernel": 5, "stride": 2}),  # (32+4-5)//2+1 = 16
        ("s3", "gconv", ["s2"], {"out_channels": 12, "groups": 4, "stride": 3}),  # (16+2-3)//3+1 = 6
        ("b5", "blurpool", ["s3"], {"filter_size": 5, "stride": 2}),  # (6+4-5)//2+1 = 3
        ("ac", "attention_condenser", ["b5"], {"condense": 4}),  # same shape
        ("dc", "dcac", ["ac"], {}),  # out_channels None: keeps channels
        *head("dc"),
    )
    shapes = g.infer_shapes()
    assert shapes["s2"] == (8, 16, 16)
    assert shapes["s3"] == (12, 6, 6)
    assert shapes["b5"] == (12, 3, 3)
    assert shapes["ac"] == shapes["dc"] == (12, 3, 3)
    assert shapes["fc"] == (10,)
    assert g.infer_shapes(64)["s2"] == (8, 32, 32)  # another resolution, same graph


def test_add_and_concat_shapes():
    g = chain(
        ("a", "conv", ["input"], {"out_channels": 8}),
        ("b", "pwconv", ["input"], {"out_channels": 8}),
        ("c", "dwconv", ["input"], {"out_channels": 3}),
        ("sum", "add", ["a", "b"], {"act": "relu"}),
        ("cat", "concat", ["sum", "c", "a"], {}),
        *head("cat"),
    )
    shapes = g.infer_shapes()
    assert shapes["sum"] == (8, 32, 32)
    assert shapes["cat"] == (19, 32, 32)
    assert g.inputs("cat") == ("sum", "c", "a")  # port order kept


@pytest.mark.parametrize(
    "size,kernel,stride,pad,ceil,expected",
    [(224, 3, 2, 1, False, 112), (7, 2, 2, 0, True, 4), (7, 2, 2, 0, False, 3), (1, 8, 8, 0, True, 1), (5, 3, 2, 1, True, 3)],
)
def test_spatial_out_matches_torch(size, kernel, stride, pad, ceil, expected):
    assert spatial_out(size, kernel, stride, pad, ceil) == expected
    if ceil:
        out = torch.nn.functional.max_pool2d(torch.zeros(1, 1, size, size), kernel, stride, pad, ceil_mode=True)
    else:
        out = torch.nn.functional.conv2d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, kernel, kernel), stride=stride, padding=pad)
    assert out.shape[-1] == expected


# -- validation messages ------------------------------------------------------------------


def test_channel_mismatch_names_node_and_producer():
    g = chain(("a", "conv", ["input"], {"out_channels": 32}), ("b", "conv", ["a"], {"out_channels": 16, "in_channels": 24}), *head("b"))
    assert graph_error(g.validate) == "node 'b': in_channels 24, but 'a' produces 32"


def test_classifier_channel_mismatch():
    g = chain(("a", "conv", ["input"], {"out_channels": 32}), *head("a", channels=64))
    assert graph_error(g.validate) == "node 'fc': in_channels 64, but 'gp' produces 32"


def test_unknown_op():
    msg = graph_error(lambda: chain(("n", "convv", ["input"], {})))
    assert msg.startswith("node 'n': unknown op 'convv' (expected one of: ")
    for op in ("conv", "dcac", "blurpool"):
        assert op in msg


@pytest.mark.parametrize(
    "attrs,message",
    [
        ({"out_channels": "16"}, "node 'b': attribute 'out_channels' of op 'conv' must be int, got str '16'"),
        ({"out_channels": 16, "kernel": True}, "node 'b': attribute 'kernel' of op 'conv' must be int, got bool True"),
        ({"out_channels": 16.0}, "node 'b': attribute 'out_channels' of op 'conv' must be int, got float 16.0"),
        ({"out_channels": 16, "act": "swish"}, "node 'b': attribute 'act' of op 'conv' must be one of ['none', 'relu', 'relu6', 'hswish', 'silu', 'gelu'], got 'swish'"),
        ({"out_channels": 0}, "node 'b': attribute 'out_channels' of op 'conv' must be >= 1, got 0"),
        ({}, "node 'b': missing attribute 'out_channels' for op 'conv'"),
    ],
)
def test_attribute_errors(attrs, message):
    assert graph_error(lambda: chain(("b", "conv", ["input"], attrs))) == message


def test_unknown_attribute_lists_expected():
    msg = graph_error(lambda: chain(("b", "conv", ["input"], {"out_channels": 8, "kernal": 3})))
    assert msg.startswith("node 'b': unknown attribute 'kernal' for op 'conv' (expected: ")
    assert "kernel" in msg and "out_channels" in msg


def test_fixed_attributes_of_specialised_convs():
    assert "must be one of [1]" in graph_error(lambda: chain(("p", "pwconv", ["input"], {"out_channels": 8, "kernel": 3})))
    assert "must be >= 2" in graph_error(lambda: chain(("q", "gconv", ["input"], {"out_channels": 8, "groups": 1})))


def test_float_attribute_accepts_int():
    g = chain(("d", "dcac", ["input"], {"f_ratio": 1}))
    assert g.attrs("d")["f_ratio"] == 1.0 and isinstance(g.attrs("d")["f_ratio"], float)


def test_dangling_edge():
    assert graph_error(lambda: chain(("b", "conv", ["zz"], {"out_channels": 8}))) == "node 'b': input 'zz' is not a node"
    data = to_dict(chain(("b", "conv", ["input"], {"out_channels": 8}), *head("b")))
    data["nodes"][1]["inputs"] = ["zz"]
    assert graph_error(lambda: from_dict(data)) == "node 'b': input 'zz' is not a node (dangling edge)"


def test_cycle_names_its_nodes():
    data = to_dict(chain(("a", "conv", ["input"], {"out_channels": 8}), ("b", "conv", ["a"], {"out_channels": 8}), *head("b")))
    data["nodes"][1]["inputs"] = ["input", "b"]  # a <- b <- a
    msg = graph_error(lambda: from_dict(data))
    assert re.fullmatch(r"graph 'g': cycle (a -> b -> a|b -> a -> b)", msg), msg


def test_two_outputs():
    g = chain(("a", "conv", ["input"], {"out_channels": 8}), ("extra", "conv", ["a"], {"out_channels": 8}), *head("a"))
    assert graph_error(g.validate) == "graph 'g': expected exactly one output node, found 2: ['extra', 'fc']"


def test_output_must_be_a_classifier():
    g = chain(("a", "conv", ["input"], {"out_channels": 8}), ("gp", "global_pool", ["a"], {}))
    assert graph_error(g.validate) == "node 'gp': the output must be a 'classifier', got 'global_pool'"


def test_add_with_mismatched_shapes():
    g = chain(("a", "conv", ["input"], {"out_channels": 16}), ("b", "conv", ["input"], {"out_channels": 8}), ("sum", "add", ["a", "b"], {}), *head("sum"))
    assert graph_error(g.validate) == "node 'sum': input 2 has shape [8, 32, 32], but input 1 has [16, 32, 32]"


def test_concat_with_mismatched_resolution():
    g = chain(("a", "conv", ["input"], {"out_channels": 16}), ("b", "conv", ["input"], {"out_channels": 8, "stride": 2}), ("cat", "concat", ["a", "b"], {}), *head("cat"))
    assert graph_error(g.validate) == "node 'cat': input 2 is 16x16 px, but input 1 is 32x32 px"


def test_arity_errors():
    g = chain(("a", "conv", ["input"], {"out_channels": 8}), ("cat", "concat", ["a"], {}), *head("cat"))
    assert graph_error(g.validate) == "node 'cat': op 'concat' takes at least 2 input(s), got 1"
    g = chain(("a", "conv", ["input"], {"out_channels": 3}), ("b", "conv", ["input", "a"], {"out_channels": 8}), *head("b"))
    assert graph_error(g.validate) == "node 'b': op 'conv' takes 1 input(s), got 2"


def test_structure_errors():
    g = chain(("lonely", "conv", [], {"out_channels": 8}), ("a", "conv", ["input"], {"out_channels": 8}), *head("a"))
    assert graph_error(g.validate) == "node 'lonely': has no inputs (only 'input' may)"
    g = chain(("in2", "input", [], {}), ("a", "conv", ["input"], {"out_channels": 8}), *head("a"))
    assert graph_error(g.validate) == "graph 'g': expected exactly one 'input' node, found 2"
    assert graph_error(lambda: chain(("input", "conv", [], {"out_channels": 8}))) == "node 'input': defined twice"
    assert graph_error(lambda: chain(("a", "add", ["input", "input"], {}))) == "node 'a': input 'input' given twice"


def test_shape_rule_errors_name_the_node():
    g = chain(("a", "conv", ["input"], {"out_channels": 8}), ("fc", "classifier", ["a"], {}))
    assert graph_error(g.validate) == "node 'fc': expects a globally pooled C×1×1 input, got 32x32 px"
    g = chain(("a", "conv", ["input"], {"out_channels": 6}), ("g4", "gconv", ["a"], {"out_channels": 8, "groups": 4}), *head("g4"))
    assert graph_error(g.validate) == "node 'g4': groups 4 must divide in_channels 6 and out_channels 8"
    g = chain(("mp", "maxpool", ["input"], {"kernel": 5, "stride": 1}), *head("mp"), resolution=2)
    assert graph_error(g.validate) == "node 'mp': a 5x5 window with stride 1 does not fit a 2px input"


def test_from_dict_errors_name_the_key():
    good = to_dict(chain(("a", "conv", ["input"], {"out_channels": 8}), *head("a")))
    cases = [
        ({**good, "nodez": []}, "unknown key 'nodez' (expected: format, name, input, num_classes, nodes)"),
        ({k: v for k, v in good.items() if k != "nodes"}, "top level: missing key 'nodes'"),
        ({**good, "input": {"channels": 3, "resolution": 0}}, "key 'input.resolution' must be a positive integer, got 0"),
        ({**good, "num_classes": "10"}, "key 'num_classes' must be a positive integer, got '10'"),
        ({**good, "nodes": [*good["nodes"][:1], "a"]}, "nodes[1]: expected a mapping with 'name' and 'op', got str"),
        ({**good, "nodes": [*good["nodes"][:1], {"name": "a", "out_channels": 8}]}, "node 'a': missing key 'op'"),
        ({**good, "nodes": [*good["nodes"][:1], {"op": "conv"}]}, "nodes[1]: missing key 'name'"),
        ({**good, "nodes": [*good["nodes"][:1], {"name": "a", "op": "conv", "inputs": "input", "out_channels": 8}]}, "node 'a': 'inputs' must be a list of node names"),
    ]
    for data, message in cases:
        assert graph_error(lambda data=data: from_dict(data)) == message


def test_load_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nnodes: [\n  - {name: a\n")
    with pytest.raises(UserError, match=rf"^{re.escape(str(path))}:\d+:\d+: YAML syntax error: "):
        load(path)
    path = tmp_path / "bad.json"
    path.write_text('{"name": "x",\n "nodes": [}')
    with pytest.raises(UserError, match=rf"^{re.escape(str(path))}:2:\d+: JSON syntax error: "):
        load(path)
    path = tmp_path / "chan.yaml"
    save(chain(("a", "conv", ["input"], {"out_channels": 32}), ("b", "conv", ["a"], {"out_channels": 8, "in_channels": 24}), *head("b")), path)
    with pytest.raises(UserError) as info:
        load(path)
    assert str(info.value) == f"{path}: node 'b': in_channels 24, but 'a' produces 32"
    assert load(path, validate=False).attrs("b")["in_channels"] == 24
    with pytest.raises(UserError, match="no such file"):
        load(tmp_path / "missing.yaml")


# -- serialisation ------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip(tmp_path, small, seed_graph, suffix):
    for graph in (small, seed_graph):
        path = save(graph, tmp_path / f"{graph.name}{suffix}")
        back = load(path)
        assert back == graph
        assert back.structural_hash() == graph.structural_hash()
        assert back.infer_shapes() == graph.infer_shapes()
        assert save(back, tmp_path / f"again{suffix}").read_text() == path.read_text()  # stable text


def test_file_format_leaves_defaults_out(tmp_path, small):
    data = to_dict(small)
    assert data["format"] == "gensynth-graph/1"
    assert data["input"] == {"channels": 3, "resolution": 32} and data["num_classes"] == 10
    entries = {n["name"]: n for n in data["nodes"]}
    assert entries["left"] == {"name": "left", "op": "dwconv", "inputs": ["stem"], "out_channels": 16}
    assert entries["cat"]["inputs"] == ["left", "right"]
    assert "inputs" not in entries["input"]
    assert json.loads(json.dumps(data)) == data  # plain data only


def test_equality_and_retarget(small):
    assert small == small.copy()
    other = small.retarget(num_classes=5)
    assert other != small and other.num_classes == 5 and small.num_classes == 10
    assert other.infer_shapes()["fc"] == (5,)
    assert other.structural_hash() != small.structural_hash()
    moved = small.retarget(resolution=64)
    assert moved.infer_shapes()["stem"] == (16, 32, 32) and small.resolution == 32


def test_hash_depends_on_port_order():
    def build(order):
        return chain(("a", "conv", ["input"], {"out_channels": 8}), ("b", "pwconv", ["input"], {"out_channels": 4}), ("cat", "concat", order, {}), *head("cat"))

    assert build(["a", "b"]).structural_hash() != build(["b", "a"]).structural_hash()


def test_hash_tells_shared_from_duplicated_computation():
    # a = conv(x); sum = a + pw(a)   versus   a = conv(x); c = conv(x); sum = a + pw(c): same node multiset
    shared = chain(("a", "conv", ["input"], {"out_channels": 8}), ("a2", "pwconv", ["a"], {"out_channels": 8}), ("sum", "add", ["a", "a2"], {}), *head("sum"))
    dup = chain(("a", "conv", ["input"], {"out_channels": 8}), ("c", "conv", ["input"], {"out_channels": 8}), ("a2", "pwconv", ["c"], {"out_channels": 8}), ("sum", "add", ["a", "a2"], {}), *head("sum"))
    assert shared.structural_hash() != dup.structural_hash()


def test_graphml_is_readable_by_networkx(tmp_path, seed_graph):
    path = write_graphml(seed_graph, tmp_path / "seed.graphml")
    back = nx.read_graphml(path)
    assert set(back.nodes) == set(seed_graph.g.nodes)
    assert set(back.edges) == set(seed_graph.g.edges)
    for node, data in back.nodes(data=True):
        original = {k: v for k, v in seed_graph.g.nodes[node].items() if v is not None}
        assert data == original, node
    for u, v, port in back.edges(data="port"):
        assert port == seed_graph.g.edges[u, v]["port"]
    assert back.graph["num_classes"] == 1000


def test_draw_dot(tmp_path, small):
    path = draw(small, tmp_path / "small.dot")
    text = path.read_text()
    assert text.startswith("digraph small")
    assert text.count("->") == small.g.number_of_edges()
    for node in small.g.nodes:
        assert f'"{node}"' in text or f"{node} [" in text or f"\t{node} " in text
    assert "24×8×8" in text  # the inferred shape of 'down' is in its label
    assert to_dot(small).source == text


@pytest.mark.skipif(not shutil.which("dot"), reason="graphviz's dot is not installed")
def test_draw_svg(tmp_path, small):
    text = draw(small, tmp_path / "small.svg").read_text()
    assert "<svg" in text and "</svg>" in text
    assert "blurpool" in text


def test_draw_rejects_unknown_format(tmp_path, small):
    with pytest.raises(UserError, match=r"cannot draw to '\.txt'"):
        draw(small, tmp_path / "small.txt")


def test_every_op_is_documented_buildable_and_counted():
    assert list_ops() == list(OPS)
    for name in list_ops():
        spec = OPS[name]
        assert spec.name == name and spec.doc, name
        assert name == "input" or spec.module is not None, f"op '{name}' has no module factory"
        assert spec.macs is not None, f"op '{name}' has no MAC rule"


# -- proxy adaptation ------------------------------------------------------------------


def test_reductions_of_the_seed(seed_graph):
    found = reductions(seed_graph)
    assert found["stem"] == 0
    assert {found[f"col{i}.down"] for i in range(4)} == {1}
    assert found["stage0.down"] == found["stage0.short.pool"] == 2
    assert max(found.values()) == 4


@pytest.mark.parametrize("skip", [0, 1, 2])
def test_for_proxy_keeps_shapes_consistent(seed_graph, skip):
    proxy = for_proxy(seed_graph, skip)
    assert seed_graph.attrs("stem")["stride"] == 2  # the original is untouched
    if skip == 0:
        assert proxy == seed_graph
    res = 32
    proxy.validate(res)
    p_shapes = proxy.infer_shapes(res)
    full = seed_graph.infer_shapes(res * 2**skip)
    levels = reductions(seed_graph)
    for node, shape in full.items():
        assert p_shapes[node][0] == shape[0], node  # channels never change
    # below the skipped levels the proxy sees what the full network sees at res * 2**skip
    late = [n for n in full if len(full[n]) == 1 or full[n][1] <= res]
    assert late and all(p_shapes[n] == full[n] for n in late)
    # the reductions at skipped levels are gone, the others stay (one level earlier per skipped one)
    assert reductions(proxy, res) == {n: level - skip for n, level in levels.items() if level >= skip}
    assert p_shapes["classifier"] == (1000,)


def test_proxy_model_has_the_full_models_weights(seed_graph):
    full = build_model(seed_graph)
    proxy = build_model(for_proxy(seed_graph, 1), 32)
    full_sd, proxy_sd = full.state_dict(), proxy.state_dict()
    assert list(full_sd) == list(proxy_sd)
    assert {k: v.shape for k, v in full_sd.items()} == {k: v.shape for k, v in proxy_sd.items()}
    full.load_state_dict(proxy_sd)  # strict: a proxy-trained state dict loads into the full model
    with torch.no_grad():
        assert proxy.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 1000)
