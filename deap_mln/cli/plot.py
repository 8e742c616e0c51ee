"""``deap-mln plot``: figures of an evolved loss (heat map, slices against CE/MSE/focal, derivative)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    pl = sub.add_parser("plot", help="figures of an evolved loss: heat map, slices against CE/MSE/focal, derivative",
                        description="Plot RUN_DIR/best_loss.pt (or a saved/exported loss file). MLN losses: "
                                    "landscape.png, landscape_slices.png, landscape_gradient.png; other losses "
                                    "(e.g. GP formulas): loss_formula.png.")
    pl.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory, or a loss file")
    pl.add_argument("--out", type=Path, help="folder for the PNGs (default: the run directory / the file's folder)")
    pl.add_argument("--points", type=int, default=201,
                    help="grid points per axis of the heat maps (default 201)")
    pl.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from deap_mln.deploy.landscape import plot_loss

    files, lines = plot_loss(args.run_dir, args.out, args.points)
    for line in lines:
        print(line)
    for path in files:
        print(f"wrote {path}")
    return 0
