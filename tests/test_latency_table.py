"""The per-node latency table: keys, caching on disk, damaged files, both backends (no timing accuracy here: see
experiments/bench_predictor.py)."""
from __future__ import annotations

import json

import pytest
import yaml

from gensynth.cost.latency_table import LatencyKey, LatencyTable, default_dir, measure_node
from gensynth.errors import UserError
from gensynth.ir import ArchGraph

from conftest import small_graph

FAST = {"runs": 2, "warmup": 0}


def twin_graph(names: tuple[str, str] = ("a", "b")) -> ArchGraph:
    """input → stem → two identical depthwise convolutions → add → pool → classifier, at 16 px."""
    g = ArchGraph("twins", 3, 16, 10)
    g.add("input", "input")
    g.add("stem", "stem", ["input"], out_channels=8, stride=2)
    for name in names:
        g.add(name, "dwconv", ["stem"], out_channels=8)
    g.add("sum", "add", list(names))
    g.add("gp", "global_pool", ["sum"])
    g.add("fc", "classifier", ["gp"])
    return g


def test_key_is_the_node_with_sorted_params_and_round_trips_through_json():
    graph = small_graph(16)
    key = LatencyKey.for_node(graph, "cat", graph.infer_shapes(), "torch", 1)
    assert key == LatencyKey("concat", (), ((16, 8, 8), (8, 8, 8)), (24, 8, 8), "torch", 1)
    stem = LatencyKey.for_node(graph, "stem", graph.infer_shapes(), "torch", 1)
    assert [name for name, _ in stem.params] == sorted(graph.attrs("stem"))
    again = LatencyKey.from_json(json.loads(json.dumps(stem.to_json())))
    assert again == stem and hash(again) == hash(stem)


def test_key_ignores_node_names_and_attribute_order(tmp_path):
    g = ArchGraph("renamed", 3, 16, 10)
    g.add("x", "input")
    g.add("first", "stem", ["x"], stride=2, out_channels=8)  # attributes in another order
    for name in ("p", "q"):
        g.add(name, "dwconv", ["first"], out_channels=8)
    g.add("plus", "add", ["p", "q"])
    g.add("pool", "global_pool", ["plus"])
    g.add("head", "classifier", ["pool"])
    table = LatencyTable("torch", path=tmp_path / "unused.json")
    assert sorted(map(repr, table.keys(g).values())) == sorted(map(repr, table.keys(twin_graph()).values()))


def test_key_distinguishes_shapes_params_backend_and_threads():
    def stem_key(graph: ArchGraph, backend: str = "torch", threads: int = 1) -> LatencyKey:
        return LatencyKey.for_node(graph, "stem", graph.infer_shapes(), backend, threads)

    larger = small_graph(16)
    larger.g.nodes["stem"]["kernel"] = 5  # the same shapes
    base = stem_key(small_graph(16))
    others = [stem_key(small_graph(32)), stem_key(larger), stem_key(small_graph(16), "onnxruntime"), stem_key(small_graph(16), threads=2)]
    assert len({base, *others}) == 5
    assert len({json.dumps(k.to_json(), sort_keys=True) for k in (base, *others)}) == 5


def test_identical_nodes_share_one_entry(tmp_path, one_thread):
    table = LatencyTable("torch", path=tmp_path / "t.json", **FAST)
    keys = table.keys(twin_graph())
    assert keys["a"] == keys["b"]
    prediction = table.predict(twin_graph())
    assert len(table) == len(set(keys.values())) == len(keys) - 1
    assert prediction.measured == len(table) + 1  # the overhead too
    assert prediction.per_node_ms["a"] == prediction.per_node_ms["b"]


def test_second_prediction_measures_nothing_and_the_file_round_trips(tmp_path, one_thread):
    path = tmp_path / "table.json"
    graph = small_graph(16)
    first = LatencyTable("torch", path=path, **FAST).predict(graph)
    assert (first.measured, first.cached) == (len(graph), 0)  # one entry per node but the input (all differ), and the overhead
    assert set(first.per_node_ms) == set(graph.order()) - {"input"}
    assert first.total_ms == pytest.approx(sum(first.per_node_ms.values()) + first.overhead_ms)
    assert all(ms >= 0 for ms in first.per_node_ms.values())
    table = LatencyTable("torch", path=path, **FAST)  # loaded from the file
    for _ in range(2):
        again = table.predict(graph)
        assert (again.measured, again.cached) == (0, first.measured)
        assert again.total_ms == first.total_ms and again.per_node_ms == first.per_node_ms
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.json", "table.json.lock"]  # no temporary file left


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", json.dumps({"format": 1, "profile": {}, "overhead_ms": None, "entries": []}),
                                  "\udcff"])
