"""The ``gensynth`` command: parse arguments, dispatch, turn user errors into one line and exit 2."""
from __future__ import annotations

import argparse
import sys
from typing import NoReturn, Sequence

from .. import __version__, interrupts
from ..errors import UserError
from . import (calibrate_cmd, compare_cmd, constraints_cmd, experiments_cmd, export_cmd, inspect_cmd, references_cmd, report_cmd,
               runs_cmd, search_cmd, show_cmd, spaces_cmd)

COMMANDS = (search_cmd, show_cmd, runs_cmd, report_cmd, spaces_cmd, inspect_cmd, compare_cmd, constraints_cmd, export_cmd, experiments_cmd,
            references_cmd, calibrate_cmd)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def make_parser() -> Parser:
    parser = Parser(
        prog="gensynth",
        description="Neural-architecture search by generative synthesis. "
        "Sample, inspect and search architectures of a search space under design-rule constraints.",
        epilog="Run 'gensynth COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"gensynth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    interrupts.install()  # SIGTERM ends a command like Ctrl-C: finished work is already durable
    try:
        return args.run(args) or 0
    except UserError as err:  # one line, even when a user's name or value holds a line break
        print(f"gensynth: error: {err}".replace("\r", "\\r").replace("\n", "\\n"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gensynth: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
