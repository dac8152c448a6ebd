"""``gensynth compare`` on small graphs under the tiny proxy protocol (64 training / 50 validation images, 16–32 px)."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

import gensynth.compare as compare_module
from conftest import small_graph
from gensynth.compare import COLUMNS, Spread, compare, interleaved_latency, load_references, load_subject
from gensynth.ir import save
from gensynth.search.config import dump, load_config
from tiny_space import main_one_thread, write_protocol


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    """A candidate (32 px) and a reference (the same at 48 px) graph file, 10 classes, and the tiny protocol."""
    save(small_graph(), tmp_path / "cand.yaml")
    save(small_graph(48), tmp_path / "ref.yaml")
    return {"cand": tmp_path / "cand.yaml", "ref": tmp_path / "ref.yaml", "protocol": write_protocol(tmp_path)}


def rows(out: Path) -> list[dict[str, str]]:
    with open(out / "compare.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == COLUMNS
        return list(reader)


def test_a_graph_file_beside_a_reference(files):
    code = main_one_thread(["compare", str(files["cand"]), "--references", str(files["ref"]), "--config", str(files["protocol"]),
                            "--seeds", "2", "--rounds", "2"])
    assert code == 0
    out = files["cand"].parent / "compare"
    table = rows(out)
    assert [(r["model"], r["kind"]) for r in table] == [("cand", "candidate"), ("ref", "reference")]
    for r in table:
        assert float(r["torch_ms"]) > 0 and float(r["onnx_ms"]) > 0 and float(r["torch_iqr_ms"]) >= 0
        assert 0 <= float(r["accuracy"]) <= 100 and float(r["accuracy_seed_sd"]) >= 0 and float(r["accuracy_binomial_se"]) > 0
        assert (r["seeds"], r["val_images"]) == ("2", "50")
    assert [r["resolution"] for r in table] == ["32", "48"] and int(table[1]["macs"]) > int(table[0]["macs"])
    md = (out / "compare.md").read_text()
    for needed in ("**machine**", "logical CPUs", "torch ", "**command**: `gensynth compare", "**latency**", "2 interleaved rounds",
                   "50 validation images", "seeds 0, 1", "| model | kind |", "| cand | candidate |", "| ref | reference |"):
        assert needed in md, needed
    assert (out / "compare.png").read_bytes().startswith(b"\x89PNG")
    assert "<svg" in (out / "compare.svg").read_text()


def test_a_run_directory_brings_its_winner_and_its_protocol(files, tmp_path, capsys):
    run = tmp_path / "runs" / "tinyrun"
    (run / "final").mkdir(parents=True)
    (run / "config.yaml").write_text(dump(load_config(files["protocol"], {})))
    save(small_graph(), run / "final" / "attendnext.yaml")
    assert main_one_thread(["compare", str(run), "--references", str(files["ref"]), "--seeds", "1", "--rounds", "1", "--no-onnx"]) == 0
    table = rows(run / "compare")
    assert [r["model"] for r in table] == ["tinyrun", "ref"]
    assert all(r["val_images"] == "50" and r["onnx_ms"] == "" for r in table)  # the run's protocol, not the default 500
    assert main_one_thread(["compare", str(run), "--config", str(files["protocol"])]) == 2
    assert "brings its own protocol" in capsys.readouterr().err


def test_zoo_references_without_accuracy(files, tmp_path):
    out = tmp_path / "elsewhere"
    assert main_one_thread(["compare", str(files["cand"]), "--references", "mobilenetv1", "--config", str(files["protocol"]),
                            "--no-accuracy", "--no-onnx", "--rounds", "1", "--out", str(out)]) == 0
    table = rows(out)
    assert [(r["model"], r["resolution"]) for r in table] == [("cand", "32"), ("mobilenetv1", "224")]
    assert all(r["accuracy"] == "" and r["seeds"] == "" for r in table)
    assert (out / "compare.png").stat().st_size > 0 and (out / "compare.svg").stat().st_size > 0


def test_models_are_timed_in_interleaved_rounds(files, monkeypatch):
    timed: list[tuple[str, str]] = []
    original = compare_module.interleaved_latency

    def recording(calls, rounds, runs, warmup):
        return original({key: (lambda key=key, call=call: (timed.append(key), call())) for key, call in calls.items()}, rounds, runs, warmup)

    monkeypatch.setattr(compare_module, "interleaved_latency", recording)
    cand, config, _ = load_subject(files["cand"], str(files["protocol"]))
    (ref,) = load_references([str(files["ref"])])
    compare([cand, ref], config, rounds=3, accuracy=False)
    assert config.latency.warmup == 0 and config.latency.runs == 1
    assert timed == [("cand", "torch"), ("cand", "onnx"), ("ref", "torch"), ("ref", "onnx")] * 3


def test_interleaving_warms_up_first_then_times_every_call_once_per_round():
    order: list[str] = []
    calls = {name: (lambda name=name: order.append(name)) for name in "abc"}
    spreads = interleaved_latency(calls, rounds=2, runs=2, warmup=1)
    assert order == list("abc") + list("aabbcc") * 2
    assert set(spreads) == set("abc")
    assert Spread.of([1.0, 2.0, 3.0, 10.0]) == Spread(2.5, 3.0)  # inclusive quartiles 1.75 and 4.75


def test_an_unknown_reference_is_one_line(files, capsys):
    assert main_one_thread(["compare", str(files["cand"]), "--references", "resnet_9000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown reference 'resnet_9000'" in err and "mobilenetv3_large" in err


def test_the_default_references_are_in_the_zoo():
    from gensynth.references import DEFAULT_REFERENCES, list_references

    assert set(DEFAULT_REFERENCES) <= {info.name for info in list_references()}
