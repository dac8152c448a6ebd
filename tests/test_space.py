"""The dcac search space: sampling, genome → graph, building, proxy adaptation, properties.

The 1000-architecture sweep runs in two single-thread worker processes (the
suite targets 2 CPU cores; two one-thread processes out-run one two-thread
process on this kind of machine). One architecture costs about 0.14 s there:
sample, validate, build at 224 px and at the proxy resolution, two forward passes.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import random
import tempfile
import time
from pathlib import Path

import networkx as nx
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gensynth.errors import UserError
from gensynth.ir import OPS, ArchGraph, for_proxy, load, reductions, save
from gensynth.nn import build_model, module_name
from gensynth.space import load_space
from gensynth.space.space import parse_space

ROOT = Path(__file__).resolve().parent.parent
SEEDS = 1000
MACS_EVERY = 50
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

pytestmark = pytest.mark.usefixtures("one_thread")


# -- the sweep: every sample validates, builds and runs at 224 px and at the proxy resolution ---------------


def _module_shapes(model, x):
    seen = {}
    handles = [
        model.get_submodule(name).register_forward_hook(lambda m, i, o, node=node: seen.__setitem__(node, tuple(o.shape[1:])))
        for name, node in model.node_names.items()
    ]
    with torch.no_grad():
        out = model(x)
    for h in handles:
        h.remove()
    return out, seen


def check_architecture(space, seed: int, check_macs: bool) -> None:
    """Everything one sampled architecture must satisfy; raises AssertionError (or the package's error)."""
    from gensynth.cost import count_macs
    from torch.utils.flop_counter import FlopCounterMode

    graph = space.to_graph(space.sample(seed))
    graph.validate()
    dep = space.deployment
    shapes = graph.infer_shapes()
    out_node = graph.output_node()
    assert shapes[out_node] == (dep.num_classes,) == (1000,)
    # channels-last, as gensynth.cost.torch_call deploys: NCHW max-pooling takes a slow path in torch
    model = build_model(graph).eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, dep.channels, dep.resolution, dep.resolution).contiguous(memory_format=torch.channels_last)
    if check_macs:
        with FlopCounterMode(display=False) as counter:
            y, seen = _module_shapes(model, x)
        macs = count_macs(model, (dep.channels, dep.resolution, dep.resolution)).macs
        half = counter.get_total_flops() / 2
        assert abs(macs - half) <= 0.01 * half, f"count_macs {macs} vs FlopCounterMode/2 {half}"
    else:
        y, seen = _module_shapes(model, x)
    assert tuple(y.shape) == (1, *shapes[out_node])
    bad = {n: (seen[n], shapes[n]) for n in seen if seen[n] != shapes[n]}
    assert not bad, f"module output != inferred shape: {bad}"
    assert torch.isfinite(y).all()

    proxy = for_proxy(graph, space.proxy.skip_reductions)
    res = space.proxy.resolution
    proxy.validate(res)
    p_shapes = proxy.infer_shapes(res)
    p_model = build_model(proxy, res).eval()
    py, p_seen = _module_shapes(p_model, torch.randn(1, dep.channels, res, res))
    assert tuple(py.shape) == (1, *p_shapes[out_node]) == (1, 1000)
    bad = {n: (p_seen[n], p_shapes[n]) for n in p_seen if p_seen[n] != p_shapes[n]}
    assert not bad, f"proxy module output != inferred shape: {bad}"
    full_sd, proxy_sd = model.state_dict(), p_model.state_dict()
    assert {k: v.shape for k, v in full_sd.items()} == {k: v.shape for k, v in proxy_sd.items()}, "proxy weights differ"


