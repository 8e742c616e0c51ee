"""``deap-mln show``: summarise an MLN run directory."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    show = sub.add_parser("show", help="summarise a run directory")
    show.add_argument("run_dir", type=Path)
    show.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from deap_mln.mln.run import summarise_run

    for line in summarise_run(args.run_dir).lines():
        print(line)
    return 0
