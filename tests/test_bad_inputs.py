"""Bad inputs of every kind: one line on stderr, exit code 2, no traceback, within seconds.

Each case writes its inputs under ``tmp_path`` and returns the command line; the
CLI runs in-process (``main_one_thread``). Cases that start a search must fail at
start-up: the search loop is replaced by a failure here, so none can train.
"""
from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import pickle
import re
import struct
import time
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml
from PIL import Image

from gensynth.errors import UserError
from gensynth.search.config import SearchConfig, load_config, validate
from gensynth.search.run import Search
from test_cli_core import GOOD as GOOD_GRAPH
from test_data import write_cifar, write_idx, write_idx_folder, write_png
from tiny_space import main_one_thread, write_protocol, write_tiny_space

Build = Callable[[Path], list[Any]]
"""Writes a case's inputs under the given folder; returns the command line."""

ERROR_LINE = re.compile(r"gensynth(?: [a-z]+)*: error: [^\n]+\n\Z")
"""``gensynth: error: ...``; argparse's own usage errors name the command (``gensynth inspect: error: ...``)."""

SECONDS = 5.0
BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi")
)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def yaml_file(path: Path, data: Any) -> Path:
    return write(path, yaml.safe_dump(data, sort_keys=False))


def search_argv(tmp: Path, *flags: Any) -> list[Any]:
    """A search with the tiny space and protocol into ``tmp/run``, plus ``flags`` (later flags win)."""
    return ["search", "--space", write_tiny_space(tmp), "--config", write_protocol(tmp), "--out", tmp / "run", "--no-progress", *flags]


# -- config files (gensynth search --config FILE) --------------------------------------------------------------


def config(content: str | bytes | dict[str, Any], name: str = "config.yaml") -> Build:
    """A search whose --config is ``content``: YAML text or bytes, or options on top of the tiny protocol."""

    def build(tmp: Path) -> list[Any]:
        path = write_protocol(tmp, **content) if isinstance(content, dict) else write(tmp / name, content)
        return ["search", "--config", path, "--out", tmp / "run", "--no-progress"]

    return build


def nested(depth: int) -> str:
    """A block mapping ``depth`` levels deep."""
    return "".join(f"{'  ' * i}k{i}:\n" for i in range(depth)) + "  " * depth + "v: 1\n"


def c(id: str, content: str | bytes | dict[str, Any], needle: str = "", name: str = "config.yaml") -> Any:
    return pytest.param(config(content, name), needle, id=id)


def missing_config(tmp: Path) -> list[Any]:
    argv = config({})(tmp)
    argv[argv.index("--config") + 1] = tmp / "nope.yaml"
    return argv


def config_is_a_folder(tmp: Path) -> list[Any]:
    argv = config({})(tmp)
    (tmp / "folder.yaml").mkdir()
    argv[argv.index("--config") + 1] = tmp / "folder.yaml"
    return argv


