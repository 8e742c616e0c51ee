"""``--backend``, ``--workers`` and friends: how a command's fitness evaluations are dispatched."""
from __future__ import annotations

import argparse

from deap_mln.cli.argtypes import non_negative_int, positive_float, positive_int
from deap_mln.parallel import BACKENDS, DispatchOptions
from deap_mln.resilient_map import DEFAULT_RETRIES


def add_backend_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The flags read by :func:`dispatch_from_args`, for every command that evaluates."""
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="auto: SCOOP under its launcher, else Dask if --scheduler is given, else a process pool "
                             "if --workers > 1 or --chunk-timeout is given, else serial")
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="worker processes of the process pool or of Dask's LocalCluster (default 1)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="Dask: join the running cluster whose scheduler is at ADDRESS (tcp://host:8786) "
                             "instead of starting a LocalCluster")
    parser.add_argument("--chunk-timeout", type=positive_float, metavar="SECONDS",
                        help="a chunk still running after SECONDS on a worker is run again elsewhere "
                             "(SCOOP: by the launcher); default: no limit")
    parser.add_argument("--retries", type=non_negative_int, default=DEFAULT_RETRIES,
                        help=f"times one chunk is run again after its worker died or it timed out, before the run "
                             f"stops (default {DEFAULT_RETRIES})")


def dispatch_from_args(args: argparse.Namespace) -> DispatchOptions:
    """The :class:`deap_mln.parallel.DispatchOptions` the flags ask for, validated."""
    return DispatchOptions(backend=args.backend, workers=args.workers, scheduler=args.scheduler,
                           chunk_timeout=args.chunk_timeout, retries=args.retries).validate()