def sweep_chunk(seeds: list[int], macs_every: int) -> tuple[list[str], float]:
    """Worker: check ``seeds``; return failures (one line each) and the CPU time taken."""
    torch.set_num_threads(1)
    start = time.process_time()
    space = load_space("dcac")
    failures = []
    for seed in seeds:
        torch.manual_seed(seed)
        try:
            check_architecture(space, seed, check_macs=seed % macs_every == 0)
        except Exception as err:  # noqa: BLE001 -- report every failing seed, not only the first
            failures.append(f"seed {seed}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    return failures, time.process_time() - start


def run_sweep(seeds: range, workers: int | None = None) -> list[str]:
    """Check ``seeds`` in ``workers`` single-thread processes (default: 2, or 1 on a 1-core machine or under xdist)."""
    # under pytest-xdist the other core already runs a test worker
    workers = workers or (1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, os.cpu_count() or 1)))
    chunks = [list(seeds[i::20]) for i in range(20)]
    start, cpu = time.perf_counter(), 0.0
    failures: list[str] = []
    if workers == 1:
        results = [sweep_chunk(chunk, MACS_EVERY) for chunk in chunks]
    else:
        ctx = multiprocessing.get_context("spawn")  # no fork after torch has started its thread pools
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            results = list(pool.map(sweep_chunk, chunks, [MACS_EVERY] * len(chunks)))
    for chunk_failures, chunk_cpu in results:
        failures += chunk_failures
        cpu += chunk_cpu
    wall = time.perf_counter() - start
    print(f"\n{len(seeds)} architectures checked in {wall:.1f} s wall, {cpu:.1f} s CPU in {workers} worker(s)")
    return sorted(failures, key=lambda f: int(f.split()[1].rstrip(":")))


@pytest.mark.first  # the longest test: started first so that pytest-xdist's workers finish together
@pytest.mark.parametrize("part", range(4))
def test_1000_samples_validate_build_and_run(part):
    seeds = range(part * SEEDS // 4, (part + 1) * SEEDS // 4)
    failures = run_sweep(seeds)
    assert not failures, f"{len(failures)} of {len(seeds)} failed:\n" + "\n".join(failures[:20])


@pytest.mark.slow
def test_5000_samples_validate_build_and_run():
    failures = run_sweep(range(SEEDS, SEEDS + 5000))
    assert not failures, f"{len(failures)} of 5000 failed:\n" + "\n".join(failures[:20])


# -- sampling ------------------------------------------------------------------


def test_sampling_is_deterministic(dcac_space):
    again = load_space("dcac")
    for seed in (0, 1, 12345, 10**9):
        genome = dcac_space.sample(seed)
        assert genome == dcac_space.sample(seed) == again.sample(seed) == dcac_space.sample(random.Random(seed))
        a, b = dcac_space.to_graph(genome), again.to_graph(again.sample(seed))
        assert a == b and a.structural_hash() == b.structural_hash()
    assert dcac_space.check(dcac_space.sample(3)) == dcac_space.sample(3)


def test_different_seeds_give_different_architectures(dcac_space):
    genomes = [dcac_space.sample(s) for s in range(200)]
    hashes = {dcac_space.to_graph(g).structural_hash() for g in genomes}
    assert len(hashes) == 200
    # every gene takes more than one value across the samples (nothing is stuck)
    names = {name for g in genomes for name in g}
    stuck = [n for n in names if len({repr(g[n]) for g in genomes if n in g}) == 1]
    assert not stuck, stuck


def test_check_rejects_genomes_outside_the_space(dcac_space):
    genome = dcac_space.sample(0)
    with pytest.raises(UserError, match=r"gene 'activation' = 'swish' is not one of"):
        dcac_space.check({**genome, "activation": "swish"})
    with pytest.raises(UserError, match=r"gene 'bogus' is not part of this genome"):
        dcac_space.check({**genome, "bogus": 1})
    with pytest.raises(UserError, match=r"gene 'head.width' is missing"):
        dcac_space.check({k: v for k, v in genome.items() if k != "head.width"})


# -- size ------------------------------------------------------------------


def tiny_space_data() -> dict:
    """A dcac-family space with one or two options per gene (48 genomes, counted by hand below)."""
    data = yaml.safe_load((ROOT / "search_spaces" / "dcac.yaml").read_text())
    for key in ("seed", "seed_genome"):
        data.pop(key, None)
    data["name"] = "tiny"
    genes = data["genes"]
    for name, value in list(genes.items()):
        if isinstance(value, dict):
            value["genes"] = {k: v[:1] for k, v in value["genes"].items()}
        else:
            genes[name] = value[:1]
    genes["activation"] = ["relu", "silu"]  # 2
    genes["col"]["count"] = [1, 2]  # col body: depth 1 or 2 → 2 + 2**2 = 6
    genes["col"]["genes"]["depth"] = [1, 2]
    genes["merge.op"] = ["concat", "add"]  # 2
    genes["stage"]["count"] = [1]  # stage body: downsample 2 options → 2
    genes["stage"]["genes"]["downsample"] = ["blurpool", "avgpool"]
    data["deployment"] = {"channels": 3, "resolution": 64, "num_classes": 10}
    return data


class Odometer:
    """A chooser that follows a path of option indices, extending it with zeros."""

    def __init__(self, path: list[int]):
        self.path, self.sizes, self.i = list(path), [], 0

    def suggest_categorical(self, name, choices):
        if self.i == len(self.path):
            self.path.append(0)
        self.sizes.append(len(choices))
        value = choices[self.path[self.i]]
        self.i += 1
        return value


def all_genomes(space) -> list[dict]:
    """Brute force: walk every branch of the decision tree."""
    found, path = [], []
    while True:
        od = Odometer(path)
        found.append(space.suggest(od))
        path, sizes = od.path[: od.i], od.sizes
        k = len(path) - 1
        while k >= 0 and path[k] + 1 >= sizes[k]:
            k -= 1
        if k < 0:
            return found
        path = path[:k] + [path[k] + 1]


def test_size_equals_brute_force_count(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_space_data()))
    space = load_space(path)
    genomes = all_genomes(space)
    distinct = {tuple(sorted((k, repr(v)) for k, v in g.items())) for g in genomes}
    assert len(distinct) == len(genomes) == space.size() == 2 * 6 * 2 * 2
    for genome in genomes:  # every genome of the space is a valid architecture
        space.to_graph(genome).validate()
    sampled = {tuple(sorted((k, repr(v)) for k, v in space.sample(s).items())) for s in range(1500)}
    assert sampled == distinct  # uniform sampling reaches all of them and nothing else


