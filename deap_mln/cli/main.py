"""The ``deap-mln`` command: one parser, one module per subcommand, one error policy.

Every error is one line on stderr that starts with ``deap-mln: error: `` (then the
subcommand, where the parser found the mistake). Exit codes:

- 0: done.
- 2: bad usage or bad input: an unknown flag or a bad value, a missing or corrupt file, an
  invalid config. Nothing is written.
- 3: the run failed after its retries (:class:`~deap_mln.resilient_map.EvaluationFailed`:
  workers kept dying or chunks kept running past ``--chunk-timeout``). The run directory
  keeps its last checkpoint (if the run got as far as one); fix the workers and continue
  with ``--resume``.
- 130: interrupted (Ctrl-C); the last checkpoint is kept, continue with ``--resume``.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from deap_mln.cli import bench, evolve, evolve_gp, evolve_taylor, export, meta_test, plot, show
from deap_mln.cli.argtypes import Parser, UsageError
from deap_mln.resilient_map import EvaluationFailed
from deap_mln.version import __version__

COMMANDS = (evolve, show, bench, meta_test, evolve_gp, evolve_taylor, export, plot)
PREFIX = "deap-mln: error: "
EXIT_USAGE = 2
EXIT_EVALUATION_FAILED = 3
EXIT_INTERRUPTED = 130


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
    """Run the command line ``argv``; the exit code (see the module docstring)."""
    try:
        args = build_parser().parse_args(argv)
        return args.handler(args)
    except EvaluationFailed as exc:  # before ValueError: a failed run is not bad input
        print(f"{PREFIX}{one_line(exc)}; the run directory keeps its last checkpoint, if any: "
              "continue with --resume", file=sys.stderr)
        return EXIT_EVALUATION_FAILED
    except (UsageError, ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"{PREFIX}{one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("deap-mln: interrupted; the last checkpoint is kept: continue with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
