"""``deap-mln evolve-taylor``: evolve a TaylorGLO loss (8 Taylor-polynomial parameters) with DEAP's CMA-ES."""
from __future__ import annotations

import argparse
from pathlib import Path

from deap_mln.cli.argtypes import UsageError, positive_int
from deap_mln.cli.backend_flags import add_backend_arguments, dispatch_from_args
from deap_mln.cli.data_flags import add_data_arguments
from deap_mln.cli.training_flags import TRAINING_FLAG_NAMES, add_training_arguments, training_overrides
from deap_mln.taylor.config import TAYLOR_PRESETS, taylor_preset

TAYLOR_OVERRIDES = ("generations", "lambda_", "sigma", "steps", "data_seed")
# flags a --resume refuses: the run has its config
TAYLOR_SETTINGS = ("preset", "data", "label", "seed", *TAYLOR_OVERRIDES, *TRAINING_FLAG_NAMES)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evolve-taylor", help="evolve a TaylorGLO loss (third-order Taylor polynomial) with CMA-ES",
                       description="TaylorGLO: the 8 parameters of a third-order Taylor polynomial in (y, p), "
                                   "searched with DEAP's CMA-ES; fitness is the validation accuracy of a small "
                                   "classifier trained briefly with the loss.")
    p.add_argument("--out", required=True, type=Path, help="run directory to write (or resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--preset", choices=sorted(TAYLOR_PRESETS), help="base settings (default: quick)")
    add_data_arguments(p, "--dataset", default_help=", or synthetic (a binary linear task); default digits")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--data-seed", type=int, help="fixes the data splits (default 0)")
    p.add_argument("--generations", type=positive_int)
    p.add_argument("--lambda", dest="lambda_", type=positive_int, help="CMA-ES offspring per generation")
    p.add_argument("--sigma", type=float, help="initial CMA-ES step size")
    p.add_argument("--steps", type=positive_int, help="steps of the brief training per fitness evaluation")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_training_arguments(p)
    add_backend_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from deap_mln.saved_losses import TAYLOR_FORMAT
    from deap_mln.taylor.run import evolve_taylor, resume_taylor

    say = None if args.quiet else print
    if args.resume:
        given = [f"--{name.rstrip('_').replace('_', '-')}" for name in TAYLOR_SETTINGS if getattr(args, name) is not None]
        if given:
            raise UsageError(f"--resume continues the run with its own config.json; drop {' '.join(given)}")
        result = resume_taylor(args.out, backend=dispatch_from_args(args), progress=say)
    else:
        overrides = {name: getattr(args, name) for name in TAYLOR_OVERRIDES if getattr(args, name) is not None}
        config = taylor_preset(args.preset or "quick", dataset=args.data or "digits", data_label=args.label or "",
                               seed=args.seed or 0, **overrides, **training_overrides(args))
        result = evolve_taylor(config, args.out, backend=dispatch_from_args(args), progress=say)
    print(f"best theta: {', '.join(f'{v:.4g}' for v in result.best)}")
    print(f"validation accuracy {result.best_fitness:.4f} after {len(result.search.logbook)} generations, "
          f"{result.search.evaluations} evaluations, {result.seconds:.1f} s; run directory: {result.out_dir}")
    print(f"saved loss ({TAYLOR_FORMAT}): {result.loss_file}")
    return 0
