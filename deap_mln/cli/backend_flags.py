"""``--backend`` and ``--workers``: how a command's fitness evaluations are dispatched."""
from __future__ import annotations

import argparse

from deap_mln.cli.argtypes import positive_int
from deap_mln.parallel import BACKENDS


def add_backend_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The flags read by :func:`deap_mln.parallel.evaluation_map`, for every command that evaluates."""
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="auto: SCOOP under its launcher, else a process pool if --workers > 1, else serial")
    parser.add_argument("--workers", type=positive_int, default=1, help="process-pool workers (default 1)")
