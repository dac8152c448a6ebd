"""``--format table|json|csv``: one option, one writer per format, shared by the commands that print data for scripts."""
from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

FORMATS = ("table", "json", "csv")


def add_format_option(parser: argparse.ArgumentParser, json_help: str, csv_help: str) -> None:
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help=f"table (default, for people), json ({json_help}) or csv ({csv_help})")


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=1)
    sys.stdout.write("\n")


def print_csv(columns: list[str], rows: list[dict[str, Any]]) -> None:
    """One header line, then one line per row; a missing or None cell is empty."""
    writer = csv.DictWriter(sys.stdout, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
