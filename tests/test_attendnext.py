"""The AttendNeXt discovery run: the shipped config, and the committed result against its compare table.

``experiments/results/attendnext/`` holds what ``gensynth search --config attendnext``
found here; ``compare/compare.csv`` is ``gensynth compare`` on it. The fast test
regenerates the table's deterministic columns (params, MACs) with ``gensynth
compare --no-accuracy``; the slow one regenerates the proxy accuracies too.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from gensynth.cli.main import main
from gensynth.constraint import Candidate
from gensynth.ir import load
from gensynth.plugins import instantiate
from gensynth.search.config import DEFAULT_CONSTRAINTS, constraint_specs, load_config, shipped_experiments

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "experiments" / "results" / "attendnext"
REFERENCES = ["mobilenetv3_large", "fbnet_c", "mobileone_s1", "mobilevit_xs"]


def test_the_shipped_config_is_the_discovery_run_with_all_four_rules():
    assert shipped_experiments()["attendnext"].read_text() == (ROOT / "experiments" / "attendnext.yaml").read_text()
    config = load_config("attendnext", {})
    assert (config.space, config.budget, config.objective.name, config.sampler) == ("dcac", 500, "netscore", "tpe")
    assert config.latency.predict, "timed latency makes a rerun from scratch propose other candidates"
    specs = dict(constraint_specs(config))
    assert list(specs) == [*DEFAULT_CONSTRAINTS, "reference_beating"]
    assert specs["reference_beating"] == {"references": REFERENCES, "metrics": ["accuracy", "latency_ms"]}


def test_the_shipped_latency_table_covers_every_node_of_the_committed_winner():
    from gensynth.cost.latency_table import LatencyKey, read_table

    config = load_config("attendnext", {})
    assert Path(config.latency.table) == shipped_experiments()["attendnext"].parent / "attendnext-latency.json"
    profile, entries, overhead = read_table(Path(config.latency.table))
    assert (profile.backend, profile.threads, overhead is not None) == ("onnxruntime", 1, True)
    graph = load(RESULT / "attendnext.yaml")
    shapes = graph.infer_shapes()
    keys = {LatencyKey.for_node(graph, node, shapes, profile.backend, profile.threads) for node in graph.order() if graph.op(node) != "input"}
    assert keys <= entries.keys()


def committed_table() -> dict[str, dict[str, str]]:
    with open(RESULT / "compare" / "compare.csv", newline="") as f:
        return {row["model"]: row for row in csv.DictReader(f)}


def test_the_committed_architecture_keeps_rules_one_to_three_and_four_million_parameters():
    graph = load(RESULT / "attendnext.yaml")
    candidate = Candidate({}, graph, graph.structural_hash())
    for name in DEFAULT_CONSTRAINTS:
        assert instantiate(name).check(candidate).satisfied, name
    table = committed_table()
    assert set(table) == {"attendnext", *REFERENCES}
    assert float(table["attendnext"]["params"]) <= 4.0e6


@pytest.mark.parametrize("accuracy", [pytest.param(False), pytest.param(True, marks=pytest.mark.slow)])
def test_compare_on_the_committed_result_regenerates_the_table(tmp_path, accuracy):
    args = ["compare", str(RESULT / "attendnext.yaml"), "--config", "attendnext", "--rounds", "1", "--no-onnx", "--out", str(tmp_path)]
    assert main(args + ([] if accuracy else ["--no-accuracy"])) == 0
    with open(tmp_path / "compare.csv", newline="") as f:
        fresh = {row["model"]: row for row in csv.DictReader(f)}
    committed = committed_table()
    columns = ["params", "macs"] + (["accuracy"] if accuracy else [])
    assert {m: {c: fresh[m][c] for c in columns} for m in fresh} == {m: {c: committed[m][c] for c in columns} for m in committed}
    assert yaml.safe_load((RESULT / "run.yaml").read_text())["command"].startswith("gensynth search --config")
