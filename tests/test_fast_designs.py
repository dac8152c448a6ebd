"""Issue 9's additions: the space's efficiency choices, genes added to a space later, latency as deployed."""
from __future__ import annotations

import pytest
import yaml

from conftest import small_graph
from gensynth.constraint import Candidate
from gensynth.cost import measure_deployed_latency, resolve_backend
from gensynth.errors import UserError
from gensynth.ir.serialize import to_dict
from gensynth.nn import build_model
from gensynth.plugins import instantiate
from gensynth.search.config import LatencyConfig, SearchConfig, load_config, resolve, upgrade_legacy, validate
from gensynth.search.inquisitor import ProbeTask, probe
from gensynth.space import builtin_spaces, load_space

RULES_1_TO_3 = ("columnar", "pointwise_strided", "antialiased_downsampling")


def fast_genome(space):
    """The seed with the stem reducing by 4 and narrow, strongly condensed columns."""
    genome = dict(space.seed_genome, **{"stem.reduce": 4})
    for i in range(genome["col.count"]):
        genome |= {f"col{i}.width": 8, f"col{i}.f_condense": 8}
    return space.check(genome)


def test_stem_reduce_4_starts_the_columns_at_a_quarter_resolution_and_keeps_rules_1_to_3(dcac_space):
    graph = dcac_space.to_graph(fast_genome(dcac_space))
    shapes = graph.infer_shapes()
    assert graph.op("stem.down") == "blurpool" and list(graph.inputs("stem.down")) == ["stem"]
    assert shapes["stem"][1:] == (112, 112) and shapes["stem.down"][1:] == (56, 56)
    assert all(shapes[f"col{i}.unit0"][1:] == (56, 56) for i in range(4))
    candidate = Candidate(fast_genome(dcac_space), graph, graph.structural_hash())
    for rule in RULES_1_TO_3:
        verdict = instantiate(rule).check(candidate)
        assert verdict.satisfied, (rule, verdict.reason)


def test_the_seed_is_still_the_papers_description(dcac_space, seed_graph):
    assert dcac_space.seed_genome["stem.reduce"] == 2 and "stem.down" not in seed_graph.g
    assert dcac_space.to_graph(dcac_space.seed_genome).structural_hash() == seed_graph.structural_hash()


def test_a_genome_recorded_before_stem_reduce_existed_builds_the_same_network(dcac_space, seed_graph):
    old = {k: v for k, v in dcac_space.seed_genome.items() if k != "stem.reduce"}
    assert dcac_space.upgrade(old)["stem.reduce"] == 2
    assert dcac_space.to_graph(old).structural_hash() == seed_graph.structural_hash()
    with pytest.raises(UserError, match="gene 'stem.reduce' is missing"):
        dcac_space.check(old)  # a genome offered as new must still be complete


@pytest.mark.parametrize("added, needle", [
    ({"stem.wdth": 2}, "key 'added_genes.stem.wdth': not a top-level gene"),
    ({"stem.reduce": 3}, "key 'added_genes.stem.reduce': 3 is not one of its options [2, 4]"),
    ([2], "key 'added_genes' must be a mapping"),
])
def test_bad_added_genes_are_one_line(tmp_path, added, needle):
    data = yaml.safe_load(builtin_spaces()["dcac"].read_text())
    data.pop("seed")
    data["added_genes"] = added
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError) as err:
        load_space(path)
    assert needle in str(err.value) and str(path) in str(err.value)


# -- latency as deployed ---------------------------------------------------------------------------------


def test_auto_backend_is_onnxruntime_when_installed_and_a_run_records_what_it_resolved_to():
    pytest.importorskip("onnxruntime")
    assert resolve_backend("auto") == "onnxruntime" and resolve_backend("torch") == "torch"
    config = SearchConfig()
    assert config.latency.backend == "auto"
    assert resolve(config).latency.backend == "onnxruntime" and config.latency.backend == "auto"


def test_an_unknown_backend_is_refused_naming_the_key():
    config = SearchConfig(latency=LatencyConfig(backend="tensorrt"))
    with pytest.raises(UserError, match=r"key 'latency.backend': must be one of \['auto', 'onnxruntime', 'torch'\], got 'tensorrt'"):
        validate(config)


def test_configs_written_before_backends_existed_read_as_torch(tmp_path):
    assert upgrade_legacy({"latency": {"runs": 3, "onnx": False}, "workers": 2}) == {"latency": {"runs": 3, "backend": "torch"}, "workers": 1}
    assert upgrade_legacy({"latency": {"onnx": False}, "executor": "ray", "workers": 2})["workers"] == 2
    path = tmp_path / "old.yaml"
    path.write_text("latency: {runs: 2, warmup: 0, threads: 1, onnx: false}\n")
    assert load_config(path, {}).latency.backend == "torch"


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_the_probe_times_the_inference_form_on_the_backend_with_its_spread(backend, one_thread):
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime")
    result = probe(ProbeTask(to_dict(small_graph()), LatencyConfig(runs=5, warmup=1, backend=backend), threads=1))
    assert result.ok, result.reason
    m = result.measurements
    assert m["latency_ms"] > 0 and 0 <= m["latency_iqr_ms"] < 10 * m["latency_ms"]


def test_deployed_latency_names_its_backend(one_thread):
    model = build_model(small_graph())
    assert measure_deployed_latency(model, (3, 32, 32), "torch", runs=3, warmup=0).backend == "torch"
    with pytest.raises(ValueError, match="unknown latency backend 'tvm'"):
        measure_deployed_latency(model, (3, 32, 32), "tvm", runs=3, warmup=0)


def test_the_committed_hand_design_keeps_rules_1_to_3_in_4m_params_as_its_script_writes_it(tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    from gensynth.cost import count_params
    from gensynth.ir.serialize import load

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("make_fast_design", root / "experiments" / "make_fast_design.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script, "OUT", tmp_path / "hand.yaml")
    script.main()
    committed = load(root / "experiments" / "results" / "fast_dcac" / "hand_designed.yaml")
    assert load(tmp_path / "hand.yaml").structural_hash() == committed.structural_hash()
    assert count_params(build_model(committed)) <= 4.0e6
    candidate = Candidate({}, committed, committed.structural_hash())
    assert all(instantiate(rule).check(candidate).satisfied for rule in RULES_1_TO_3)
