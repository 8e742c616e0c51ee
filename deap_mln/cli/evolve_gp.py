"""``deap-mln evolve-gp``: evolve a symbolic loss (expression tree) with genetic programming."""
from __future__ import annotations

import argparse
from pathlib import Path

from deap_mln.cli.argtypes import UsageError, non_negative_int, positive_int
from deap_mln.cli.backend_flags import add_backend_arguments, dispatch_from_args
from deap_mln.cli.data_flags import add_data_arguments
from deap_mln.cli.training_flags import TRAINING_FLAG_NAMES, add_training_arguments, training_overrides
from deap_mln.gp.config import GP_ALGORITHMS, GP_PRESETS, gp_preset

GP_OVERRIDES = ("population", "generations", "max_evaluations", "tournament_size", "top_n", "steps", "data_seed")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evolve-gp", help="evolve a symbolic loss (expression tree) with genetic programming",
                       description="Efficiency-based or standard GP over loss expressions in (y, p); fitness is "
                                   "the validation accuracy of a small classifier trained briefly with the loss.")
    p.add_argument("--out", required=True, type=Path, help="run directory to write (or resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--preset", choices=sorted(GP_PRESETS), help="base settings (default: quick)")
    p.add_argument("--algorithm", choices=GP_ALGORITHMS, help="default: efficiency")
    add_data_arguments(p, "--dataset", default_help=", or synthetic (a binary linear task); default digits")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--data-seed", type=int, help="fixes the data splits (default 0)")
    p.add_argument("--population", type=positive_int, help="P, trees kept")
    p.add_argument("--generations", type=non_negative_int)
    p.add_argument("--max-evaluations", type=non_negative_int, help="stop once this many classifiers were trained (0: no limit)")
    p.add_argument("--tournament-size", type=positive_int)
    p.add_argument("--top-n", type=positive_int, help="efficiency GP: trees mutated per generation")
    p.add_argument("--steps", type=positive_int, help="training steps per fitness evaluation")
    p.add_argument("--no-known-losses", action="store_true", help="start from random trees only")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_training_arguments(p)
    add_backend_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from deap_mln.gp.run import evolve_gp, resume_gp
    from deap_mln.saved_losses import GP_FORMAT

    say = None if args.quiet else print
    if args.resume:
        settings = ("preset", "algorithm", "data", "label", "seed", *GP_OVERRIDES, *TRAINING_FLAG_NAMES)
        given = [f"--{name.replace('_', '-')}" for name in settings if getattr(args, name) is not None]
        given += ["--no-known-losses"] if args.no_known_losses else []
        if given:
            raise UsageError(f"--resume continues the run with its own config.json; drop {' '.join(given)}")
        result = resume_gp(args.out, backend=dispatch_from_args(args), progress=say)
    else:
        overrides = {name: getattr(args, name) for name in GP_OVERRIDES if getattr(args, name) is not None}
        config = gp_preset(args.preset or "quick", algorithm=args.algorithm or "efficiency",
                           dataset=args.data or "digits", data_label=args.label or "", seed=args.seed or 0,
                           seed_known_losses=not args.no_known_losses, **overrides, **training_overrides(args))
        result = evolve_gp(config, args.out, backend=dispatch_from_args(args), progress=say)
    print(f"best formula: f(y, p) = {result.formula}   [loss = mean_n sum_k f]")
    print(f"validation accuracy {result.best_fitness:.4f} after {result.state.generation} generations, "
          f"{result.state.cache.evaluations} evaluations, {result.seconds:.1f} s; run directory: {result.out_dir}")
    print(f"saved loss ({GP_FORMAT}): {result.loss_file}")
    return 0
