"""The loop split into parts proposes exactly what the single-class loop did (tests/fixtures/tiny_run_40.json)."""
from __future__ import annotations

import json
from pathlib import Path

from fixtures.make_tiny_run_fixture import tiny_run_proposals

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "tiny_run_40.json"


def test_a_seeded_tiny_run_reproduces_the_first_40_proposals_of_main(tmp_path):
    expected = json.loads(FIXTURE.read_text())
    assert len(expected) == 40 and {r["status"] for r in expected} >= {"evaluated", "rejected"}
    assert tiny_run_proposals(tmp_path) == expected
