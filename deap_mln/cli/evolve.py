"""``deap-mln evolve`` and ``deap-mln pretrain-edl``: evolve an MLN loss (Adaptive-MLN, ES, EDL)."""
from __future__ import annotations

import argparse
from pathlib import Path

from deap_mln.cli.argtypes import UsageError, comma_separated, non_negative_int, positive_float, positive_int
from deap_mln.cli.backend_flags import add_backend_arguments, dispatch_from_args
from deap_mln.cli.data_flags import add_data_arguments
from deap_mln.cli.training_flags import TRAINING_FLAG_NAMES, add_training_arguments, training_overrides
from deap_mln.data.brief_training import MEASURES, OPTIMIZERS
from deap_mln.data.synthetic import MAX_CLASSES
from deap_mln.mln.config import (
    ALGORITHMS,
    EDL_ERRORS,
    EVALUATION_PATHS,
    INITIAL_POPULATIONS,
    MUTATIONS,
    PRESETS,
    TASK_KINDS,
    UPDATE_RULES,
    EvolutionConfig,
    preset,
)

# CLI flag (argparse dest) -> config field, for the overrides of a preset
OVERRIDES = {
    "mu": "mu", "lambda_": "lambda_", "generations": "generations", "pool_size": "pool_size",
    "train_size": "train_size", "val_size": "val_size", "tasks_per_eval": "tasks_per_eval",
    "epochs": "inner_epochs", "hidden": "hidden", "evaluation": "evaluation", "grid_size": "grid_size",
    "chunk_size": "chunk_size", "task_kind": "task_kind", "initial_sigma": "initial_sigma", "tau": "tau",
    "initial_population": "initial_population",
    "patience": "patience", "checkpoint_every": "checkpoint_every", "dynamic_update": "dynamic_update",
    "update_step": "update_step", "update_truncation": "update_truncation", "algorithm": "algorithm",
    "update_rule": "update_rule", "update_steps": "update_steps", "update_lr": "update_lr",
    "update_mutation_rate": "update_mutation_rate", "update_path": "update_path",
    "validation_tasks": "validation_tasks", "validation_top": "validation_top", "test_tasks": "test_tasks",
    "mutation": "mutation", "classes": "classes", "pair_grid_size": "pair_grid_size", "samples": "edl_samples",
    "pairs": "edl_pairs", "regimes": "edl_regimes", "error": "edl_error",
    "data": "tasks_source", "label": "data_label", "task_fitness": "task_fitness", "task_steps": "task_steps",
    "task_optimizer": "task_optimizer", "task_lr": "task_lr", "task_hidden": "task_hidden",
}


