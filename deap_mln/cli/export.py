"""``deap-mln export``: write a run's evolved loss as a weights file or a compiled table."""
from __future__ import annotations

import argparse
from pathlib import Path

from deap_mln.cli.argtypes import int_at_least_two, non_negative_int
from deap_mln.deploy.compiled import DEFAULT_RESOLUTION
from deap_mln.deploy.export import DEFAULT_NAMES, ERROR_PROBES, EXPORT_FORMATS


def register(sub: argparse._SubParsersAction) -> None:
    ex = sub.add_parser("export", help="write a run's evolved loss as a weights file or a compiled table",
                        description="Export RUN_DIR/best_loss.pt with the run's metadata; both formats load with "
                                    "deap_mln.load_loss (weights-only, no pickled code).")
    ex.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    ex.add_argument("--format", dest="fmt", choices=EXPORT_FORMATS, required=True,
                    help="weights: the evolved loss itself; table: the MLN compiled to a bicubic Hermite table")
    ex.add_argument("--out", type=Path, help=f"file to write (default RUN_DIR/{DEFAULT_NAMES['weights']} or "
                                             f"RUN_DIR/{DEFAULT_NAMES['table']})")
    ex.add_argument("--resolution", type=int_at_least_two, default=DEFAULT_RESOLUTION,
                    help=f"table nodes per axis (default {DEFAULT_RESOLUTION})")
    ex.add_argument("--probes", type=non_negative_int, default=ERROR_PROBES,
                    help=f"random points to measure the table's error on (default {ERROR_PROBES:,}; 0: skip)")
    ex.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from deap_mln.deploy.export import check_warning, export_run

    path, record = export_run(args.run_dir, args.fmt, args.out, args.resolution, args.probes)
    meta = record["metadata"]
    print(f"wrote {path} ({record['format']}, {path.stat().st_size / 1e6:.2f} MB): {meta.get('method')}, "
          f"seed {meta.get('seed')}, fitness {meta.get('fitness')}")
    if "compile_error" in meta:
        e = meta["compile_error"]
        print(f"table {args.resolution}x{args.resolution}: max value error {e['relative_value_error']:.1e} of the "
              f"loss's range, gradient error max {e['relative_gradient_error']:.1e} / mean "
              f"{e['mean_relative_gradient_error']:.1e} of the largest derivative ({e['probes']:,} probes)")
    warning = check_warning(meta)
    if warning:
        print(warning)
    return 0