def test_a_damaged_file_is_a_one_line_user_error_naming_it(tmp_path, text):
    path = tmp_path / "table.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(UserError, match="damaged latency table") as err:
        LatencyTable("torch", path=path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_table_of_another_profile_is_refused(tmp_path):
    path = tmp_path / "table.json"
    LatencyTable("torch", threads=1, path=path).save()
    with pytest.raises(UserError, match="another profile") as err:
        LatencyTable("torch", threads=2, path=path)
    assert str(path) in str(err.value)


def test_default_location_is_one_file_per_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("GENSYNTH_CACHE", str(tmp_path / "cache"))
    one, two = LatencyTable("torch", threads=1), LatencyTable("torch", threads=2)
    assert one.path.parent == tmp_path / "cache" / "latency" == default_dir()
    assert one.path != two.path and one.path.name.startswith("torch-1t-")
    monkeypatch.delenv("GENSYNTH_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert LatencyTable("torch").path.parent == tmp_path / "home" / ".cache" / "gensynth" / "latency"


def test_unknown_backend_is_refused(tmp_path):
    with pytest.raises(ValueError, match="tvm"):
        LatencyTable("tvm", path=tmp_path / "unused.json")


def test_onnxruntime_predicts_and_caches(tmp_path, one_thread):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    graph = small_graph(16)
    table = LatencyTable("onnxruntime", path=tmp_path / "ort.json", **FAST)
    first = table.predict(graph)
    assert first.measured == len(graph) and first.total_ms > 0
    assert table.profile.onnxruntime is not None
    again = LatencyTable("onnxruntime", path=tmp_path / "ort.json", **FAST).predict(graph)
    assert again.measured == 0 and again.total_ms == first.total_ms


def test_a_multi_input_node_is_timed_alone(one_thread):
    graph = small_graph(16)
    key = LatencyKey.for_node(graph, "cat", graph.infer_shapes(), "torch", 1)  # inputs of different widths
    assert measure_node(key, **FAST) > 0


def test_two_processes_saving_one_table_keep_each_others_entries(tmp_path, one_thread):
    path = tmp_path / "table.json"
    first, second = LatencyTable("torch", path=path, **FAST), LatencyTable("torch", path=path, **FAST)  # both loaded before either saved
    first.predict(twin_graph())
    second.predict(small_graph(16))
    merged = LatencyTable("torch", path=path, **FAST)
    own = [set(table.keys(graph).values()) for table, graph in ((first, twin_graph()), (second, small_graph(16)))]
    assert own[0] - own[1] and own[1] - own[0], "the two graphs need entries of their own"
    assert set(merged.entries) == own[0] | own[1]


def test_an_entry_another_process_measured_meanwhile_is_used_not_measured_again(tmp_path, one_thread):
    path = tmp_path / "table.json"
    first, second = LatencyTable("torch", path=path, **FAST), LatencyTable("torch", path=path, **FAST)  # both loaded before either measured
    mine = first.predict(small_graph(16))
    theirs = second.predict(small_graph(16))
    assert theirs.measured == 0 and theirs.cached == mine.measured
    assert theirs.total_ms == mine.total_ms and theirs.per_node_ms == mine.per_node_ms


def test_a_search_with_predicted_latency_records_it_and_times_the_winner(tmp_path, monkeypatch):
    from tiny_space import main_one_thread, write_protocol, write_tiny_space

    monkeypatch.setenv("GENSYNTH_CACHE", str(tmp_path / "cache"))
    protocol = write_protocol(tmp_path, latency={"runs": 2, "warmup": 0, "backend": "torch", "predict": True})
    out = tmp_path / "run"
    assert main_one_thread(["search", "--space", str(write_tiny_space(tmp_path)), "--config", str(protocol), "--budget", "2",
                            "--seed", "0", "--out", str(out), "--no-progress"]) == 0
    records = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    evaluated = [r for r in records if r["status"] == "evaluated"]
    assert evaluated and all(r["measurements"]["latency_ms"] > 0 and "latency_iqr_ms" not in r["measurements"] for r in evaluated)
    (table,) = (tmp_path / "cache" / "latency").glob("*.json")
    assert table.name.startswith("torch-1t-") and json.loads(table.read_text())["entries"]
    assert "timed now" in (out / "final" / "summary.md").read_text() and "the search predicted" in (out / "final" / "summary.md").read_text()


def write_table(path, graph, ms: float, overhead_ms: float, threads: int = 1) -> None:
    """A torch table file holding ``ms`` for every node of ``graph``."""
    table = LatencyTable("torch", threads=threads, path=path)
    table.entries = dict.fromkeys(table.keys(graph).values(), ms)
    table.overhead_ms = overhead_ms
    table.save()


def test_a_pinned_table_is_used_before_the_cache_and_never_written(tmp_path, one_thread):
    graph = small_graph(16)
    pinned = tmp_path / "published.json"
    write_table(pinned, graph, ms=1.25, overhead_ms=0.25)
    before = pinned.read_bytes()
    cache = tmp_path / "cache.json"
    write_table(cache, graph, ms=9.0, overhead_ms=0.5)  # this machine's own values, to be overruled
    prediction = LatencyTable("torch", path=cache, pinned=pinned, **FAST).predict(graph)
    assert prediction.measured == 0 and prediction.overhead_ms == 0.25
    assert set(prediction.per_node_ms.values()) == {1.0}  # 1.25 - the pinned overhead
    assert prediction.total_ms == pytest.approx(len(prediction.per_node_ms) + 0.25)
    twins = LatencyTable("torch", path=cache, pinned=pinned, **FAST)
    twins.predict(twin_graph())  # entries the pinned table lacks are measured into the cache
    assert pinned.read_bytes() == before
    assert set(twins.keys(twin_graph()).values()) <= set(LatencyTable("torch", path=cache).entries)


def test_a_pinned_table_of_another_profile_is_refused_and_resolve_leaves_it_out(tmp_path, one_thread):
    from gensynth.search.config import SearchConfig, resolve

    pinned = tmp_path / "two-threads.json"
    write_table(pinned, small_graph(16), ms=1.0, overhead_ms=0.1, threads=2)
    with pytest.raises(UserError, match="another profile") as err:
        LatencyTable("torch", threads=1, path=tmp_path / "cache.json", pinned=pinned)
    assert str(pinned) in str(err.value)
    config = SearchConfig()
    config.latency.backend, config.latency.predict, config.latency.table = "torch", True, str(pinned)
    assert resolve(config).latency.table == ""
    config.latency.threads = 2
    assert resolve(config).latency.table == str(pinned.resolve())


def test_the_config_resolves_a_relative_table_beside_itself_and_checks_it(tmp_path):
    from gensynth.search.config import load_config

    (tmp_path / "published.json").write_text("{}")
    config_file = tmp_path / "run.yaml"
    config_file.write_text("latency: {predict: true, table: published.json}\n")
    assert load_config(config_file, {}).latency.table == str(tmp_path / "published.json")
    config_file.write_text("latency: {predict: true, table: missing.json}\n")
    with pytest.raises(UserError, match=r"key 'latency.table': no such file: .*missing.json"):
        load_config(config_file, {})
    config_file.write_text("latency: {table: published.json}\n")
    with pytest.raises(UserError, match=r"key 'latency.table': is read only when latency.predict is true"):
        load_config(config_file, {})



def test_a_damaged_pinned_table_is_one_line_naming_it_without_the_cache_remedy(tmp_path):
    pinned = tmp_path / "published.json"
    pinned.write_text("{not json")
    with pytest.raises(UserError, match="damaged latency table") as err:
        LatencyTable("torch", path=tmp_path / "cache.json", pinned=pinned)
    assert str(pinned) in str(err.value) and "remove it" not in str(err.value)


def test_a_search_given_a_table_of_another_profile_says_so_and_measures_its_own(tmp_path, monkeypatch, capsys):
    from tiny_space import main_one_thread, write_protocol, write_tiny_space

    monkeypatch.setenv("GENSYNTH_CACHE", str(tmp_path / "cache"))
    foreign = tmp_path / "two-threads.json"
    write_table(foreign, small_graph(16), ms=1.0, overhead_ms=0.1, threads=2)
    protocol = write_protocol(tmp_path, latency={"runs": 2, "warmup": 0, "backend": "torch", "predict": True, "table": foreign.name})
    out = tmp_path / "run"
    assert main_one_thread(["search", "--space", str(write_tiny_space(tmp_path)), "--config", str(protocol), "--budget", "1",
                            "--seed", "0", "--out", str(out), "--no-progress"]) == 0
    assert f"latency.table {foreign} was measured on another device profile" in capsys.readouterr().err
    assert yaml.safe_load((out / "config.yaml").read_text())["latency"]["table"] == ""
    assert list((tmp_path / "cache" / "latency").glob("torch-1t-*.json"))  # this machine's own table
