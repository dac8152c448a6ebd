"""Hardening: the run-directory lock, misbehaving plugins, a read-only show, the Python API, old runs resuming.

Searches here use the fake evaluation stage of test_loop.py (no training) or
the tiny protocol through the CLI, in-process.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gensynth.errors import UserError
from gensynth.plugins import instantiate
from gensynth.report.runs import read_config
from gensynth.search import SearchConfig, load_config, run_search
from gensynth.search.lock import RunLock
from gensynth.search.record import FORMAT_VERSION, Status
from gensynth.search.store import RunStore
from test_loop import make_search
from tiny_space import TINY_PROTOCOL, main_one_thread, write_protocol, write_tiny_space

PLUGINS = Path(__file__).resolve().parent / "plugins"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_space(tmp_path_factory.mktemp("space"))


@pytest.fixture(scope="module")
def tiny_space(tiny):
    from gensynth.space import load_space
    return load_space(str(tiny))


def cli(tiny: Path, out: Path, *extra: str) -> int:
    protocol = write_protocol(out.parent)
    return main_one_thread(["search", "--space", str(tiny), "--config", str(protocol), "--budget", "1", "--out", str(out), "--no-progress", *extra])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("gensynth: error:") and "Traceback" not in err, err
    return lines[0]


# -- the lock ------------------------------------------------------------------------------------------


def test_a_second_search_on_a_locked_run_directory_is_refused(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(out / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, f'pid {os.getpid()} on test'.encode())\n"
        "print('locked', flush=True); time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert cli(tiny, out) == 2
        line = one_error_line(capsys)
        assert "another search is running" in line and f"pid {holder.pid}" in line
        assert not (out / "candidates.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_dead_process_is_taken_over(tiny, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text("pid 999999 on a-machine-that-crashed\n")
    assert cli(tiny, out) == 0
    assert f"pid {os.getpid()}" in (out / ".lock").read_text()


def test_the_lock_is_released_when_the_search_ends(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(UserError, match="another search is running"):
            RunLock(tmp_path).acquire()
    with RunLock(tmp_path):
        pass


# -- misbehaving plugins --------------------------------------------------------------------------------


@pytest.mark.parametrize("plugin,expected", [
    ("ReturnsWrongType", "returned bool, expected a gensynth.constraint.Verdict"),
    ("ReturnsNaN", "violation nan"),
    ("ReturnsNegative", "violation must be a finite number >= 0"),
])
def test_a_plugin_that_returns_garbage_fails_each_candidate_by_name(tiny_space, tmp_path, plugin, expected):
    constraint = instantiate(f"{PLUGINS / 'misbehaving.py'}:{plugin}")
    result = make_search(tiny_space, tmp_path / "run", budget=2, emit=False, constraints=[constraint], proposal_cap=10).run()
    records = RunStore(tmp_path / "run").records()
    assert records and all(r.status is Status.FAILED for r in records)
    assert all(f"constraint '{constraint.name}'" in r.reason and expected in r.reason for r in records)
    assert result.evaluated == 0 and result.capped


@pytest.mark.parametrize("plugin,expected", [
    ("RaisesInInit", "constraint 'raises_in_init'.*raised RuntimeError in __init__: cannot start"),
    ("RaisesInPrepare", "constraint 'raises_in_prepare' raised OSError in prepare: reference file vanished"),
])
def test_a_plugin_that_raises_at_start_up_is_one_line_and_leaves_no_run_directory(tiny, tmp_path, capsys, plugin, expected):
    out = tmp_path / "run"
    assert cli(tiny, out, "--constraint", f"{PLUGINS / 'misbehaving.py'}:{plugin}") == 2
    assert re.search(expected, one_error_line(capsys))
    assert not out.exists(), "a failed start must leave nothing that refuses the corrected retry"
    assert cli(tiny, out) == 0  # the corrected retry


# -- show is read-only, resuming is checked -------------------------------------------------------------


def test_show_never_writes_the_run_directory(tiny_space, tmp_path, capsys):
    root = tmp_path / "run"
    make_search(tiny_space, root, budget=2, emit=False).run()
    with open(root / "candidates.jsonl", "a") as f:
        f.write('{"number": 99, "ha')  # a torn last line, as a kill mid-write leaves it
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}
    assert main_one_thread(["show", str(root)]) == 0
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}
    assert after == before


def test_a_damaged_line_in_the_middle_is_named(tiny_space, tmp_path, capsys):
    root = tmp_path / "run"
    make_search(tiny_space, root, budget=2, emit=False).run()
    lines = (root / "candidates.jsonl").read_text().splitlines()
    lines[1] = lines[1][: len(lines[1]) // 2]
    (root / "candidates.jsonl").write_text("\n".join(lines) + "\n")
    assert main_one_thread(["show", str(root)]) == 2
    assert f"candidates.jsonl:2: damaged candidate record" in one_error_line(capsys)


# -- the Python API ---------------------------------------------------------------------------------------


def test_a_config_built_in_python_is_validated_like_yaml(tmp_path):
    with pytest.raises(UserError, match="cmaes"):
        run_search(SearchConfig(sampler="cmaes", out=str(tmp_path / "run")))
    with pytest.raises(UserError, match="budget"):
        run_search(SearchConfig(budget=0, out=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()


def test_resuming_with_other_constraints_from_python_is_refused(tiny, tmp_path):
    out = tmp_path / "run"
    config = load_config(None, {"space": str(tiny), "budget": 1, "out": str(out), **_dotted(TINY_PROTOCOL)})
    max_params = instantiate("max_params", {"limit": 1e9})
    assert run_search(config, constraints=[max_params], progress=False).evaluated == 1
    with pytest.raises(UserError, match="constraints"):
        run_search(config, constraints=[instantiate("max_params", {"limit": 10})], progress=False)
    with pytest.raises(UserError, match="constraints"):
        run_search(config, progress=False)
    assert run_search(config, constraints=[instantiate("max_params", {"limit": 1e9})], progress=False).evaluated == 1


def _dotted(options: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in options.items():
        if isinstance(value, dict):
            flat.update(_dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# -- runs written before the record was typed --------------------------------------------------------------


def test_a_run_written_in_format_1_resumes(tiny, tmp_path):
    """tests/fixtures/v1_run was written by main at 3745a1c (budget 3, seed 3); a larger budget resumes it."""
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(FIXTURES / "v1_run" / "candidates.jsonl", out)
    config = yaml.safe_load((FIXTURES / "v1_run" / "config.yaml").read_text())
    config.update(space=str(tiny), out=str(out))
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    old = RunStore(out).records()
    assert len(old) == 13 and sum(r.inquired for r in old) == 3
    assert all(r.values is None for r in old if r.status is not Status.EVALUATED)  # no placeholder survives
    assert read_config(RunStore(out)).propose_ahead == 1, "written before the setting: it proposed one ahead"
    assert main_one_thread(["search", "--config", str(out / "config.yaml"), "--budget", "4", "--no-progress"]) == 0
    assert read_config(RunStore(out)).propose_ahead == 2, "resumed with today's default"
    now = RunStore(out).records()
    assert now[:13] == old and sum(r.inquired for r in now) == 4
    assert all(r.version == FORMAT_VERSION for r in now[13:])
    assert '"version": 2' in (out / "candidates.jsonl").read_text().splitlines()[-1]


# -- the README's Python example ---------------------------------------------------------------------------


def test_the_readme_python_example_runs(tiny, tmp_path, monkeypatch):
    """The README's example, on the tiny space and protocol (same code, smaller data)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (code,) = re.findall(r"## Python API.*?```python\n(.*?)```", readme, flags=re.S)
    protocol = write_protocol(tmp_path, space=str(tiny))
    assert '"demo"' in code and '"runs/api-demo"' in code
    code = code.replace('"demo"', repr(str(protocol))).replace('"runs/api-demo"', repr(str(tmp_path / "run")))
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        namespace: dict = {}
        exec(compile(code, "README.md", "exec"), namespace)
    finally:
        torch.set_num_threads(before)
    result = namespace["result"]
    assert result.evaluated == 2 and result.best is not None
    assert all(len(result.best.verdicts) and v["satisfied"] for v in result.best.verdicts.values())
    assert "at_most_nodes" in result.best.verdicts