# -- the seed architecture ------------------------------------------------------------------


def test_shipped_seed_graph_is_what_make_seed_graph_writes(dcac_space, seed_graph, tmp_path):
    rebuilt = dcac_space.to_graph(dcac_space.seed_genome, name="attendnext-seed")
    assert seed_graph == rebuilt
    assert seed_graph.structural_hash() == rebuilt.structural_hash()
    shipped = (ROOT / "search_spaces" / "attendnext_seed.yaml").read_text()
    assert save(rebuilt, tmp_path / "attendnext_seed.yaml").read_text() == shipped, "run experiments/make_seed_graph.py"
    # the same way the script does it (without the seed key)
    data = yaml.safe_load((ROOT / "search_spaces" / "dcac.yaml").read_text())
    data.pop("seed")
    space = parse_space(data, ROOT / "search_spaces" / "dcac.yaml")
    assert space.to_graph(space.seed_genome, name="attendnext-seed") == seed_graph


def main_path(graph: ArchGraph) -> list[str]:
    """Nodes every input → output path passes through, in order (the dominator chain of the output)."""
    dom = nx.immediate_dominators(graph.g, graph.input_node())
    chain = [graph.output_node()]
    while chain[-1] != graph.input_node():
        chain.append(dom[chain[-1]])
    return chain[::-1]


def columns(graph: ArchGraph) -> list[set[str]]:
    """The node sets of the parallel branches between the stem and the node where they merge."""
    path = main_path(graph)
    stem = next(n for n in path if graph.op(n) == "stem")
    merge = path[path.index(stem) + 1]
    between = nx.descendants(graph.g, stem) & nx.ancestors(graph.g, merge)
    return [({s} | nx.descendants(graph.g, s)) & between for s in graph.g.successors(stem)]


def test_seed_follows_the_paper(seed_graph):
    shapes = seed_graph.infer_shapes()
    cols = columns(seed_graph)
    assert len(cols) == 4
    assert all(a.isdisjoint(b) for i, a in enumerate(cols) for b in cols[i + 1 :])  # no shared node
    for col in cols:  # each column: convolutions and DC-AC blocks
        ops = {seed_graph.op(n) for n in col}
        assert "dcac" in ops and ops & {"conv", "dwconv", "pwconv"}
    # anti-aliased downsampling everywhere: each reduction is a low-pass op or directly follows a blur-pool
    found = reductions(seed_graph)
    assert found
    for node in found:
        low_pass = OPS[seed_graph.op(node)].low_pass
        after_blur = seed_graph.op(seed_graph.inputs(node)[0]) == "blurpool"
        assert low_pass or after_blur, node
    assert sum(seed_graph.op(n) == "blurpool" for n in found) >= 4
    assert not any(seed_graph.op(n) == "pwconv" and seed_graph.attrs(n)["stride"] > 1 for n in seed_graph.g)
    # channels never decrease along the main path after the columns merge, and grow overall
    path = main_path(seed_graph)
    merge = next(n for n in path if seed_graph.op(n) == "concat")
    after = [n for n in path[path.index(merge) + 1 :] if len(shapes[n]) == 3]
    channels = [shapes[n][0] for n in after]
    assert channels == sorted(channels) and channels[-1] > channels[0]
    resolution = [shapes[n][1] for n in after]
    assert resolution == sorted(resolution, reverse=True) and len(set(resolution)) >= 4


