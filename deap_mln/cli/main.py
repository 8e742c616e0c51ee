"""The ``deap-mln`` command: one parser, one module per subcommand, one error policy.

Bad flags or values, missing or corrupt files and invalid configs exit with code 2 and a
one-line reason; an interrupted run keeps its last checkpoint and continues with ``--resume``.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from deap_mln import __version__
from deap_mln.cli import bench, evolve, evolve_gp, evolve_taylor, export, meta_test, plot, show
from deap_mln.cli.argtypes import Parser, UsageError

COMMANDS = (evolve, show, bench, meta_test, evolve_gp, evolve_taylor, export, plot)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="deap-mln", description="Evolve loss functions for classification with DEAP and PyTorch.")
    parser.add_argument("--version", action="version", version=f"deap_mln {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.register(sub)
    return parser


def one_line(message: object) -> str:
    """A message on one line (torch's load errors span several)."""
    return " ".join(str(message).split())


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.handler(args)
    except UsageError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"deap-mln: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deap-mln: interrupted; the last checkpoint is kept: continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