def test_an_objective_needing_an_unmeasured_metric_is_refused_at_start(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(tiny, out, "--objective", "pareto", "--latency-runs", "0") == 2
    line = one_error_line(capsys)
    assert "objective 'pareto' needs 'latency_ms'" in line and "latency.runs is 0" in line
    assert not out.exists()


# -- the probe process, Ray, SIGTERM -------------------------------------------------------------------------

PROBE_GRAPH = "from gensynth.space import load_space; from gensynth.ir import to_dict; g = to_dict(load_space('dcac').seed_graph().retarget(resolution=64))"


def test_the_probe_process_never_imports_from_the_working_directory(tmp_path, monkeypatch):
    from gensynth.ir import to_dict
    from gensynth.search.config import LatencyConfig
    from gensynth.search.inquisitor import ProbeTask
    from gensynth.search.probe_process import ProbeProcess
    from gensynth.space import load_space

    marker = tmp_path / "imported"
    for name in ("gensynth", "torch"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('{name}')\nraise ImportError('shadowed')\n")
    monkeypatch.chdir(tmp_path)
    probes = ProbeProcess()
    try:
        probes.submit(ProbeTask(to_dict(load_space("dcac").seed_graph().retarget(resolution=32)), LatencyConfig(runs=0), 1))
        result = probes.result()
    finally:
        probes.stop()
    assert result.ok, result.reason
    assert not marker.exists()


def test_the_probe_process_exits_quietly_when_its_driver_dies(tmp_path):
    driver = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from gensynth.search.config import LatencyConfig\n"
        "from gensynth.search.inquisitor import ProbeTask\n"
        "from gensynth.search.probe_process import ProbeProcess\n"
        f"{PROBE_GRAPH}\n"
        "p = ProbeProcess(); p.submit(ProbeTask(g, LatencyConfig(runs=100000, warmup=0), 1))\n"
        "print(p.pid, flush=True); time.sleep(60)\n")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child = int(driver.stdout.readline())
    time.sleep(3.0)  # the child is now timing
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.1)
    assert not _alive(child), "the probe process outlived its driver"
    assert "Traceback" not in driver.stderr.read()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")  # a zombie has exited