def add_evolution_arguments(ev: argparse.ArgumentParser, default_preset: str) -> None:
    """Flags shared by `evolve` and `pretrain-edl`: a preset plus overrides of config fields."""
    ev.add_argument("--out", required=True, type=Path, help="run directory to write (or resume)")
    ev.add_argument("--preset", choices=sorted(PRESETS), help=f"base settings (default: {default_preset})")
    ev.set_defaults(default_preset=default_preset)
    ev.add_argument("--config", type=Path, help="JSON config file (instead of --preset)")
    ev.add_argument("--algorithm", choices=ALGORITHMS, help="hybrid ES-GA or ES-only (default: the preset's)")
    ev.add_argument("--seed", type=int, help="run seed (default: the config file's, else 0)")
    ev.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    ev.add_argument("--population", type=positive_int, help="mu + lambda, split evenly (paper: 50)")
    ev.add_argument("--mu", type=positive_int, help="parents kept per generation")
    ev.add_argument("--lambda", dest="lambda_", type=positive_int, help="offspring per generation")
    ev.add_argument("--generations", type=int)
    ev.add_argument("--hidden", type=comma_separated(int, "32,64,128"), help="MLN hidden sizes, e.g. 32,64,128,256,512")
    ev.add_argument("--mutation", choices=MUTATIONS, help="log-normal (Eq. 3) or chaotic (EDL)")
    ev.add_argument("--initial-sigma", type=float)
    ev.add_argument("--initial-population", choices=INITIAL_POPULATIONS,
                    help="random networks, or known: distilled from CE, label smoothing, Baikal and NGL")
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
    tasks.add_argument("--classes", type=positive_int,
                       help=f"classes K of every task, 2 (binary, default) to {MAX_CLASSES}; with the ranking fitness "
                            "(pretrain-edl): classes of the synthetic predictions (edl_classes)")
    tasks.add_argument("--evaluation", choices=EVALUATION_PATHS, help="fast (tabulated, default) or exact")
    tasks.add_argument("--grid-size", type=positive_int, help="points of the fast path's table (binary tasks)")
    tasks.add_argument("--pair-grid-size", type=positive_int,
                       help="nodes per axis of the fast path's 2-D table (K-class tasks)")
    tasks.add_argument("--chunk-size", type=positive_int, help="individuals trained together per work item")
    tasks.add_argument("--validation-tasks", type=non_negative_int,
                       help="fixed tasks that choose the kept loss (default 4; 0: best single measurement)")
    tasks.add_argument("--validation-top", type=positive_int, help="survivors validated per generation (default 3)")
    tasks.add_argument("--test-tasks", type=non_negative_int, help="fixed tasks that score the kept loss once (default 8)")
    data = ev.add_argument_group("meta-tasks from a data set (evolve --data)")
    add_data_arguments(data, "--tasks", default_help=", or synthetic (the default: synthetic meta-tasks); a data "
                       "source's meta-tasks are resampled train / validation splits of its training part")
    data.add_argument("--task-fitness", choices=MEASURES,
                      help="validation accuracy (default) or cross-entropy (exp(-CE)) of the briefly trained classifiers")
    data.add_argument("--task-steps", type=positive_int, help="training steps per classifier (default 200)")
    data.add_argument("--task-optimizer", choices=OPTIMIZERS, help="adam (default) or sgd")
    data.add_argument("--task-lr", type=positive_float, help="the optimiser's learning rate (default 1e-3)")
    data.add_argument("--task-hidden", type=non_negative_int, help="classifier hidden units (default 32; 0: linear)")
    update = ev.add_argument_group("dynamic update (Algorithm 1, lines 12-21)")
    update.add_argument("--dynamic-update", action=argparse.BooleanOptionalAction, default=None,
                        help="meta-gradient refinement of every offspring (default: on, off for --algorithm es)")
    update.add_argument("--update-rule", choices=UPDATE_RULES,
                        help="algorithm-1: T_inner steps, each then mutated at rate lambda_mut; normalised: one step")
    update.add_argument("--update-steps", type=positive_int, help="T_inner (default 2)")
    update.add_argument("--update-lr", type=positive_float, help="alpha (default 20)")
    update.add_argument("--update-mutation-rate", type=float, help="lambda_mut (default 0.5)")
    update.add_argument("--update-step", type=positive_float, help="length of the normalised rule's step (default 0.5)")
    update.add_argument("--update-truncation", type=positive_int, help="inner steps unrolled (default 10)")
    update.add_argument("--update-path", choices=EVALUATION_PATHS, help="fast (through the table, default) or exact")
    ranking = ev.add_argument_group("ranking fitness on synthetic predictions (pretrain-edl)")
    ranking.add_argument("--samples", type=positive_int, help="predictions drawn per generation")
    ranking.add_argument("--pairs", type=positive_int, help="prediction pairs compared per generation")
    ranking.add_argument("--regimes", type=comma_separated(float, "0.4,0.3,0.15,0.15"),
                         help="weights of confident-correct, boundary, confident-wrong, near-uniform predictions")
    ranking.add_argument("--error", choices=EDL_ERRORS, help="error measure the loss must rank like")
    add_training_arguments(ev)
    run = ev.add_argument_group("run")
    add_backend_arguments(run)
    run.add_argument("--quiet", action="store_true", help="no progress lines")


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("evolve", help="evolve a Meta-Loss Network on synthetic meta-tasks")
    add_evolution_arguments(ev, default_preset="quick")
    ev.set_defaults(handler=run)
    edl = sub.add_parser("pretrain-edl", help="pretrain a loss without real data (EDL: ranking consistency, chaotic ES)")
    add_evolution_arguments(edl, default_preset="edl")
    edl.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> EvolutionConfig:
    """The preset (or --config file) with the flags' overrides, validated."""
    overrides = {field: getattr(args, flag) for flag, field in OVERRIDES.items() if getattr(args, flag) is not None}
    overrides |= training_overrides(args)
    if args.population is not None:
        if args.population % 2 or args.mu is not None or args.lambda_ is not None:
            raise UsageError("--population must be even and not combined with --mu/--lambda")
        overrides["mu"] = overrides["lambda_"] = args.population // 2
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.config is not None:
        if args.preset is not None:
            raise UsageError("--config and --preset are alternatives; give one")
        base = EvolutionConfig.load(args.config)
        return base.replace(**route_classes(overrides, base.fitness))
    name = args.preset or args.default_preset
    return preset(name, **route_classes(overrides, preset(name).fitness))


def route_classes(overrides: dict, fitness: str) -> dict:
    """``--classes`` sets the tasks' classes, or with the ranking fitness (pretrain-edl) the
    classes of EDL's synthetic predictions, as it always has there."""
    if fitness == "ranking" and "classes" in overrides:
        overrides = dict(overrides)
        overrides["edl_classes"] = overrides.pop("classes")
    return overrides


def run(args: argparse.Namespace) -> int:
    from deap_mln.mln.run import evolve, resume, summary_score_lines

    say = None if args.quiet else print
    if args.resume:
        flags = [*OVERRIDES, *TRAINING_FLAG_NAMES, "population", "seed", "preset", "config"]
        given = [f"--{flag.rstrip('_').replace('_', '-')}" for flag in flags if getattr(args, flag) is not None]
        if given:
            raise UsageError(f"--resume continues the run with its own config.json; drop {' '.join(given)}")
        result = resume(args.out, backend=dispatch_from_args(args), progress=say)
    else:
        result = evolve(config_from_args(args), args.out, backend=dispatch_from_args(args), progress=say)
    print(f"kept loss: fitness {result.best_fitness:.5f} after {result.state.generation} generations "
          f"in {result.seconds:.1f} s; run directory: {result.out_dir}")
    for line in summary_score_lines(result.scores):
        print(line)
    return 0