def test_space_expresses_rule_breaking_designs(dcac_space):
    """The constraint engine needs something to reject: single columns, strided 1×1, aliased downsampling."""
    want = {"single column", "strided pwconv", "aliased downsampling"}
    found: dict[str, int] = {}
    for seed in range(500):
        genome = dcac_space.sample(seed)
        graph = dcac_space.to_graph(genome)
        if "single column" not in found and genome["col.count"] == 1 and len(columns(graph)) == 1:
            found["single column"] = seed
        if any(graph.op(n) == "pwconv" and graph.attrs(n)["stride"] == 2 for n in graph.g):
            found.setdefault("strided pwconv", seed)
        for node in reductions(graph):
            op, src = graph.op(node), graph.inputs(node)[0]
            strided = op == "maxpool" or (OPS[op].tags & {"conv"} and graph.attrs(node)["stride"] > 1)
            if strided and graph.op(src) != "blurpool":
                found.setdefault("aliased downsampling", seed)
        if set(found) == want:
            break
    assert set(found) == want, f"not found in 500 samples: {want - set(found)}"


# -- properties ------------------------------------------------------------------


@PROPERTY
@given(st.integers(0, 10**6))
def test_save_load_round_trip(dcac_space, seed):
    graph = dcac_space.to_graph(dcac_space.sample(seed), name=f"s{seed}")
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".yaml", ".json"):
            back = load(save(graph, Path(tmp) / f"g{suffix}"))
            assert back == graph
            assert back.structural_hash() == graph.structural_hash()


@PROPERTY
@given(st.integers(0, 10**6))
def test_hash_ignores_names_and_insertion_order(dcac_space, seed):
    graph = dcac_space.to_graph(dcac_space.sample(seed))
    rng = random.Random(seed)
    names = list(graph.g.nodes)
    shuffled = names[:]
    rng.shuffle(shuffled)
    renamed = graph.copy()
    renamed.g = nx.relabel_nodes(graph.g, {old: f"n{i}" for i, old in enumerate(shuffled)}, copy=True)
    assert renamed != graph
    assert renamed.structural_hash() == graph.structural_hash()
    renamed.validate()

    reordered = ArchGraph(graph.name, graph.input_channels, graph.resolution, graph.num_classes)
    for node in shuffled:
        reordered.g.add_node(node, **graph.g.nodes[node])
    edges = list(graph.g.edges(data="port"))
    rng.shuffle(edges)
    for u, v, port in edges:
        reordered.connect(u, v, port)
    assert list(reordered.g.nodes) != names or len(names) < 3
    assert reordered == graph
    assert reordered.structural_hash() == graph.structural_hash()


@PROPERTY
@given(st.integers(0, 10**6), st.integers(0, 10**6))
def test_changing_an_attribute_changes_the_hash(dcac_space, seed, pick):
    graph = dcac_space.to_graph(dcac_space.sample(seed))
    candidates = sorted(
        (node, key)
        for node in graph.g
        for key, value in graph.attrs(node).items()
        if isinstance(value, int) and not isinstance(value, bool)
    )
    node, key = candidates[pick % len(candidates)]
    changed = graph.copy()
    changed.g.nodes[node][key] += 1
    assert changed.structural_hash() != graph.structural_hash(), (node, key)
    flipped = graph.copy()
    flipped.g.nodes["classifier"]["dropout"] = 0.5
    assert flipped.structural_hash() != graph.structural_hash()


@PROPERTY
@given(st.integers(0, 10**6))
def test_built_shapes_equal_inferred_shapes(dcac_space, seed):
    from torch.fx.passes.shape_prop import ShapeProp

    res = 64
    graph = dcac_space.to_graph(dcac_space.sample(seed))
    shapes = graph.infer_shapes(res)
    model = build_model(graph, res).eval()
    with torch.no_grad():
        out = ShapeProp(model).propagate(torch.randn(1, 3, res, res))
    assert tuple(out.shape) == (1, *shapes[graph.output_node()])
    checked = 0
    for fx_node in model.graph.nodes:
        if fx_node.op == "call_module":
            node = model.node_names[fx_node.target]
            assert fx_node.target == module_name(node)
            assert tuple(fx_node.meta["tensor_meta"].shape[1:]) == shapes[node], node
            checked += 1
    assert checked == len(graph) - 1