def test_an_unreachable_ray_address_fails_in_bounded_time(tiny, tmp_path, capsys):
    pytest.importorskip("ray")
    started = time.monotonic()
    assert cli(tiny, tmp_path / "run", "--executor", "ray", "--ray-address", "127.0.0.1:9") == 2
    assert time.monotonic() - started < 15
    assert "no Ray cluster answers there" in one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_sigterm_is_handled_like_ctrl_c_and_the_run_resumes(tiny, tmp_path):
    out = tmp_path / "run"
    protocol = write_protocol(tmp_path)
    argv = [str(Path(sys.executable).with_name("gensynth")), "search", "--space", str(tiny), "--config", str(protocol),
            "--budget", "40", "--out", str(out), "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(r.inquired for r in _records(out)):
        time.sleep(0.2)
    run.terminate()
    _, err = run.communicate(timeout=30)
    assert run.returncode == 130 and "gensynth: interrupted" in err and "Traceback" not in err, err
    done = sum(r.inquired for r in _records(out))
    assert done >= 1
    argv[argv.index("--budget") + 1] = str(done)  # the interrupted run resumes: its finished work counts
    again = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"{done} evaluated" in again.stdout and sum(r.inquired for r in _records(out)) == done


def _records(out: Path) -> list:
    return RunStore(out).records() if (out / "candidates.jsonl").exists() else []


# -- objectives and executors through entry points ----------------------------------------------------------


def test_installed_objectives_and_executors_come_through_their_entry_point_groups(monkeypatch):
    import types
    from importlib.metadata import EntryPoint

    import gensynth.registry
    from gensynth.search.config import ObjectiveConfig
    from gensynth.search.executors import EXECUTORS, LocalExecutor, make_executor
    from gensynth.search.objective import OBJECTIVES, Objective, make_objective

    plugin = types.ModuleType("fake_gensynth_plugin")
    plugin.objective = lambda config: Objective("fewest_params", ("params",), ("minimize",), lambda m: -m["params"], ("params",))
    plugin.executor = lambda config: LocalExecutor()
    monkeypatch.setitem(sys.modules, "fake_gensynth_plugin", plugin)
    groups = {"gensynth.objectives": [EntryPoint("fewest_params", "fake_gensynth_plugin:objective", "gensynth.objectives")],
              "gensynth.executors": [EntryPoint("mine", "fake_gensynth_plugin:executor", "gensynth.executors")]}
    monkeypatch.setattr(gensynth.registry, "entry_points", lambda group: groups.get(group, []))
    for registry in (OBJECTIVES, EXECUTORS):
        monkeypatch.setattr(registry, "_entry_points_loaded", False)
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
        monkeypatch.setattr(registry, "_origins", dict(registry._origins))
    assert make_objective(ObjectiveConfig(name="fewest_params")).requires == ("params",)
    assert isinstance(make_executor(SearchConfig(executor="mine")), LocalExecutor)
    assert "entry point fake_gensynth_plugin:executor" in EXECUTORS.origin("mine")
    with pytest.raises(UserError, match=r"unknown objective 'nope' \(expected one of: fewest_params, netscore, pareto, weighted\)"):
        make_objective(ObjectiveConfig(name="nope"))
