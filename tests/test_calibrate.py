"""``gensynth calibrate`` on the tiny space: N = 4, a reference of 2 steps validated on 50 images.

One test trains for real (the whole pipeline, about 8 s on one thread); the others replace
``proxy_train`` with a stand-in whose accuracies are chosen by hand, so ρ and τ are known.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import gensynth.calibrate as calibrate_module
from gensynth.calibrate import Agreement, fit_steps, rank_agreement, sample_architectures, seed_agreement
from gensynth.rank_agreement import repeats_for, spearman_brown
from gensynth.cli.main import main
from gensynth.search.training import Diverged, TrainResult
from gensynth.space import load_space
from tiny_space import main_one_thread, write_tiny_space

PROBES = {"default", "netscore[default]", "zc_synflow", "zc_naswot", "zc_jacob_cov", "zc_grad_norm", "zc_snip", "params", "macs"}
TINY_REFERENCE = ["--n", "4", "--seed", "3", "--reference-steps", "2", "--reference-val-images", "50", "--resolution", "16",
                  "--reference-data", "fashion-mnist"]


@pytest.fixture
def space(tmp_path) -> Path:
    return write_tiny_space(tmp_path)


def calibrate(space: Path, out: Path, *extra: str) -> int:
    return main_one_thread(["calibrate", "--space", str(space), "--out", str(out), *TINY_REFERENCE, *extra])


def lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


class FakeTrainer:
    """``proxy_train``'s stand-in: accuracy = the architecture's rank in a fixed order (+ a tiny seed offset), counted.

    The reference ranks by the digest; a protocol at ``reversed_px`` px ranks in reverse; ``fail`` maps an
    architecture hash to the exception its training raises (the reference's when ``seed`` is None, else that
    seed's); the ``stop_at``-th call is a Ctrl-C.
    """

    def __init__(self, order: list[str], reversed_px: int = 0, fail: dict[str, tuple[int | None, Exception]] | None = None,
                 stop_at: int = 0):
        self.order, self.reversed_px, self.fail, self.stop_at, self.calls = order, reversed_px, fail or {}, stop_at, 0

    def __call__(self, graph, data, proxy, cfg, seed):
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        digest = graph.structural_hash()
        if digest in self.fail:
            when, error = self.fail[digest]
            if (when is None and seed >= 1000) or when == seed:
                raise error
        rank = self.order.index(digest)
        if proxy.resolution == self.reversed_px:
            rank = -rank
        return TrainResult(50.0 + rank + 0.01 * seed, 1.0, 1, b"")


def tiny_order(space: Path) -> list[str]:
    """The four architectures ``--seed 3`` samples, in the order the fake trainer ranks them."""
    return sorted(a.digest for a in sample_architectures(load_space(space), 4, 3))


# -- statistics on hand-made lists --------------------------------------------------------------------------

def test_rank_agreement_by_hand():
    assert rank_agreement([1, 2, 3, 4], [10, 20, 30, 40]) == Agreement(1.0, 1.0, 4)
    assert rank_agreement([1, 2, 3, 4], [40, 30, 20, 10]) == Agreement(-1.0, -1.0, 4)
    same = rank_agreement([1, 2, 3, 4, 5], [1, 3, 2, 4, 5])  # one swapped pair: ρ = 1 - 6·2/(5·24) = 0.9, τ = (9 - 1)/10
    assert same.spearman == pytest.approx(0.9) and same.kendall == pytest.approx(0.8)
    assert rank_agreement([1, None, 3, math.nan, 5, 6], [1, 2, 3, 4, 6, 5]).n == 4  # failures are left out
    assert rank_agreement([1, 2], [1, 2]) == Agreement(None, None, 2)
    assert rank_agreement([1, 1, 1], [1, 2, 3]).spearman is None  # a constant probe ranks nothing
    assert seed_agreement([[1, 2, 3], [3, 2, 1]]) == -1.0
    assert seed_agreement([[1, 2, 3], [1, 2, 3]]) is None and seed_agreement([[1, 2, 3]]) is None  # deterministic, or one seed


def test_averaging_seeds_by_hand():
    assert spearman_brown(0.5, 2) == pytest.approx(2 / 3)  # 2·0.5 / (1 + 0.5)
    assert spearman_brown(0.8, 1) == pytest.approx(0.8) and spearman_brown(None, 2) is None and spearman_brown(-0.2, 2) is None
    assert repeats_for(0.5, 0.9) == 9  # 0.9·0.5 / (0.5·0.1)
    assert repeats_for(0.75, 0.9) == 3  # exactly 3: not 4 by rounding
    assert spearman_brown(0.75, 3) == pytest.approx(0.9)
    assert repeats_for(0.95, 0.9) == 1 and repeats_for(0.0, 0.9) is None


def test_fit_steps_gives_at_least_the_steps():
    assert fit_steps(160, 64, 60000) == (1, 10240)
    assert fit_steps(160, 64, 6000) == (2, 5120)
    for steps, batch, available in [(160, 64, 5100), (7, 32, 50), (3, 64, 10)]:
        epochs, images = fit_steps(steps, batch, available)
        assert epochs * max(1, min(images, available) // batch) >= steps


# -- the command, trained for real --------------------------------------------------------------------------

def test_real_calibration_writes_every_probe_and_resumes_without_training(space, tmp_path, monkeypatch, capsys):
    out = tmp_path / "cal"
    assert calibrate(space, out) == 0
    result = json.loads((out / "calibration.json").read_text())
    figures = result["sets"]["calibration"]
    assert set(figures["probes"]) == PROBES and figures["architectures"] == 4
    for name, v in figures["probes"].items():
        for key in ("spearman", "kendall"):
            assert v[key] is None or -1 <= v[key] <= 1, (name, key)
        assert v["n"] == 4 and v["cost_s"] > 0, name
    assert sum(v["spearman"] is not None for v in figures["probes"].values()) >= 6  # at most a few constant lists on 4 points
    assert figures["probes"]["default"]["seeds"] == 2 and "seed_rho" in figures["reference"]
    ref = result["reference"]
    assert (ref["steps"], ref["val_images"], ref["resolution"], ref["seeds"]) == (2, 50, 16, [1000, 1001])
    assert result["protocols"][0]["name"] == "default" and result["protocols"][0]["steps"] == 16
    assert "logical CPUs" in result["machine"] and result["command"].startswith("gensynth calibrate --space")
    md = (out / "calibration.md").read_text()
    assert all(f"| {name} |" in md for name in PROBES) and "ceiling" in md
    assert (out / "calibration.png").read_bytes().startswith(b"\x89PNG")
    # 4 architectures x (costs + 2 zero-cost + 2 default + 2 reference)
    before = (out / "results.jsonl").read_text()
    assert len(before.splitlines()) == 4 * 7
    counter = FakeTrainer(tiny_order(space))
    monkeypatch.setattr(calibrate_module, "proxy_train", counter)
    capsys.readouterr()
    assert calibrate(space, out) == 0
    assert counter.calls == 0 and (out / "results.jsonl").read_text() == before
    assert "28 measurement(s)" in capsys.readouterr().err
    assert json.loads((out / "calibration.json").read_text())["sets"] == result["sets"]  # the same figures, from the cache


# -- the command, with hand-made accuracies ---------------------------------------------------------------------

def test_more_reference_seeds_train_only_the_reference_again(space, tmp_path, monkeypatch):
    out = tmp_path / "cal"
    monkeypatch.setattr(calibrate_module, "proxy_train", FakeTrainer(tiny_order(space)))
    assert calibrate(space, out) == 0
    counter = FakeTrainer(tiny_order(space))
    monkeypatch.setattr(calibrate_module, "proxy_train", counter)
    assert calibrate(space, out, "--reference-seeds", "3") == 0
    assert counter.calls == 4, "one more reference seed for each of the 4 architectures, nothing else"
    result = json.loads((out / "calibration.json").read_text())
    assert result["reference"]["seeds"] == [1000, 1001, 1002] and result["protocols"][0]["seeds"] == [0, 1]
    assert "--reference-seeds 3" in result["command"]
    figures = result["sets"]["calibration"]
    assert figures["probes"]["default"]["seeds"] == 2 and figures["reference"]["mean_reliability"] == 1.0


def test_a_probe_equal_to_the_reference_has_rho_1_a_reversed_one_minus_1(space, tmp_path, monkeypatch):
    monkeypatch.setattr(calibrate_module, "proxy_train", FakeTrainer(tiny_order(space), reversed_px=24))
    out = tmp_path / "cal"
    assert calibrate(space, out, "--protocols", "default,resolution=24") == 0
    probes = json.loads((out / "calibration.json").read_text())["sets"]["calibration"]
    assert probes["reference"]["seed_rho"] == 1.0
    assert (probes["reference"]["mean_reliability"], probes["reference"]["seeds_for_0.9"]) == (1.0, 1)
    assert probes["probes"]["default"]["attainable"] == 1.0 and probes["probes"]["params"]["attainable"] == 1.0
    same, reverse = probes["probes"]["default"], probes["probes"]["resolution=24"]
    assert (same["spearman"], same["kendall"], same["seed_rho"], same["spearman_one_seed"]) == (1.0, 1.0, 1.0, 1.0)
    assert (reverse["spearman"], reverse["kendall"]) == (-1.0, -1.0)
    assert "| resolution=24 | training | -1.00 | -1.00 |" in (out / "calibration.md").read_text()


def test_an_interrupted_run_resumes_and_measures_only_what_is_missing(space, tmp_path, monkeypatch):
    out = tmp_path / "cal"
    order = tiny_order(space)
    monkeypatch.setattr(calibrate_module, "proxy_train", FakeTrainer(order, stop_at=6))  # Ctrl-C in the 6th training
    assert calibrate(space, out) == 130
    kept = lines(out)
    trained = [r for r in kept if r["probe"] in ("default", "reference")]
    assert len(trained) == 5 and not (out / "calibration.json").exists()
    counter = FakeTrainer(order)
    monkeypatch.setattr(calibrate_module, "proxy_train", counter)
    assert calibrate(space, out) == 0
    assert counter.calls == 4 * 4 - 5  # 4 architectures x 4 trainings, less the 5 kept
    after = lines(out)
    assert after[:len(kept)] == kept and len(after) == 4 * 7
    assert len({(r["arch"], r["fingerprint"], r["seed"]) for r in after}) == len(after)  # nothing measured twice


def test_report_only_summarises_an_unfinished_calibration_without_measuring(space, tmp_path, monkeypatch, capsys):
    out = tmp_path / "cal"
    order = tiny_order(space)
    monkeypatch.setattr(calibrate_module, "proxy_train", FakeTrainer(order, stop_at=6))  # Ctrl-C in the 6th training
    assert calibrate(space, out) == 130
    kept = (out / "results.jsonl").read_text().rstrip("\n")  # as another command sees it while it appends a line
    (out / "results.jsonl").write_text(kept)
    counter = FakeTrainer(order)
    monkeypatch.setattr(calibrate_module, "proxy_train", counter)
    capsys.readouterr()
    assert calibrate(space, out, "--report-only") == 0
    assert counter.calls == 0 and (out / "results.jsonl").read_text() == kept
    result = json.loads((out / "calibration.json").read_text())
    figures = result["sets"]["calibration"]
    complete = {r["arch"] for r in lines(out) if r["probe"] == "reference"}
    assert figures["architectures"] == 4 and figures["reference_ok"] < 4
    assert result["command"].endswith("--report-only") and "report only" in capsys.readouterr().err
    assert f"Reference: {figures['reference_ok']}/4 architectures measured" in (out / "calibration.md").read_text()
    assert len(complete) >= figures["reference_ok"]


def test_a_cut_last_line_is_measured_again(space, tmp_path, monkeypatch):
    out = tmp_path / "cal"
    order = tiny_order(space)
    monkeypatch.setattr(calibrate_module, "proxy_train", FakeTrainer(order))
    assert calibrate(space, out) == 0
    text = (out / "results.jsonl").read_text()
    (out / "results.jsonl").write_text(text[:-20])  # a kill in the middle of the last write
    counter = FakeTrainer(order)
    monkeypatch.setattr(calibrate_module, "proxy_train", counter)
    assert calibrate(space, out) == 0
    assert counter.calls == 1 and len(lines_tolerant(out)) == 4 * 7


def lines_tolerant(out: Path) -> list[dict]:
    found = []
    for line in (out / "results.jsonl").read_text().splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            pass
    return found


def test_a_failing_candidate_is_recorded_and_left_out(space, tmp_path, monkeypatch, capsys):
    order = tiny_order(space)
    broken, diverging = order[0], order[1]
    fail = {broken: (None, RuntimeError("boom")), diverging: (0, Diverged("training loss became nan at step 3/16"))}
    monkeypatch.setattr(calibrate_module, "proxy_train", FakeTrainer(order, fail=fail))
    out = tmp_path / "cal"
    assert calibrate(space, out) == 0
    failed = {(r["arch"], r["probe"], r["seed"]): r["reason"] for r in lines(out) if not r["ok"]}
    assert set(failed) == {(broken, "reference", 1000), (broken, "reference", 1001), (diverging, "default", 0)}
    assert failed[(broken, "reference", 1000)].startswith("crashed: RuntimeError: boom")
    assert failed[(diverging, "default", 0)] == "diverged: training loss became nan at step 3/16"
    result = json.loads((out / "calibration.json").read_text())
    figures = result["sets"]["calibration"]
    assert len(result["failures"]) == 3 and figures["reference_ok"] == 3
    assert figures["probes"]["default"]["n"] == 2 and figures["probes"]["default"]["spearman"] is None  # 2 points: no ρ
    assert figures["probes"]["netscore[default]"]["n"] == 2
    assert figures["probes"]["params"]["n"] == 3 and figures["probes"]["params"]["spearman"] is not None
    assert "Failures (3" in (out / "calibration.md").read_text()
    assert "3 failed measurement(s)" in capsys.readouterr().out


def test_holdout_set_is_disjoint_and_reported_separately(space, tmp_path, monkeypatch):
    order = sorted(a.digest for a in sample_architectures(load_space(space), 8, 3))  # the calibration set, then the hold-out set
    monkeypatch.setattr(calibrate_module, "proxy_train", FakeTrainer(order))
    out = tmp_path / "cal"
    assert calibrate(space, out, "--holdout-seed", "3") == 0  # the same seed: still a disjoint set
    result = json.loads((out / "calibration.json").read_text())
    sets = {r["set"]: set() for r in result["rows"]}
    for r in result["rows"]:
        sets[r["set"]].add(r["hash"])
    assert len(sets["calibration"]) == len(sets["holdout"]) == 4 and not sets["calibration"] & sets["holdout"]
    assert set(result["sets"]) == {"calibration", "holdout"} and result["selected"]["probe"] in PROBES
    assert "## holdout set" in (out / "calibration.md").read_text()


# -- user mistakes: one line, exit 2 -----------------------------------------------------------------------------

@pytest.mark.parametrize("argv, needle", [
    (["--n", "2"], "--n: expected an integer >= 3"),
    (["--seeds", "0"], "--seeds"),
    (["--reference-seeds", "1"], "--reference-seeds"),
    (["--bogus"], "unrecognized arguments"),
    (["--space", "no-such-space"], "no-such-space"),
    (["--protocols", "default,warp=9"], "unknown key 'warp'"),
    (["--protocols", "epochs=zero"], "epochs"),
    (["--reference-data", "/no/such/folder"], "/no/such/folder"),
])
def test_a_mistake_is_one_line_and_exit_2(tmp_path, capsys, argv, needle):
    try:
        code = main(["calibrate", "--out", str(tmp_path / "cal"), "--reference-data", "fashion-mnist", *argv])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("gensynth") and "error:" in err and needle in err, err
    assert not (tmp_path / "cal").exists()  # refused before the output folder is touched


def test_an_unwritable_out_is_one_line_and_exit_2(space, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert calibrate(space, tmp_path / "file" / "cal") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gensynth: error: --out") and "cannot write" in err


def test_without_the_full_dataset_the_reference_falls_back_and_says_so(space, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENSYNTH_FASHION_MNIST", str(tmp_path))  # a folder without the IDX files: not installed
    monkeypatch.setattr(calibrate_module, "proxy_train", FakeTrainer(tiny_order(space)))
    out = tmp_path / "cal"
    assert calibrate(space, out, "--reference-data", "auto", "--reference-val-images", "5000") == 0
    ref = json.loads((out / "calibration.json").read_text())["reference"]
    assert ref["data"] == "fashion-mnist" and ref["val_images"] == 1000  # the embedded subset's whole validation split
    assert "not installed" in ref["note"] and "fewer than 5000 images (1000)" in ref["note"]
    assert "not installed" in capsys.readouterr().err and f"**{ref['note']}**" in (out / "calibration.md").read_text()
