"""Whether two runs proposed the same candidates: the records of ``candidates.jsonl`` compared one by one.

For each record position: the proposal number, the genome's structural hash, the status and reason, the score, the
constraint violations and every measurement (bit for bit). Prints the first difference (or that there is none) and,
with ``--out``, writes a JSON summary: records per run, how many agree from the start, and the first differing
position with both sides. Exit 0 when the runs are identical, 1 otherwise.

    python experiments/compare_runs.py runs/attendnext runs/attendnext-rerun [--out experiments/results/attendnext/rerun.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

FIELDS = ("number", "hash", "status", "reason", "score", "violations", "measurements")


def records(run: Path) -> list[dict[str, Any]]:
    """The run's candidate records, in the order it wrote them."""
    return [json.loads(line) for line in (run / "candidates.jsonl").read_text().splitlines() if line.strip()]


def essentials(record: dict[str, Any]) -> dict[str, Any]:
    return {name: record.get(name) for name in FIELDS}


def compare(first: Path, second: Path) -> dict[str, Any]:
    a, b = records(first), records(second)
    agree = 0
    for left, right in zip(a, b):
        if essentials(left) != essentials(right):
            break
        agree += 1
    summary: dict[str, Any] = {"runs": [str(first), str(second)], "records": [len(a), len(b)], "agree_from_start": agree,
                               "identical": agree == len(a) == len(b)}
    if not summary["identical"]:
        summary["first_difference"] = {"position": agree, "first": essentials(a[agree]) if agree < len(a) else None,
                                       "second": essentials(b[agree]) if agree < len(b) else None}
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--out", type=Path, help="write the summary as JSON here")
    args = parser.parse_args(argv)
    summary = compare(args.first, args.second)
    if summary["identical"]:
        print(f"identical: {summary['records'][0]} records, same proposals, hashes, statuses and measurements")
    else:
        diff = summary["first_difference"]
        print(f"{summary['agree_from_start']} records agree, then position {diff['position']}: "
              f"{json.dumps(diff['first'])} vs {json.dumps(diff['second'])}")
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1) + "\n")
    return 0 if summary["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
