"""Packaging details: the wheel's contents, the shipped experiment configs, `inspect --draw` without graphviz."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gensynth.cli.experiments_cmd import first_comment
from gensynth.cli.main import main
from gensynth.errors import UserError
from gensynth.ir import save
from gensynth.search.config import load_config, shipped_experiments

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.name for p in (ROOT / "experiments").glob("*.yaml"))
REFERENCES = sorted(p.name for p in (ROOT / "search_spaces" / "references").glob("*.yaml"))
SOURCES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "gensynth", "search_spaces", "constraints", "samplers", "experiments")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """A wheel built from a copy of the sources (a build writes build/ beside them), with the venv's setuptools."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = out.glob("gensynth-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_ships_the_configs_not_the_scripts(wheel):
    names = set(wheel.namelist())
    assert CONFIGS and {f"gensynth/experiments/{c}" for c in CONFIGS} <= names
    assert "gensynth/experiments/attendnext-latency.json" in names  # the latency table the shipped config pins
    assert not {n for n in names if n.startswith("gensynth/experiments/results/")}
    assert {f"gensynth/search_spaces/references/{r}" for r in REFERENCES} <= names
    shipped_scripts = {n for n in names if n.startswith("gensynth/experiments/") and n.endswith(".py")}
    assert shipped_scripts == {"gensynth/experiments/__init__.py"}, "the experiments' scripts must not install as modules"


def test_wheel_carries_the_license(wheel):
    names = wheel.namelist()
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    text = wheel.read(metadata).decode()
    assert "License-Expression: Apache-2.0" in text and "License-File: LICENSE" in text
    (license_file,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    assert wheel.read(license_file).decode() == (ROOT / "LICENSE").read_text()


def test_experiments_list(capsys):
    assert main(["experiments", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [Path(c).stem for c in CONFIGS]
    demo = next(line for line in lines if line.startswith("demo "))
    assert demo.split(None, 1)[1] == first_comment(ROOT / "experiments" / "demo.yaml") == \
        "The `make demo` run: a short search on the embedded defaults (dcac space, embedded Fashion-MNIST subset)."


def test_config_accepts_a_shipped_experiment_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert shipped_experiments()["demo"].read_text() == (ROOT / "experiments" / "demo.yaml").read_text()
    assert load_config("demo", {"budget": 3}) == load_config(ROOT / "experiments" / "demo.yaml", {"budget": 3})
    (tmp_path / "demo").write_text("budget: 7\n")  # a file of that name comes first
    assert load_config("demo", {}).budget == 7
    with pytest.raises(UserError, match="no_such_experiment: no such file, nor a shipped experiment .*demo") as err:
        load_config("no_such_experiment", {})
    assert "\n" not in str(err.value)


def test_inspect_draws_dot_text_without_graphviz(tmp_path, small, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert shutil.which("dot") is None
    save(small, tmp_path / "small.yaml")
    assert main(["inspect", str(tmp_path / "small.yaml"), "--runs", "0", "--summary", "--draw", str(tmp_path / "small.svg")]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("drew")]
    assert line.startswith(f"drew {tmp_path / 'small.dot'}: graphviz's `dot` is not installed")
    assert (tmp_path / "small.dot").read_text().startswith("digraph") and not (tmp_path / "small.svg").exists()


def test_help_does_not_import_torch():
    """``gensynth --help`` and every command's parser stay light: torch is imported only where a command runs."""
    import subprocess
    import sys

    code = ("import sys\nfrom gensynth.cli.main import make_parser\nmake_parser()\n"
            "heavy = sorted(m for m in ('torch', 'matplotlib', 'fvcore', 'onnxruntime') if m in sys.modules)\nprint(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
