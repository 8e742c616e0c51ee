"""Command line: ``deap-mln evolve`` and ``deap-mln show``.

Bad flags or values exit with code 2 and a one-line reason; an interrupted run keeps
its last checkpoint and continues with ``--resume``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .config import (ALGORITHMS, EDL_ERRORS, EVALUATION_PATHS, MUTATIONS, PRESETS, TASK_KINDS, EvolutionConfig,
                     preset)
from .metatest import add_meta_test_command
from .gp_run import add_evolve_gp_command
from .export import add_export_command
from .landscape import add_plot_command
from .bench import BUDGETS, VARIANTS
from .parallel import add_backend_arguments
from .argtypes import positive_int


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise UsageError(f"{self.prog}: {message}")


def _hidden(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated sizes such as 32,64,128, got {text!r}") from None
    return sizes


# CLI flag -> config field, for the overrides of `evolve`
OVERRIDES = {
    "mu": "mu", "lambda_": "lambda_", "generations": "generations", "pool_size": "pool_size",
    "train_size": "train_size", "val_size": "val_size", "tasks_per_eval": "tasks_per_eval",
    "epochs": "inner_epochs", "hidden": "hidden", "evaluation": "evaluation", "grid_size": "grid_size",
    "chunk_size": "chunk_size", "task_kind": "task_kind", "initial_sigma": "initial_sigma", "tau": "tau",
    "patience": "patience", "checkpoint_every": "checkpoint_every", "dynamic_update": "dynamic_update",
    "update_step": "update_step", "update_truncation": "update_truncation", "algorithm": "algorithm",
    "mutation": "mutation", "classes": "edl_classes", "samples": "edl_samples", "pairs": "edl_pairs",
    "regimes": "edl_regimes", "error": "edl_error",
}


def _weights(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated weights such as 0.4,0.3,0.15,0.15, got {text!r}") from None


def add_evolution_arguments(ev: argparse.ArgumentParser, default_preset: str) -> None:
    """Flags shared by `evolve` and `pretrain-edl`: a preset plus overrides of config fields."""
    ev.add_argument("--out", required=True, type=Path, help="run directory to write (or resume)")
    ev.add_argument("--preset", choices=sorted(PRESETS), default=default_preset,
                    help=f"base settings (default: {default_preset})")
    ev.add_argument("--config", type=Path, help="JSON config file (instead of --preset)")
    ev.add_argument("--algorithm", choices=ALGORITHMS, help="hybrid ES-GA or ES-only (default: the preset's)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    ev.add_argument("--population", type=positive_int, help="mu + lambda, split evenly (paper: 50)")
    ev.add_argument("--mu", type=positive_int, help="parents kept per generation")
    ev.add_argument("--lambda", dest="lambda_", type=positive_int, help="offspring per generation")
    ev.add_argument("--generations", type=int)
    ev.add_argument("--hidden", type=_hidden, help="MLN hidden sizes, e.g. 32,64,128,256,512")
    ev.add_argument("--mutation", choices=MUTATIONS, help="log-normal (Eq. 3) or chaotic (EDL)")
    ev.add_argument("--initial-sigma", type=float)
    ev.add_argument("--tau", type=float, help="sigma's self-adaptation rate (0: fixed sigma)")
    ev.add_argument("--patience", type=int, help="stop after this many generations without improvement (0: never)")
    ev.add_argument("--checkpoint-every", type=int)
    tasks = ev.add_argument_group("meta-MSE fitness on synthetic tasks (evolve)")
    tasks.add_argument("--pool-size", type=positive_int)
    tasks.add_argument("--train-size", type=positive_int)
    tasks.add_argument("--val-size", type=positive_int)
    tasks.add_argument("--tasks-per-eval", type=positive_int)
    tasks.add_argument("--epochs", type=positive_int, help="inner-loop epochs")
    tasks.add_argument("--task-kind", choices=TASK_KINDS)
    tasks.add_argument("--evaluation", choices=EVALUATION_PATHS, help="fast (tabulated, default) or exact")
    tasks.add_argument("--grid-size", type=positive_int, help="points of the fast path's table")
    tasks.add_argument("--chunk-size", type=positive_int, help="individuals trained together per work item")
    tasks.add_argument("--dynamic-update", action="store_true", default=None,
                       help="meta-gradient step on every offspring (Algorithm 1, line 18)")
    tasks.add_argument("--update-step", type=float, help="length of the dynamic update's step (default 0.5)")
    tasks.add_argument("--update-truncation", type=positive_int, help="inner steps unrolled for it (default 10)")
    ranking = ev.add_argument_group("ranking fitness on synthetic predictions (pretrain-edl)")
    ranking.add_argument("--classes", type=positive_int, help="classes of the synthetic predictions")
    ranking.add_argument("--samples", type=positive_int, help="predictions drawn per generation")
    ranking.add_argument("--pairs", type=positive_int, help="prediction pairs compared per generation")
    ranking.add_argument("--regimes", type=_weights,
                         help="weights of confident-correct, boundary, confident-wrong, near-uniform predictions")
    ranking.add_argument("--error", choices=EDL_ERRORS, help="error measure the loss must rank like")
    run = ev.add_argument_group("run")
    add_backend_arguments(run)
    run.add_argument("--quiet", action="store_true", help="no progress lines")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="deap-mln", description="Evolve loss functions for classification with DEAP and PyTorch.")
    parser.add_argument("--version", action="version", version=f"deap_mln {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ev = sub.add_parser("evolve", help="evolve a Meta-Loss Network on synthetic meta-tasks")
    add_evolution_arguments(ev, default_preset="quick")
    ev.set_defaults(handler=cmd_evolve)

    edl = sub.add_parser("pretrain-edl", help="pretrain a loss without real data (EDL: ranking consistency, chaotic ES)")
    add_evolution_arguments(edl, default_preset="edl")
    edl.set_defaults(handler=cmd_evolve)

    bench = sub.add_parser("bench", help="compare evolution variants over seeds (ES vs hybrid, ablations)")
    bench.add_argument("--variants", nargs="+", default=["hybrid", "es"], metavar="VARIANT",
                       help="the first is the reference the others are tested against; any of: " + ", ".join(VARIANTS))
    bench.add_argument("--seeds", type=positive_int, default=10)
    bench.add_argument("--budget", choices=sorted(BUDGETS), default="quick")
    bench.add_argument("--threshold", type=float, help="fitness level for 'evaluations to reach' (default: the budget's)")
    bench.add_argument("--workers", type=positive_int, default=1, help="jobs run in parallel processes")
    bench.add_argument("--out", type=Path, required=True)
    bench.set_defaults(handler=cmd_bench)

    show = sub.add_parser("show", help="summarise a run directory")
    show.add_argument("run_dir", type=Path)
    show.set_defaults(handler=cmd_show)

    add_meta_test_command(sub)
    add_evolve_gp_command(sub)
    add_export_command(sub)
    add_plot_command(sub)
    return parser


def config_from_args(args: argparse.Namespace) -> EvolutionConfig:
    overrides = {field: getattr(args, flag) for flag, field in OVERRIDES.items() if getattr(args, flag) is not None}
    if args.population is not None:
        if args.population % 2 or args.mu is not None or args.lambda_ is not None:
            raise UsageError("--population must be even and not combined with --mu/--lambda")
        overrides["mu"] = overrides["lambda_"] = args.population // 2
    overrides["seed"] = args.seed
    if args.config is not None:
        base = EvolutionConfig.load(args.config).to_dict()
        return EvolutionConfig.from_dict({**base, **overrides})
    return preset(args.preset, **overrides)


def cmd_evolve(args: argparse.Namespace) -> int:
    from .run import evolve

    if args.resume:
        given = [f"--{flag.rstrip('_').replace('_', '-')}" for flag in OVERRIDES if getattr(args, flag) is not None]
        if given:
            raise UsageError(f"--resume continues the run with its own config.json; drop {' '.join(given)}")
        config = EvolutionConfig()  # replaced by the run's config.json
    else:
        config = config_from_args(args)
    result = evolve(config, args.out, resume=args.resume, backend=args.backend, workers=args.workers,
                    progress=None if args.quiet else print)
    print(f"best fitness {result.best_fitness:.5f} after {result.state.generation} generations "
          f"in {result.seconds:.1f} s; run directory: {result.out_dir}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_benchmark

    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        raise UsageError(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    run_benchmark(args.variants, args.seeds, args.budget, args.out, workers=args.workers,
                  threshold=args.threshold)
    print((args.out / "report.md").read_text())
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .mln import load_loss_record
    from .run import BEST_LOSS_FILE, CONFIG_FILE, LOGBOOK_FILE

    run = args.run_dir
    if not (run / CONFIG_FILE).is_file():
        raise UsageError(f"{run} is not a run directory (no {CONFIG_FILE})")
    config = EvolutionConfig.load(run / CONFIG_FILE)
    record = load_loss_record(run / BEST_LOSS_FILE)
    rows = (run / LOGBOOK_FILE).read_text().splitlines()
    print(f"run {run}: {config.algorithm}, seed {config.seed}, MLN hidden {list(config.hidden)}")
    print(f"best loss: fitness {record['metadata']['fitness']:.5f}, sigma {record['metadata']['sigma']:.3e}, "
          f"{record['metadata']['generations']} generations")
    print("logbook (first and last generations):")
    for line in rows[:3] + (["..."] if len(rows) > 5 else []) + rows[max(3, len(rows) - 2):]:
        print("  " + line)
    print("files: " + ", ".join(sorted(p.name for p in run.iterdir() if not p.name.endswith(".tmp"))))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.handler(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"deap-mln: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deap-mln: interrupted; the last checkpoint is kept: continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