CONFIG_CASES = [
    # the file itself
    pytest.param(missing_config, "no such file", id="missing-file"),
    pytest.param(config_is_a_folder, "is a directory", id="file-is-a-folder"),
    c("duplicate-key", "budget: 5\nseed: 1\nbudget: 6\n", ":3:1: duplicate key 'budget' (first at line 1)"),
    c("duplicate-nested-key", "training:\n  lr: 0.1\n  lr: 0.2\n", ":3:3: duplicate key 'lr'"),
    c("duplicate-key-json", '{"budget": 5, "budget": 6}', "duplicate key 'budget'", name="config.json"),
    c("alias-bomb", BILLION_LAUGHS, "alias bomb"),
    c("too-many-aliases", "a: &a 1\nb: [" + ", ".join(["*a"] * 150) + "]\n", "more than 100 aliases"),
    c("recursive-alias", "constraints: &c [*c]\n", "recursive"),
    c("undefined-alias", "budget: *nope\n", "undefined alias"),
    c("deep-flow-nesting", "constraints: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than"),
    c("deep-block-nesting", nested(40), "nested deeper than"),
    c("deep-json-nesting", '{"constraints": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested deeper than", name="config.json"),
    c("oversized-file", "# padding\n" * 200_000, "larger than"),
    c("too-many-values", "constraints: [" + "a, " * 210_000 + "]\n", "more than 200,000 values"),
    c("gzip-file", gzip.compress(b"budget: 5\n"), "not UTF-8 text"),
    c("latin-1-text", "name: caf\xe9\n".encode("latin-1"), ":1: not UTF-8 text"),
    c("control-character", "budget: 5\nname: a\x07b\n", ":2: YAML syntax error"),
    c("unclosed-bracket", "budget: 5\nconstraints: [columnar\nseed: 1\n", "YAML syntax error"),
    c("tab-indentation", "training:\n\tlr: 0.1\n", "YAML syntax error"),
    c("python-tag", "budget: !!python/object/apply:os.system [echo hi]\n", "python/object"),
    c("two-documents", "budget: 5\n---\nseed: 1\n", "YAML syntax error"),
    c("unhashable-key", "? [a, b]\n: 1\n", "unhashable key"),
    c("5000-digit-integer", "budget: " + "9" * 5000 + "\n", "5000 digits"),
    c("5000-digit-integer-json", '{"seed": ' + "9" * 5000 + "}", "5000 digits", name="config.json"),
    c("impossible-date", "name: 2024-13-45\n", "cannot read value '2024-13-45'"),
    c("json-syntax-error", '{"budget": 5,\n "seed": }', ":2:10: JSON syntax error", name="config.json"),
    c("top-level-list", "- budget\n- 5\n", "expected a mapping of options, got list"),
    c("top-level-scalar", "budget 5\n", "expected a mapping of options, got str"),
    # keys and types
    c("unknown-key", {"bugdet": 5}, "unknown key 'bugdet'"),
    c("unknown-nested-key", {"training": {"learning_rate": 0.1}}, "unknown key 'training.learning_rate'"),
    c("budget-is-text", {"budget": "ten"}, "key 'budget' must be int, got str 'ten'"),
    c("budget-is-bool", {"budget": True}, "key 'budget' must be int, got bool"),
    c("budget-is-float", {"budget": 1.5}, "key 'budget' must be int, got float"),
    c("seed-is-float", {"seed": 1.0}, "key 'seed' must be int"),
    c("seed-is-list", {"seed": [1]}, "key 'seed' must be int, got list"),
    c("training-is-a-number", {"training": 5}, "key 'training' must be a mapping"),
    c("latency-is-a-list", {"latency": [1, 2]}, "key 'latency' must be a mapping"),
    c("constraints-is-a-name", {"constraints": "columnar"}, "key 'constraints' must be a list"),
    c("weights-is-a-list", {"objective": {"weights": [1]}}, "key 'objective.weights' must be a mapping"),
    c("weight-is-text", {"objective": {"weights": {"accuracy": "high"}}}, "key 'objective.weights.accuracy' must be float"),
    c("lr-is-text", {"training": {"lr": "fast"}}, "key 'training.lr' must be float"),
    c("metrics-item-is-a-number", {"objective": {"metrics": ["accuracy", 5]}}, "key 'objective.metrics[1]' must be str"),
    c("export-onnx-is-text", {"export_onnx": "yes"}, "key 'export_onnx' must be bool"),
    c("stages-item-is-a-mapping", {"stages": [{"probe": 1}]}, "key 'stages[0]' must be str"),
    # values
    c("seed-negative", {"seed": -1}, "key 'seed': must be an integer in [0, 4294967295], got -1"),
    c("seed-2-to-the-32", {"seed": 2**32}, "key 'seed': must be an integer in [0, 4294967295]"),
    c("seed-2-to-the-64", {"seed": 2**64}, "key 'seed'"),
    c("budget-zero", {"budget": 0}, "key 'budget': must be >= 1, got 0"),
    c("budget-negative", {"budget": -5}, "key 'budget': must be >= 1"),
    c("history-negative", {"history": -1}, "key 'history': must be >= 0"),
    c("workers-negative", {"workers": -1}, "key 'workers': must be >= 0"),
    c("threads-per-worker-zero", {"threads_per_worker": 0}, "key 'threads_per_worker'"),
    c("max-retries-negative", {"max_retries": -1}, "key 'max_retries'"),
    c("max-proposals-negative", {"max_proposals": -1}, "key 'max_proposals'"),
    c("epochs-zero", {"training": {"epochs": 0}}, "key 'training.epochs': must be >= 1"),
    c("train-images-zero", {"training": {"train_images": 0}}, "key 'training.train_images'"),
    c("val-images-negative", {"training": {"val_images": -1}}, "key 'training.val_images'"),
    c("batch-size-zero", {"training": {"batch_size": 0}}, "key 'training.batch_size'"),
    c("lr-zero", {"training": {"lr": 0.0}}, "key 'training.lr': must be > 0"),
    c("lr-negative", {"training": {"lr": -0.1}}, "key 'training.lr': must be > 0"),
    c("lr-nan", {"training": {"lr": float("nan")}}, "key 'training.lr': must be a finite number, got nan"),
    c("lr-infinite", {"training": {"lr": float("inf")}}, "key 'training.lr': must be a finite number, got inf"),
    c("lr-overflows-to-infinity", "training:\n  lr: 1.0e+400\n", "key 'training.lr': must be a finite number"),
    c("weight-decay-negative", {"training": {"weight_decay": -1e-4}}, "key 'training.weight_decay': must be >= 0"),
    c("weight-decay-nan", {"training": {"weight_decay": float("nan")}}, "key 'training.weight_decay'"),
    c("latency-runs-negative", {"latency": {"runs": -1}}, "key 'latency.runs': must be >= 0"),
    c("latency-warmup-negative", {"latency": {"warmup": -3}}, "key 'latency.warmup': must be >= 0"),
    c("latency-threads-zero", {"latency": {"threads": 0}}, "key 'latency.threads': must be >= 1"),
    c("latency-table-missing", {"latency": {"predict": True, "table": "no-such-table.json"}}, "key 'latency.table': no such file"),
    c("latency-table-without-predict", {"latency": {"table": "config.yaml"}}, "key 'latency.table': is read only when latency.predict is true"),
    c("alpha-nan", {"objective": {"alpha": float("nan")}}, "key 'objective.alpha'"),
    c("beta-infinite", {"objective": {"beta": float("inf")}}, "key 'objective.beta'"),
    c("gamma-minus-infinity", {"objective": {"gamma": float("-inf")}}, "key 'objective.gamma'"),
    c("weight-nan", {"objective": {"name": "weighted", "weights": {"accuracy": float("nan")}}}, "key 'objective.weights.accuracy'"),
    c("unknown-sampler", {"sampler": "cmaes"}, "key 'sampler': unknown sampler 'cmaes'"),
    c("unknown-executor", {"executor": "k8s"}, "key 'executor': unknown executor 'k8s'"),
    c("unknown-objective", {"objective": {"name": "accuracy"}}, "key 'objective.name': unknown objective 'accuracy'"),
    c("unknown-stage", {"stages": ["probe", "distill"]}, "key 'stages[1]': unknown evaluation stage 'distill'"),
    c("constraint-is-a-number", {"constraints": [5]}, "key 'constraints[0]': expected a name"),
    c("constraint-with-two-names", {"constraints": [{"columnar": {}, "budgets": {}}]}, "key 'constraints[0]'"),
    c("constraint-options-not-a-mapping", {"constraints": [{"columnar": 4}]}, "options of 'columnar' must be a mapping"),
    c("empty-space", {"space": " "}, "key 'space': must not be empty"),
    c("empty-data", {"data": ""}, "key 'data': must not be empty"),
    c("weighted-objective-without-weights", {"objective": {"name": "weighted"}}, "weights"),
]


# -- space files (gensynth spaces sample SPACE, gensynth search --space SPACE) -----------------------------------


def space(edit: Callable[[dict[str, Any]], Any] | str | bytes, command: str = "sample") -> Build:
    """The tiny space after ``edit`` (or replaced by text), sampled, or searched with ``command="search"``."""

    def build(tmp: Path) -> list[Any]:
        (tmp / "space").mkdir()
        path = write_tiny_space(tmp / "space")
        if callable(edit):
            data = yaml.safe_load(path.read_text())
            edit(data)
            yaml_file(path, data)
        else:
            write(path, edit)
        if command == "search":
            return search_argv(tmp, "--space", path)
        return ["spaces", "sample", path, "--out", tmp / "arch.yaml"]

    return build


def gene(name: str, options: Any) -> Callable[[dict[str, Any]], None]:
    """Set a gene's options; ``col.width`` names a member of the repeated group ``col``."""

    def edit(data: dict[str, Any]) -> None:
        group, _, member = name.partition(".")
        if isinstance(data["genes"].get(group), dict):
            data["genes"][group]["genes"][member] = options
        else:
            data["genes"][name] = options

    return edit


def s(id: str, edit: Callable[[dict[str, Any]], Any] | str | bytes, needle: str = "", command: str = "sample") -> Any:
    return pytest.param(space(edit, command), needle, id=id)


def key(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set ``path`` (dotted, top-level sections only) in the space document."""

    def edit(data: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        target = data
        for part in parents:
            target = target[part]
        target[leaf] = value

    return edit


SPACE_CASES = [
    # the file itself
    s("duplicate-gene", "name: x\nfamily: dcac\ngenes:\n  stem.width: [8]\n  stem.width: [16]\n", ":5:3: duplicate key 'stem.width'"),
    s("alias-bomb", BILLION_LAUGHS, "alias bomb"),
    s("deep-nesting", "name: x\nfamily: dcac\ngenes: " + "[" * 100 + "]" * 100 + "\n", "nested deeper than"),
    s("oversized-file", "name: x\n" + "#" * (2**20 + 1) + "\n", "larger than"),
    s("binary-file", bytes(range(256)), "not UTF-8 text"),
    s("top-level-list", "- dcac\n", "expected a mapping"),
    # structure
    s("unknown-top-level-key", key("bogus", 1), "unknown key 'bogus'"),
    s("missing-genes", lambda d: d.pop("genes"), "missing key 'genes'"),
    s("unknown-family", key("family", "resnet"), "key 'family': unknown family 'resnet'"),
    s("name-is-a-number", key("name", 5), "key 'name' must be str"),
    s("genes-is-a-list", key("genes", ["a"]), "key 'genes' must be a non-empty mapping"),
    s("genes-empty", key("genes", {}), "key 'genes' must be a non-empty mapping"),
    s("unknown-gene", gene("extra.gene", [1]), "unknown gene 'extra.gene'"),
    s("missing-gene", lambda d: d["genes"].pop("head.width"), "missing gene 'head.width'"),
    s("options-not-a-list", gene("stem.width", 16), "key 'genes.stem.width' must be a non-empty list"),
    s("options-empty", gene("activation", []), "key 'genes.activation' must be a non-empty list"),
    s("option-is-a-list", gene("stem.width", [[16]]), "must be a string, number or boolean"),
    s("option-twice", gene("stem.width", [16, 16]), "lists an option twice"),
    s("repeat-without-count", lambda d: d["genes"]["col"].pop("count"), "needs exactly 'count' and 'genes'"),
    s("repeat-count-zero", lambda d: d["genes"]["col"].__setitem__("count", [0, 2]), "key 'genes.col.count' must be a list of positive integers"),
    s("repeat-count-bool", lambda d: d["genes"]["stage"].__setitem__("count", [True]), "key 'genes.stage.count'"),
    s("repeat-count-text", lambda d: d["genes"]["stage"].__setitem__("count", ["two"]), "key 'genes.stage.count'"),
    s("repeat-body-empty", lambda d: d["genes"]["col"].__setitem__("genes", {}), "key 'genes.col.genes'"),
    s("deployment-resolution-zero", key("deployment.resolution", 0), "key 'deployment.resolution' must be an integer >= 1"),
    s("deployment-resolution-text", key("deployment.resolution", "224px"), "key 'deployment.resolution'"),
    s("deployment-unknown-key", key("deployment.width", 3), "unknown key 'deployment.width'"),
    s("proxy-skip-negative", key("proxy.skip_reductions", -1), "key 'proxy.skip_reductions' must be an integer >= 0"),
    s("proxy-is-a-list", key("proxy", [32]), "key 'proxy' must be a mapping"),
    s("seed-file-missing", key("seed", "nope.yaml"), "key 'seed': no such file"),
    s("seed-genome-outside", key("seed_genome", {"activation": "relu"}), "key 'seed_genome'"),
    # option values the family cannot build
    s("width-zero", gene("stem.width", [0, 16]), "key 'genes.stem.width': option 0 is not allowed (expected an integer in [1, 65536])"),
    s("width-negative", gene("head.width", [-32]), "key 'genes.head.width': option -32"),
    s("width-float", gene("merge.width", [16.5]), "key 'genes.merge.width': option 16.5"),
    s("width-text", gene("stem.width", ["16"]), "option '16'"),
    s("width-bool", gene("head.width", [True]), "option True"),
    s("column-width-zero", gene("col.width", [0]), "key 'genes.col.genes.width': option 0"),
    s("column-depth-zero", gene("col.depth", [0]), "key 'genes.col.genes.depth': option 0"),
    s("stage-depth-huge", gene("stage.depth", [1, 100000]), "option 100000 is not allowed (expected an integer in [1, 64])"),
    s("groups-huge", gene("col.f_groups", [0, 1000000]), "option 1000000 is not allowed (expected an integer in [0, 4096])"),
    s("width-huge", gene("head.width", [10**9]), "option 1000000000 is not allowed"),
    s("stage-depth-negative", gene("stage.depth", [-1]), "key 'genes.stage.genes.depth'"),
    s("unknown-activation", gene("activation", ["relu", "swish"]), "option 'swish' is not allowed (expected one of ["),
    s("activation-number", gene("activation", [1]), "key 'genes.activation': option 1"),
    s("unknown-stem-downsample", gene("stem.downsample", ["pool"]), "key 'genes.stem.downsample': option 'pool'"),
    s("unknown-column-unit", gene("col.unit", ["mbconv"]), "key 'genes.col.genes.unit': option 'mbconv'"),
    s("reduce-is-text", gene("columns.reduce", ["yes"]), "key 'genes.columns.reduce': option 'yes' is not allowed (expected true or false)"),
    s("unknown-columns-downsample", gene("columns.downsample", ["blurpool", "stride"]), "option 'stride'"),
    s("unknown-stage-downsample", gene("stage.downsample", ["maxblur"]), "key 'genes.stage.genes.downsample'"),
    s("unknown-merge-op", gene("merge.op", ["mul"]), "key 'genes.merge.op': option 'mul'"),
    s("unknown-shortcut", gene("stage.shortcut", ["identity"]), "key 'genes.stage.genes.shortcut'"),
    s("growth-zero", gene("stage.growth", [0]), "key 'genes.stage.genes.growth': option 0"),
    s("growth-negative", gene("stage.growth", [-1.5]), "option -1.5"),
    s("growth-nan", gene("stage.growth", [float("nan")]), "option nan"),
    s("growth-infinite", gene("stage.growth", [float("inf")]), "option inf"),
    s("ratio-zero", gene("col.f_ratio", [0.0]), "key 'genes.col.genes.f_ratio': option 0.0"),
    s("ratio-above-one", gene("stage.a_ratio", [1.5]), "key 'genes.stage.genes.a_ratio': option 1.5"),
    s("ratio-nan", gene("col.a_ratio", [float("nan")]), "option nan"),
    s("kernel-even", gene("col.f_kernel", [4]), "key 'genes.col.genes.f_kernel': option 4"),
    s("kernel-zero", gene("stage.a_kernel", [0]), "option 0"),
    s("kernel-too-large", gene("stage.f_kernel", [9]), "option 9"),
    s("unknown-pool", gene("col.a_pool", ["min"]), "key 'genes.col.genes.a_pool': option 'min'"),
    s("condense-zero", gene("stage.f_condense", [0]), "key 'genes.stage.genes.f_condense'"),
    s("groups-negative", gene("col.a_groups", [-1]), "key 'genes.col.genes.a_groups'"),
    # a search stops at start-up instead of burning 200 × budget proposals
    s("search-width-zero", gene("stem.width", [0]), "key 'genes.stem.width': option 0", command="search"),
    s("search-unknown-activation", gene("activation", ["swish"]), "option 'swish'", command="search"),
    s("search-duplicate-gene", "genes:\n  activation: [relu]\n  activation: [silu]\n", "duplicate key 'activation'", command="search"),
]


# -- graph files (gensynth inspect GRAPH, gensynth spaces sample --seed-architecture) -----------------------------


def graph(edit: Callable[[dict[str, Any]], Any] | str | bytes, suffix: str = ".yaml") -> Build:
    """``gensynth inspect`` of the small good graph after ``edit`` (or of the given text)."""

    def build(tmp: Path) -> list[Any]:
        path = tmp / f"graph{suffix}"
        if callable(edit):
            data = json.loads(json.dumps(GOOD_GRAPH))
            edit(data)
            write(path, json.dumps(data)) if suffix == ".json" else yaml_file(path, data)
        else:
            write(path, edit)
        return ["inspect", path, "--runs", "0"]

    return build


def node(i: int, **attrs: Any) -> Callable[[dict[str, Any]], None]:
    """Update node ``i`` of the good graph (input, a: conv 32, b: conv 16, pool, fc)."""
    return lambda data: data["nodes"][i].update(attrs)


def g(id: str, edit: Callable[[dict[str, Any]], Any] | str | bytes, needle: str = "", suffix: str = ".yaml") -> Any:
    return pytest.param(graph(edit, suffix), needle, id=id)


def missing_graph(tmp: Path) -> list[Any]:
    return ["inspect", tmp / "nope.yaml"]


def graph_is_a_folder(tmp: Path) -> list[Any]:
    (tmp / "graph.yaml").mkdir()
    return ["inspect", tmp / "graph.yaml"]


def damaged_seed_architecture(tmp: Path) -> list[Any]:
    path = write_tiny_space(tmp)
    data = yaml.safe_load(path.read_text())
    data["seed"] = "seed.yaml"
    yaml_file(path, data)
    write(tmp / "seed.yaml", "nodes:\n- {name: input, op: input}\n- {name: input, op: input}\n")
    return ["spaces", "sample", path, "--seed-architecture", "--out", tmp / "arch.yaml"]


GRAPH_CASES = [
    # the file itself
    pytest.param(missing_graph, "no such file", id="missing-file"),
    pytest.param(graph_is_a_folder, "is a directory", id="file-is-a-folder"),
    g("duplicate-key", "name: x\nnodes:\n- {name: input, op: input, op: conv}\n", ":3:28: duplicate key 'op' (first at line 3)"),
    g("alias-bomb", BILLION_LAUGHS, "alias bomb"),
    g("recursive-alias", "nodes: &n [*n]\n", "recursive"),
    g("deep-nesting", "nodes: " + "[" * 1000 + "]" * 1000, "nested deeper than"),
    g("oversized-file", "nodes: []\n" + "#\n" * 2**20, "larger than 1 MiB"),
    g("utf-16-file", "nodes: []\n".encode("utf-16"), "not UTF-8 text"),
    g("json-syntax-error", '{"nodes": [}', "JSON syntax error", suffix=".json"),
    g("json-duplicate-key", '{"nodes": [], "nodes": []}', "duplicate key 'nodes'", suffix=".json"),
    g("json-deep-nesting", '{"nodes": ' + "[" * 50 + "]" * 50 + "}", "nested deeper than", suffix=".json"),
    g("json-nan-ratio", json.dumps({**GOOD_GRAPH, "nodes": GOOD_GRAPH["nodes"][:2] + [
        {"name": "b", "op": "dcac", "inputs": ["a"], "f_ratio": float("nan")}] + GOOD_GRAPH["nodes"][3:]}),
      "node 'b': attribute 'f_ratio' must be a finite number, got nan", suffix=".json"),
    g("top-level-list", "- input\n", "expected a mapping"),
    g("empty-file", "", "expected a mapping"),
    # structure
    g("unknown-top-level-key", lambda d: d.update(edges=[]), "unknown key 'edges'"),
    g("nodes-is-a-mapping", lambda d: d.update(nodes={"a": 1}), "key 'nodes' must be list"),
    g("node-is-a-string", lambda d: d["nodes"].append("conv"), "nodes[5]: expected a mapping"),
    g("node-without-name", lambda d: d["nodes"][1].pop("name"), "nodes[1]: missing key 'name'"),
    g("node-name-is-a-number", node(1, name=7), "key 'name' must be str"),
    g("node-without-op", lambda d: d["nodes"][2].pop("op"), "node 'b': missing key 'op'"),
    g("unknown-op", node(2, op="convv"), "node 'b': unknown op 'convv'"),
    g("dropout-above-one", node(4, dropout=5.0), "attribute 'dropout' of op 'classifier' must be <= 0.99"),
    g("groups-huge", node(2, groups=1000000), "attribute 'groups' of op 'conv' must be <= 4096"),
    g("inputs-is-a-string", node(2, inputs="a"), "node 'b': 'inputs' must be a list of node names"),
    g("inputs-are-numbers", node(2, inputs=[1]), "node 'b': 'inputs' must be a list of node names"),
    g("dangling-input", node(2, inputs=["zz"]), "node 'b': input 'zz' is not a node"),
    g("input-given-twice", lambda d: d["nodes"].insert(4, {"name": "sum", "op": "add", "inputs": ["b", "b"]}), "given twice"),
    g("node-defined-twice", node(2, name="a", in_channels=None), "node 'a': defined twice"),
    g("cycle", node(1, inputs=["b"]), "cycle"),
    g("attribute-wrong-type", node(2, out_channels="16"), "attribute 'out_channels' of op 'conv' must be int"),
    g("unknown-attribute", node(2, dilation=2), "unknown attribute 'dilation'"),
    g("attribute-name-is-a-number", "nodes:\n- {name: input, op: input}\n- {name: a, op: conv, inputs: [input], out_channels: 8, 1: 2}\n",
      "node 'a': attribute names must be strings, got 1"),
    g("out-channels-zero", node(1, out_channels=0), "must be >= 1, got 0"),
    g("out-channels-negative", node(2, out_channels=-16), "must be >= 1"),
    g("unknown-activation", node(1, act="swish"), "attribute 'act' of op 'conv' must be one of"),
    g("pointwise-kernel-3", node(2, op="pwconv", kernel=3), "attribute 'kernel' of op 'pwconv' must be one of [1]"),
    g("dropout-infinite", node(4, dropout=float("inf")), "node 'fc': attribute 'dropout' must be a finite number"),
    g("input-channels-zero", lambda d: d["input"].update(channels=0), "key 'input.channels' must be a positive integer"),
    g("resolution-negative", lambda d: d["input"].update(resolution=-32), "key 'input.resolution'"),
    g("num-classes-zero", lambda d: d.update(num_classes=0), "key 'num_classes'"),
    g("input-is-a-list", lambda d: d.update(input=[3, 32]), "key 'input' must be a mapping"),
    g("channel-mismatch", node(2, in_channels=24), "node 'b': in_channels 24, but 'a' produces 32"),
    g("output-not-a-classifier", lambda d: d["nodes"].pop(), "the output must be a 'classifier'"),
    g("two-outputs", lambda d: d["nodes"].append({"name": "extra", "op": "pwconv", "inputs": ["a"], "out_channels": 8}), "exactly one output"),
    # too large to build: refused from the graph alone
    g("ten-million-channels", lambda d: (node(1, out_channels=10**7)(d), node(2, in_channels=10**7)(d)), "more than the 2 GiB per tensor"),
    g("resolution-100000", lambda d: d["input"].update(resolution=100_000), "more than the 2 GiB per tensor"),
    g("billion-classes", lambda d: d.update(num_classes=10**9), "more than the 2 GiB per tensor"),
    pytest.param(damaged_seed_architecture, "seed.yaml: node 'input': defined twice", id="damaged-seed-architecture"),
]


# -- flags ---------------------------------------------------------------------------------------------------


def good_graph(tmp: Path) -> Path:
    return yaml_file(tmp / "graph.yaml", GOOD_GRAPH)


def f(id: str, build: Build, needle: str = "") -> Any:
    return pytest.param(build, needle, id=id)


def search_flags(*flags: Any) -> Build:
    return lambda tmp: search_argv(tmp, *flags)


def sample_flags(*flags: Any) -> Build:
    return lambda tmp: ["spaces", "sample", "dcac", "--out", tmp / "arch.yaml", *flags]


def inspect_flags(*flags: Any) -> Build:
    return lambda tmp: ["inspect", good_graph(tmp), "--runs", "0", *flags]


def add_8x8_pool(data: dict[str, Any]) -> None:
    """An 8×8 average pool (stride 1) before the good graph's global pool: it needs inputs of 8 px or more."""
    data["nodes"].insert(3, {"name": "p", "op": "avgpool", "inputs": ["b"], "kernel": 8, "stride": 1})
    data["nodes"][4]["inputs"] = ["p"]


def a_file(tmp: Path) -> Path:
    return write(tmp / "a-file", "not a folder\n")


FLAG_CASES = [
    # gensynth search
    f("search-seed-negative", search_flags("--seed", "-1"), "command line: key 'seed': must be an integer in [0, 4294967295], got -1"),
    f("search-seed-2-to-the-32", search_flags("--seed", str(2**32)), "key 'seed'"),
    f("search-seed-huge", search_flags("--seed", "9" * 40), "key 'seed'"),
    f("search-seed-not-a-number", search_flags("--seed", "abc"), "argument --seed: invalid int value: 'abc'"),
    f("search-budget-zero", search_flags("--budget", "0"), "command line: key 'budget': must be >= 1"),
    f("search-budget-fraction", search_flags("--budget", "1.5"), "invalid int value"),
    f("search-unknown-sampler", search_flags("--sampler", "cmaes"), "unknown sampler 'cmaes'"),
    f("search-unknown-executor", search_flags("--executor", "slurm"), "unknown executor 'slurm'"),
    f("search-unknown-objective", search_flags("--objective", "top1"), "unknown objective 'top1'"),
    f("search-workers-negative", search_flags("--workers", "-1"), "key 'workers'"),
    f("search-threads-per-worker-negative", search_flags("--threads-per-worker", "-2"), "key 'threads_per_worker'"),
    f("search-train-images-zero", search_flags("--train-images", "0"), "key 'training.train_images'"),
    f("search-val-images-negative", search_flags("--val-images", "-5"), "key 'training.val_images'"),
    f("search-epochs-zero", search_flags("--epochs", "0"), "key 'training.epochs'"),
    f("search-latency-runs-negative", search_flags("--latency-runs", "-1"), "key 'latency.runs'"),
    f("search-max-proposals-negative", search_flags("--max-proposals", "-1"), "key 'max_proposals'"),
    f("search-unknown-flag", search_flags("--bugdet", "5"), "unrecognized arguments: --bugdet"),
    f("search-missing-space-file", search_flags("--space", "nope.yaml"), "nope.yaml: no such file"),
    f("search-unknown-space-name", search_flags("--space", "dcak"), "unknown space 'dcak'"),
    f("search-flag-blamed-not-the-file", lambda tmp: config({"budget": 5})(tmp) + ["--budget", "0"], "command line: key 'budget'"),
    # gensynth spaces sample
    f("sample-seed-negative", sample_flags("--seed", "-1"), "argument --seed: expected an integer in [0, 4294967295], got -1"),
    f("sample-seed-2-to-the-32", sample_flags("--seed", str(2**32)), "argument --seed"),
    f("sample-seed-not-a-number", sample_flags("--seed", "x"), "argument --seed: expected an integer"),
    f("sample-out-is-a-folder", lambda tmp: sample_flags()(tmp)[:3] + ["--out", tmp], "cannot write"),
    f("sample-out-under-a-file", lambda tmp: sample_flags()(tmp)[:3] + ["--out", a_file(tmp) / "arch.yaml"], "cannot write"),
    f("sample-out-read-only", lambda tmp: sample_flags()(tmp)[:3] + ["--out", "/proc/gensynth/arch.yaml"], "--out /proc/gensynth/arch.yaml: cannot write"),
    f("sample-unknown-space", lambda tmp: ["spaces", "sample", "resnet"], "unknown space 'resnet'"),
    f("sample-missing-space-file", lambda tmp: ["spaces", "sample", tmp / "nope.yml"], "no such file"),
    f("sample-no-space", lambda tmp: ["spaces", "sample"], "the following arguments are required: space"),
    f("spaces-no-action", lambda tmp: ["spaces"], "required: ACTION"),
    # gensynth inspect
    f("inspect-runs-negative", inspect_flags("--runs", "-1"), "argument --runs: expected an integer >= 0, got -1"),
    f("inspect-resolution-zero", inspect_flags("--resolution", "0"), "argument --resolution: expected an integer >= 1, got 0"),
    f("inspect-resolution-text", inspect_flags("--resolution", "hd"), "argument --resolution"),
    f("inspect-resolution-100000", inspect_flags("--resolution", "100000"), "at 100000 px, node 'a' outputs"),
    f("inspect-resolution-too-small", lambda tmp: graph(add_8x8_pool)(tmp) + ["--resolution", "2"],
      "at 2 px: node 'p': a 8x8 window with stride 1 does not fit a 2px input"),
    f("inspect-draw-unknown-format", inspect_flags("--summary", "--draw", "graph.xyz"), "cannot draw to '.xyz'"),
    f("inspect-draw-under-a-file", lambda tmp: inspect_flags("--summary", "--draw", a_file(tmp) / "g.dot")(tmp), "--draw"),
    f("inspect-no-graph", lambda tmp: ["inspect"], "the following arguments are required: graph"),
    # gensynth show, and the command itself
    f("show-top-zero", lambda tmp: ["show", tmp, "--top", "0"], "argument --top: expected an integer >= 1"),
    f("show-top-negative", lambda tmp: ["show", tmp, "--top", "-3"], "argument --top"),
    f("show-not-a-run", lambda tmp: ["show", tmp], "not a run directory"),
    f("show-a-file", lambda tmp: ["show", a_file(tmp)], "not a run directory"),
    f("show-candidates-is-a-folder", lambda tmp: (tmp / "run" / "candidates.jsonl").mkdir(parents=True) or ["show", tmp / "run"], "not a run directory"),
    f("no-command", lambda tmp: [], "required: COMMAND"),
    f("unknown-command", lambda tmp: ["serach"], "invalid choice: 'serach'"),
]


# -- datasets (gensynth search --data PATH) ---------------------------------------------------------------------


def data(make: Callable[[Path], Any]) -> Build:
    """A search on the dataset that ``make`` writes (returning its path)."""
    return lambda tmp: search_argv(tmp, "--data", make(tmp))


def d(id: str, make: Callable[[Path], Any], needle: str = "") -> Any:
    return pytest.param(data(make), needle, id=id)


def idx(change: Callable[[Path], Any], gz: bool = False) -> Callable[[Path], Path]:
    """A folder of the four IDX files (40 train, 20 val 6×6 images), then ``change(folder)``."""

    def make(tmp: Path) -> Path:
        folder = write_idx_folder(tmp / "idx", gz=gz)
        change(folder)
        return folder

    return make


TRAIN_IMAGES, TRAIN_LABELS, VAL_IMAGES = "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"


def edit_bytes(name: str, change: Callable[[bytes], bytes]) -> Callable[[Path], Any]:
    return lambda folder: (folder / name).write_bytes(change((folder / name).read_bytes()))


def array(name: str, values: np.ndarray) -> Callable[[Path], Any]:
    return lambda folder: write_idx(folder / name, values)


def idx_header(shape: tuple[int, ...], code: int = 0x08) -> bytes:
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def gzip_bomb(name: str, head: bytes, gib: int = 1) -> Callable[[Path], Any]:
    """``head`` then ``gib`` GiB of zeros, gzipped (repeated 16 MiB members: about 1 MB on disk)."""
    zeros = gzip.compress(bytes(2**24))
    return lambda folder: (folder / name).write_bytes(gzip.compress(head) + zeros * (64 * gib))


def images(files: dict[str, int | bytes]) -> Callable[[Path], Path]:
    """An ImageFolder: relative path → a grey level (an 8×8 PNG) or the file's bytes."""

    def make(tmp: Path) -> Path:
        root = tmp / "images"
        root.mkdir()
        for name, content in files.items():
            write(root / name, content) if isinstance(content, bytes) else write_png(root / name, content)
        return root

    return make


def png_header(width: int, height: int) -> bytes:
    """A grayscale PNG that declares ``width``×``height`` pixels but holds no image data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + chunk(b"IEND", b"")


TWO_CLASSES: dict[str, int | bytes] = {f"{c}/{i}.png": 40 * i for c in ("cat", "dog") for i in range(3)}


def noise_png(side: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


HALF_A_PNG = noise_png()[:2000]


def cifar(change: Callable[[Path], Any]) -> Callable[[Path], Path]:
    """A CIFAR-10 folder (one training batch of 10 images), then ``change(folder)``."""

    def make(tmp: Path) -> Path:
        folder = tmp / "cifar"
        write_cifar(folder, n_per_batch=10, batches=1)
        change(folder)
        return folder

    return make


def batch(name: str, content: Any) -> Callable[[Path], Any]:
    """Replace a batch file by ``content`` pickled (bytes are written as they are)."""
    return lambda folder: (folder / name).write_bytes(content if isinstance(content, bytes) else pickle.dumps(content))


class RunsCode:
    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, ("echo this must not run",)


LABELS = list(range(10))
DATA_CASES = [
    d("missing-path", lambda tmp: tmp / "nope", "no such file or directory"),
    d("misspelt-name", lambda tmp: "fashion-mnist-ful", "dataset 'fashion-mnist-ful': no such file or directory"),
    d("a-file", a_file, "not a directory"),
    d("empty-folder", lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "empty directory"),
    d("nothing-recognisable", images({"notes.txt": b"hello"}), "no class folders, CIFAR-10 batches or IDX files"),
    # IDX
    d("idx-truncated", idx(edit_bytes(TRAIN_IMAGES, lambda b: b[:-5])), "truncated IDX data"),
    d("idx-trailing-bytes", idx(edit_bytes(VAL_IMAGES, lambda b: b + b"\0")), "trailing bytes in IDX data"),
    d("idx-bad-magic", idx(edit_bytes(TRAIN_IMAGES, lambda b: b"\x01" + b[1:])), "bad magic number"),
    d("idx-unknown-type-code", idx(edit_bytes(TRAIN_LABELS, lambda b: b[:2] + b"\x42" + b[3:])), "bad magic number"),
    d("idx-empty-file", idx(edit_bytes(TRAIN_IMAGES, lambda b: b"")), "bad magic number none"),
    d("idx-short-header", idx(edit_bytes(TRAIN_IMAGES, lambda b: b[:6])), "truncated IDX header"),
    d("idx-255-dimensions", idx(edit_bytes(TRAIN_IMAGES, lambda b: b"\0\0\x08\xff" + b[4:12])), "truncated IDX header"),
    d("idx-int16-images", idx(array(TRAIN_IMAGES, np.zeros((40, 6, 6), np.int16))), "expected N×H×W uint8 images"),
    d("idx-flat-images", idx(array(TRAIN_IMAGES, np.zeros((40, 36), np.uint8))), "expected N×H×W uint8 images"),
    d("idx-no-images", idx(array(VAL_IMAGES, np.zeros((0, 6, 6), np.uint8))), "expected N×H×W uint8 images"),
    d("idx-zero-height", idx(array(TRAIN_IMAGES, np.zeros((40, 0, 6), np.uint8))), "expected N×H×W uint8 images"),
    d("idx-label-count", idx(array(TRAIN_LABELS, np.zeros(39, np.uint8))), "expected 40 uint8 labels"),
    d("idx-int32-labels", idx(array(TRAIN_LABELS, np.zeros(40, np.int32))), "expected 40 uint8 labels"),
    d("idx-val-size-differs", idx(array(VAL_IMAGES, np.zeros((20, 8, 8), np.uint8))), "8×8 images, but the training images are 6×6"),
    d("idx-header-claims-a-terabyte", idx(edit_bytes(TRAIN_IMAGES, lambda b: idx_header((2**20, 2**10, 2**10)) + b[16:])), "more than the"),
    d("idx-corrupt-gzip", idx(edit_bytes(TRAIN_IMAGES + ".gz", lambda b: b[:-10]), gz=True), "corrupt gzip data"),
    d("idx-gzip-magic-then-garbage", idx(edit_bytes(TRAIN_LABELS + ".gz", lambda b: b[:2] + b"garbage" * 10), gz=True), "corrupt gzip data"),
    d("idx-gzip-bomb", idx(gzip_bomb(TRAIN_IMAGES + ".gz", b""), gz=True), "bad magic number 00000000"),
    d("idx-gzip-bomb-after-a-header", idx(gzip_bomb(TRAIN_IMAGES + ".gz", idx_header((40, 6, 6))), gz=True), "trailing bytes in IDX data"),
    d("idx-gzip-claims-a-terabyte", idx(gzip_bomb(VAL_IMAGES + ".gz", idx_header((2**20, 2**10, 2**10))), gz=True), "more than the"),
    # ImageFolder
    d("images-one-class", images({"cat/a.png": 0, "cat/b.png": 9}), "needs at least 2 class folders, found 1"),
    d("images-class-without-images", images({**TWO_CLASSES, "cow/readme.txt": b"moo"}), "class folder 'cow' has no images"),
    d("images-garbage-png", images({**TWO_CLASSES, "dog/x.png": b"not an image"}), "x.png': not a readable image"),
    d("images-empty-png", images({**TWO_CLASSES, "dog/x.png": b""}), "not a readable image"),
    d("images-truncated-png", images({**TWO_CLASSES, "cat/x.png": HALF_A_PNG}), "x.png': not a readable image (image file is truncated"),
    d("images-text-named-jpg", images({**TWO_CLASSES, "cat/x.jpg": b"GIF89a? no"}), "not a readable image"),
    d("images-pixel-bomb", images({**TWO_CLASSES, "cat/x.png": png_header(100_000, 100_000)}), "decompression bomb"),
    d("images-over-pillow-limit", images({**TWO_CLASSES, "cat/x.png": png_header(10_000, 10_000)}), "decompression bomb"),
    d("images-train-without-val", images({f"train/{k}": v for k, v in TWO_CLASSES.items()}), "has a train/ folder but no val/"),
    d("images-val-class-unknown", images({**{f"train/{k}": v for k, v in TWO_CLASSES.items()}, "val/cow/a.png": 1}), "missing from train/: cow"),
    d("images-val-without-classes", images({**{f"train/{k}": v for k, v in TWO_CLASSES.items()}, "val/readme.txt": b"x"}), "no class folders of validation images"),
    d("images-too-few-to-split", images({"cat/a.png": 0, "dog/b.png": 9}), "too few images to split off validation"),
    # CIFAR-10
    d("cifar-no-test-batch", cifar(lambda folder: (folder / "test_batch").unlink()), "needs data_batch_1..5 and test_batch"),
    d("cifar-garbage-batch", cifar(batch("test_batch", b"garbage")), "not a readable CIFAR-10 pickle"),
    d("cifar-empty-batch", cifar(batch("data_batch_1", b"")), "not a readable CIFAR-10 pickle"),
    d("cifar-truncated-batch", cifar(edit_bytes("data_batch_1", lambda b: b[: len(b) // 2])), "not a readable CIFAR-10 pickle"),
    d("cifar-pickle-runs-code", cifar(batch("test_batch", RunsCode())), "refusing to load"),
    d("cifar-batch-not-a-dict", cifar(batch("test_batch", [1, 2, 3])), "expected a pickled dict, got list"),
    d("cifar-data-wrong-shape", cifar(batch("test_batch", {b"data": np.zeros((10, 100), np.uint8), b"labels": LABELS})), "N×3072 uint8"),
    d("cifar-data-float", cifar(batch("data_batch_1", {b"data": np.zeros((10, 3072), np.float32), b"labels": LABELS})), "N×3072 uint8"),
    d("cifar-labels-short", cifar(batch("test_batch", {b"data": np.zeros((10, 3072), np.uint8), b"labels": LABELS[:9]})), "one integer b'labels' entry per image"),
    d("cifar-labels-text", cifar(batch("test_batch", {b"data": np.zeros((10, 3072), np.uint8), b"labels": ["cat"] * 10})), "one integer b'labels'"),
    d("cifar-label-negative", cifar(batch("test_batch", {b"data": np.zeros((10, 3072), np.uint8), b"labels": [-1] * 10})), "labels outside [0, 10)"),
    d("cifar-label-beyond-names", cifar(batch("test_batch", {b"data": np.zeros((10, 3072), np.uint8), b"labels": [10] * 10})), "labels outside [0, 10)"),
    d("cifar-names-not-a-list", cifar(batch("batches.meta", {b"label_names": 5})), "expected b'label_names' to be a list of names"),
    d("cifar-meta-not-a-dict", cifar(batch("batches.meta", "names")), "expected a pickled dict, got str"),
]

# -- run directories and storages (gensynth search --out DIR / --storage URL) --------------------------------------

GOOD_RECORD = {"number": 0, "hash": "ab", "status": "rejected", "genome": {}, "version": 2}


def run_dir(prepare: Callable[[Path], Any], *flags: Any) -> Build:
    """A search into ``tmp/run`` after ``prepare(run)`` put something there (or nothing: then it gets the config)."""

    def build(tmp: Path) -> list[Any]:
        argv = search_argv(tmp, *flags)
        run = tmp / "run"
        run.mkdir()
        (run / "config.yaml").write_text(yaml.safe_dump(load_config(tmp / "protocol.yaml", {
            "space": str(tmp / "tiny.yaml"), "out": str(run)}).to_dict()))
        prepare(run)
        return argv

    return build


def lines(*records: Any) -> Callable[[Path], Any]:
    """``candidates.jsonl`` with these lines (dicts as JSON, strings as they are)."""
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    return lambda run: (run / "candidates.jsonl").write_text(text)


def held_lock(run: Path) -> None:
    from gensynth.search.lock import RunLock

    HELD_LOCKS.append(RunLock(run))
    HELD_LOCKS[-1].acquire()


HELD_LOCKS: list[Any] = []


def r(id: str, build: Build, needle: str = "") -> Any:
    return pytest.param(build, needle, id=id)


RUN_DIR_CASES = [
    r("out-is-a-file", lambda tmp: search_argv(tmp, "--out", write(tmp / "file.txt", "x")), "exists and is not a directory"),
    r("out-below-a-file", lambda tmp: search_argv(tmp, "--out", write(tmp / "file.txt", "x") / "run"), "cannot create or write the run directory"),
    r("out-unwritable", lambda tmp: search_argv(tmp, "--out", "/proc/gensynth-run"), "cannot create or write the run directory"),
    r("out-in-sysfs", lambda tmp: search_argv(tmp, "--out", "/sys/gensynth-run"), "cannot create or write the run directory"),
    r("run-locked", run_dir(held_lock), "another search is running in this run directory (pid"),
    r("jsonl-garbage-line", run_dir(lines(GOOD_RECORD, "garbage", {**GOOD_RECORD, "number": 2})), "candidates.jsonl:2: damaged candidate record (not JSON"),
    r("jsonl-not-an-object", run_dir(lines("[1, 2]", GOOD_RECORD)), "candidates.jsonl:1: damaged candidate record (expected a JSON object"),
    r("jsonl-future-version", run_dir(lines({**GOOD_RECORD, "version": 9}, GOOD_RECORD)), "format version 9"),
    r("jsonl-unknown-status", run_dir(lines({**GOOD_RECORD, "status": "great"}, {**GOOD_RECORD, "number": 1})), "'great' is not a valid Status"),
    r("jsonl-negative-number", run_dir(lines({**GOOD_RECORD, "number": -3}, {**GOOD_RECORD, "number": 1})), "number must be a non-negative integer"),
    r("jsonl-number-twice", run_dir(lines(GOOD_RECORD, GOOD_RECORD)), "candidate 0 is recorded twice"),
    r("jsonl-unknown-field", run_dir(lines({**GOOD_RECORD, "colour": "red"}, {**GOOD_RECORD, "number": 1})), "unknown field 'colour'"),
    r("jsonl-genome-not-a-mapping", run_dir(lines({**GOOD_RECORD, "genome": [1]}, {**GOOD_RECORD, "number": 1})), "genome must be a mapping"),
    r("jsonl-nan-score", run_dir(lines('{"number": 0, "hash": "a", "status": "evaluated", "genome": {}, "score": NaN, "values": [1.0]}', GOOD_RECORD)),
      "must be finite numbers"),
    r("jsonl-evaluated-without-values", run_dir(lines({**GOOD_RECORD, "status": "evaluated"}, {**GOOD_RECORD, "number": 1})), "needs a score and values"),
    r("jsonl-feasible-rejection", run_dir(lines({**GOOD_RECORD, "feasible": True}, {**GOOD_RECORD, "number": 1})), "cannot be feasible"),
    r("jsonl-duplicate-without-original", run_dir(lines({**GOOD_RECORD, "status": "duplicate"}, {**GOOD_RECORD, "number": 1})), "needs duplicate_of"),
    r("jsonl-binary", run_dir(lambda run: (run / "candidates.jsonl").write_bytes(b"\xff\xfe\x00garbage\n" * 3)), "candidates.jsonl:1: damaged"),
    r("config-yaml-damaged", run_dir(lambda run: (run / "config.yaml").write_text("seed: [unclosed\n")), "config.yaml"),
    r("config-yaml-unknown-key", run_dir(lambda run: (run / "config.yaml").write_text("colour: red\n")), "unknown key 'colour'"),
    r("config-yaml-other-seed", run_dir(lambda run: (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("seed: 0", "seed: 7"))),
      "this run was made with seed=7"),
    r("config-yaml-bad-type", run_dir(lambda run: (run / "config.yaml").write_text("budget: many\n")), "key 'budget' must be int"),
    r("config-yaml-duplicate-key", run_dir(lambda run: (run / "config.yaml").write_text("seed: 0\nseed: 1\n")), "duplicate key 'seed'"),
    r("constraints-json-damaged", run_dir(lambda run: (run / "constraints.json").write_text("[{")), "constraints.json: damaged"),
    r("constraints-json-other", run_dir(lambda run: (run / "constraints.json").write_text('[{"name": "max_params"}]')),
      "this run was made with constraints ['max_params']"),
    r("storage-unknown-scheme", lambda tmp: search_argv(tmp, "--storage", "mongodb://localhost/x"), "storage 'mongodb://localhost/x'"),
    r("storage-not-a-url", lambda tmp: search_argv(tmp, "--storage", "study.db"), "is not an Optuna storage"),
    r("storage-sqlite-missing-folder", lambda tmp: search_argv(tmp, "--storage", f"sqlite:///{tmp}/no/such/study.db"), "cannot open it"),
    r("storage-sqlite-text-file", lambda tmp: search_argv(tmp, "--storage", f"sqlite:///{write(tmp / 'notes.txt', 'hello')}"), "file is not a database"),
    r("storage-sqlite-is-a-folder", lambda tmp: search_argv(tmp, "--storage", f"sqlite:///{tmp}"), "cannot open it"),
    r("storage-journal-no-path", lambda tmp: search_argv(tmp, "--storage", "journal://"), "the journal file has no path"),
    r("storage-journal-missing-folder", lambda tmp: search_argv(tmp, "--storage", f"{tmp}/no/such/run.log"), "cannot open the journal file"),
    r("storage-journal-garbage", lambda tmp: search_argv(tmp, "--storage", write(tmp / "run.log", "{not json\n")), "not an Optuna journal file"),
    r("storage-postgres-driver-missing", lambda tmp: search_argv(tmp, "--storage", "postgresql://u:secret@127.0.0.1:9/db"), "storage 'postgresql://u:***@"),
    r("ray-address-unreachable", lambda tmp: search_argv(tmp, "--executor", "ray", "--ray-address", "127.0.0.1:9"), "no Ray cluster answers there"),
    r("ray-address-malformed", lambda tmp: search_argv(tmp, "--executor", "ray", "--ray-address", "just-a-name"), "expected host:port"),
    r("name-escapes-runs", lambda tmp: search_argv(tmp, "--name", "../../escape"), "must be a plain name"),
    r("name-with-newline", lambda tmp: search_argv(tmp, "--name", "two\nlines"), "must be a plain name"),
    r("space-channels-data-cannot-serve", lambda tmp: search_argv(tmp, "--space", yaml_file(tmp / "two.yaml", {
        **yaml.safe_load(write_tiny_space(tmp).read_text()), "deployment": {"channels": 2, "resolution": 64, "num_classes": 1000}})),
      "cannot adapt 1-channel images to 2 channels"),
]


# -- constraint plugins (--constraint SPEC, constraints: in a config) ------------------------------------------------

MISBEHAVING = Path(__file__).resolve().parent / "plugins" / "misbehaving.py"


def plugin_file(source: str) -> Callable[[Path], Path]:
    return lambda tmp: write(tmp / "my_plugin.py", source)


def p(id: str, spec: Callable[[Path], str] | str, needle: str = "") -> Any:
    return pytest.param(lambda tmp: search_argv(tmp, "--constraint", spec(tmp) if callable(spec) else spec), needle, id=id)


def with_constraints(constraints: list[Any], *flags: Any) -> Build:
    return lambda tmp: ["search", "--space", write_tiny_space(tmp), "--config", write_protocol(tmp, constraints=constraints),
                        "--out", tmp / "run", "--no-progress", *flags]


GOOD_CLASS = """from gensynth.constraint import Constraint, Verdict


class Fine(Constraint):
    name = 'fine'

    def check(self, c):
        return Verdict(True, '')
"""


def source(text: str, cls: str) -> Callable[[Path], str]:
    """A plugin file holding ``text``, referenced as ``file.py:cls``."""
    return lambda tmp: f"{plugin_file(text)(tmp)}:{cls}"


PLUGIN_CASES = [
    p("raises-in-init", f"{MISBEHAVING}:RaisesInInit", "constraint 'raises_in_init'"),
    p("unknown-name", "columnarr", "unknown constraint 'columnarr'"),
    p("missing-file", "nowhere.py:Rule", "no such file nowhere.py"),
    p("missing-class", source(GOOD_CLASS, "Absent"), "has no class 'Absent'"),
    p("import-raises", source('raise RuntimeError("broken plugin")', "Rule"), "importing"),
    p("syntax-error", source("def (:", "Rule"), "SyntaxError"),
    p("not-a-constraint", source("class Rule:\n    pass\n", "Rule"), "is not a subclass of gensynth.constraint.Constraint"),
    p("not-a-class", source("Rule = 5\n", "Rule"), "is not a subclass"),
    p("no-name", source(GOOD_CLASS.replace("    name = 'fine'\n", ""), "Fine"), "must set 'name'"),
    p("bad-stage", source(GOOD_CLASS.replace("    name = 'fine'\n", "    name = 'fine'\n    stage = 'later'\n"), "Fine"), "must set 'name' and a 'stage'"),
    p("raises-keyerror-in-init", source(GOOD_CLASS + "\n    def __init__(self):\n        raise KeyError(3)\n", "Fine"), "raised KeyError in __init__"),
    p("given-twice", "columnar", "constraint 'columnar' is configured twice"),
    pytest.param(with_constraints([{"columnar": {"min_columns": "four"}}]), "option 'min_columns' must be an integer", id="option-wrong-type"),
    pytest.param(with_constraints([{"columnar": {"min_colums": 4}}]), "bad options", id="option-misspelt"),
    pytest.param(with_constraints([{"max_params": {"limit": -1}}]), "option 'limit' must be a number > 0", id="budget-negative"),
    pytest.param(with_constraints([{"max_params": {}}]), "bad options", id="budget-without-limit"),
    pytest.param(with_constraints([{"max_params": 5}]), "options of 'max_params' must be a mapping", id="options-not-a-mapping"),
    pytest.param(with_constraints([{"reference_beating": {"references": []}}]), "must list at least one architecture file", id="references-empty"),
    pytest.param(with_constraints([{"reference_beating": {"references": ["nope.yaml"]}}]), "nope.yaml does not exist", id="reference-missing"),
    pytest.param(with_constraints([{"reference_beating": {"references": ["x.yaml"], "metrics": ["flops"]}}]), "unknown metric 'flops'", id="reference-metric-unknown"),
    pytest.param(with_constraints([{"max_latency_ms": {"limit": 5}}], "--latency-runs", "0"), "needs 'latency_ms', which no stage of this run measures (latency.runs is 0)",
                 id="measured-without-its-metric"),
    pytest.param(with_constraints([], "--objective", "pareto", "--latency-runs", "0"), "objective 'pareto' needs 'latency_ms'", id="objective-without-its-metric"),
]

CASES = {"config": CONFIG_CASES, "space": SPACE_CASES, "graph": GRAPH_CASES, "flag": FLAG_CASES, "data": DATA_CASES,
         "run-dir": RUN_DIR_CASES, "plugin": PLUGIN_CASES}


@pytest.fixture(autouse=True)
def no_search_loop(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A case that got past start-up would train: make that a failure, not a slow test."""

    def started(self: Search, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the search loop started: this input was not refused at start-up")

    monkeypatch.setattr(Search, "run", started)
    yield
    while HELD_LOCKS:
        HELD_LOCKS.pop().release()


@pytest.mark.parametrize(
    "build, needle", [pytest.param(*p.values, id=f"{kind}/{p.id}") for kind, cases in CASES.items() for p in cases]
)
def test_bad_input_is_one_line_and_exit_2(build: Build, needle: str, tmp_path: Path, capsys, monkeypatch) -> None:
    argv = [str(arg) for arg in build(tmp_path)]
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    started = time.perf_counter()
    try:
        code = main_one_thread(argv)
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code
    elapsed = time.perf_counter() - started
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == 2, f"exit {code}, stderr:\n{err}"
    assert ERROR_LINE.match(err), f"expected one 'gensynth: error:' line, got:\n{err}"
    assert needle in err, f"{needle!r} not in {err!r}"
    assert elapsed < SECONDS, f"took {elapsed:.1f} s"


def test_the_corpus_covers_every_category() -> None:
    counts = {kind: len(cases) for kind, cases in CASES.items()}
    assert sum(counts.values()) >= 150 and all(counts[k] >= 20 for k in ("config", "space", "graph", "flag", "data")), counts


# -- a config built in Python ---------------------------------------------------------------------------------

PYTHON_CASES = {
    "sampler": "cmaes", "executor": "k8s", "seed": -1, "budget": 0, "stages": ["distill"], "constraints": [5],
    "training": {"lr": float("nan")}, "latency": {"warmup": -1}, "objective": {"name": "accuracy"}, "history": "all",
}


@pytest.mark.parametrize("key, value", PYTHON_CASES.items(), ids=list(PYTHON_CASES))
def test_a_config_built_in_python_is_checked_like_one_from_yaml(tmp_path: Path, key: str, value: Any) -> None:
    path = yaml_file(tmp_path / "config.yaml", {key: value})
    with pytest.raises(UserError) as from_yaml:
        load_config(path, {})
    config = SearchConfig()
    section = getattr(config, key)
    setattr(config, key, dataclasses.replace(section, **value) if dataclasses.is_dataclass(section) else value)
    with pytest.raises(UserError) as from_python:
        validate(config)
    assert str(from_python.value) == str(from_yaml.value).replace(str(path), "python")


def test_a_python_config_needs_its_sections_as_dataclasses() -> None:
    with pytest.raises(UserError, match=r"^python: key 'objective' must be ObjectiveConfig, got dict \{'name': 'pareto'\}$"):
        validate(SearchConfig(objective={"name": "pareto"}))  # type: ignore[arg-type]
