"""The run report: a small real run with fake stages (no training), its page rendered in headless Chromium.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
JSON messages separated by NUL bytes on file descriptors 3 and 4), so the test
sees every console message, uncaught error and network request of the page.
"""
from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from gensynth.cli.main import main
from gensynth.ir import save
from gensynth.ir.serialize import to_dict
from gensynth.plugins import instantiate
from gensynth.report import write_report
from gensynth.search.config import DEFAULT_CONSTRAINTS, SearchConfig, TrainingConfig
from gensynth.search.inquisitor import TaskResult
from gensynth.search.stages import EvaluationStage
from gensynth.search.store import RunStore
from test_loop import FakeStage, _unit, make_search, tiny_space  # noqa: F401  (tiny_space is a fixture)

CHROMIUM = shutil.which("chromium")
VAL_IMAGES = 50


@dataclass
class FakeTiming:
    graph: dict[str, Any]
    needs_data: ClassVar[bool] = True

    def __call__(self, data: Any = None) -> TaskResult:
        return TaskResult(True, {"latency_ms": 1 + 9 * _unit(self.graph, "latency")})


class FakeLatencyStage(EvaluationStage):
    name = "timing"
    measures = ("latency_ms",)

    def task(self, graph):
        return FakeTiming(to_dict(graph))


def reference_file(space, folder: Path) -> Path:
    """A reference architecture of the space with a middling fake accuracy, so some candidates beat it."""
    for seed in range(100):
        graph = space.to_graph(space.sample(seed), name="ref")
        if 0.2 < _unit(to_dict(graph), "a") < 0.5:
            return save(graph, folder / "ref_net.yaml")
    raise AssertionError("no middling reference in 100 samples")


@pytest.fixture(scope="module")
def run(tiny_space, tmp_path_factory) -> Path:
    """A finished 8-candidate run with references, a config.yaml and final/; then its report."""
    root = tmp_path_factory.mktemp("report") / "run"
    ref = reference_file(tiny_space, root.parent)
    beating = {"reference_beating": {"references": [str(ref)], "metrics": ["accuracy"]}}
    constraints = [instantiate(name) for name in DEFAULT_CONSTRAINTS] + [instantiate("reference_beating", beating["reference_beating"])]
    make_search(tiny_space, root, budget=8, stages=[FakeStage(), FakeLatencyStage()], constraints=constraints).run()
    config = SearchConfig(space=str(tiny_space.path), budget=8, name="report-test", constraints=[*DEFAULT_CONSTRAINTS, beating],
                          training=TrainingConfig(val_images=VAL_IMAGES), export_onnx=False)
    (root / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    write_report(root)
    return root


def test_the_report_holds_every_plot_as_png_and_svg(run):
    folder = run / "report"
    for stem in ("best_score", "outcomes", "accuracy_latency_ms", "accuracy_params"):
        png, svg = folder / f"{stem}.png", folder / f"{stem}.svg"
        assert png.read_bytes().startswith(b"\x89PNG"), stem
        assert "<svg" in svg.read_text(), stem
    page = (folder / "index.html").read_text()
    assert page.count("<img") == 5  # four plots and the diagram
    for words in ("ref_net", "Pareto front", "binomial standard error", f"{VAL_IMAGES} validation images", "median of 10 timed runs",
                  "<h2>Protocol</h2>", "<h3>Layers</h3>"):
        assert words in page, words


def test_the_page_names_the_emitted_candidate(run):
    page = (run / "report" / "index.html").read_text()
    best = max((r for r in RunStore(run).records() if r.feasible), key=lambda r: r.score)
    assert f"Candidate {best.number}, hash <code>{best.hash}</code>" in page


def test_the_page_fetches_nothing_from_the_network(run):
    page = (run / "report" / "index.html").read_text()
    for attribute in ("src=", "href="):
        for value in page.split(attribute)[1:]:
            assert value.startswith(('"data:', '"best_score', '"outcomes', '"accuracy_')), value[:60]
    assert "<script" not in page and "url(" not in page


def test_a_second_report_removes_plots_it_no_longer_draws(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    lines = (copy / "candidates.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for r in records:
        r["measurements"].pop("latency_ms", None)
    (copy / "candidates.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_report(copy)
    assert not (copy / "report" / "accuracy_latency_ms.png").exists()
    assert "no candidate of this run has both accuracy and latency_ms" in (copy / "report" / "index.html").read_text()


def test_report_command_with_out(run, tmp_path, capsys):
    assert main(["report", str(run), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "index.html").is_file()
    assert str(tmp_path / "elsewhere" / "index.html") in capsys.readouterr().out


def test_report_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a run directory" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "report").exists()


# -- headless Chromium ----------------------------------------------------------------------------------


class DevTools:
    """Chromium's DevTools protocol over ``--remote-debugging-pipe``: send commands, collect every event."""

    def __init__(self, profile: Path):
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()
        # the pipe transport reads fd 3 and writes fd 4: bash moves the child's ends there (dash takes one-digit fds only;
        # no preexec_fn, which is unsafe with threads)
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser)]
        for fd in (to_browser, from_browser):
            os.close(fd)
        move = f'exec "$@" 3<&{ends[0]} 4>&{ends[1]} {ends[0]}<&- {ends[1]}>&-'
        self.proc = subprocess.Popen(
            ["bash", "-c", move, "bash", CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", "about:blank"],
            pass_fds=ends, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in ends:
            os.close(fd)
        self.events: list[dict[str, Any]] = []
        self._buffer, self._id = b"", 0

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self._write, json.dumps(message).encode() + b"\0")
        reply = self.wait_for(lambda m: m.get("id") == self._id)
        assert "error" not in reply, reply
        return reply.get("result", {})

    def wait_for(self, wanted, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                self.events.append(message)
                if wanted(message):
                    return message
            if not select.select([self._read], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise EOFError(f"chromium exited with code {self.proc.wait()}")
            self._buffer += chunk

    def close(self) -> None:
        try:
            os.write(self._write, json.dumps({"id": 0, "method": "Browser.close", "params": {}}).encode() + b"\0")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        os.close(self._write)
        os.close(self._read)


IMAGES = "Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth}))"


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_page_renders_in_headless_chromium(run, tmp_path):
    browser = DevTools(tmp_path / "profile")
    try:
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            browser.call(f"{domain}.enable", session)
        browser.call("Page.navigate", session, url=(run / "report" / "index.html").as_uri())
        browser.wait_for(lambda m: m.get("method") == "Page.loadEventFired")
        images = browser.call("Runtime.evaluate", session, expression=IMAGES, returnByValue=True)["result"]["value"]
    finally:
        browser.close()
    assert len(images) == 5
    assert all(i["complete"] and i["width"] > 0 for i in images), images
    problems = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"
                or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
                or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    assert not problems, problems
    fetched = [e["params"]["request"]["url"] for e in browser.events if e.get("method") == "Network.requestWillBeSent"]
    assert fetched and all(url.startswith(("file:", "data:")) for url in fetched), fetched
