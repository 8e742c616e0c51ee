"""``deap-mln bench``: compare evolution variants over seeds (ES vs hybrid, ablations)."""
from __future__ import annotations

import argparse
from pathlib import Path

from deap_mln.cli.argtypes import UsageError, positive_int
from deap_mln.cli.data_flags import add_data_arguments
from deap_mln.mln.variants import BUDGETS, VARIANTS


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="compare evolution variants over seeds (ES vs hybrid, ablations)")
    bench.add_argument("--variants", nargs="+", default=["hybrid", "es"], metavar="VARIANT",
                       help="the first is the reference the others are tested against; any of: " + ", ".join(VARIANTS))
    bench.add_argument("--seeds", type=positive_int, default=10)
    bench.add_argument("--budget", choices=sorted(BUDGETS), default="quick")
    bench.add_argument("--threshold", type=float,
                       help="fitness level for 'evaluations to reach' (default: the budget's; 0.9 on a data source)")
    bench.add_argument("--workers", type=positive_int, default=1, help="jobs run in parallel processes")
    add_data_arguments(bench, "--tasks", default_help=", or synthetic (the default): every variant evolves on that "
                       "data's meta-tasks (evolve --data) with the same budget and seeds")
    bench.add_argument("--out", type=Path, required=True)
    bench.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from deap_mln.mln.variants import compare_variants

    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        raise UsageError(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    compare_variants(args.variants, args.seeds, args.budget, args.out, workers=args.workers, threshold=args.threshold,
                     data=args.data or "synthetic", label=args.label or "")
    print((args.out / "report.md").read_text())
    return 0
