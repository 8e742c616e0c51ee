"""A GP run and its directory, and the ``deap-mln evolve-gp`` command.

A run directory holds ``config.json``, ``logbook.csv`` (one row per generation: gen, evals,
total_evals, cached, rejected, best, mean, size, best_size, seconds), ``evaluations.csv``
(every training run: number, fitness, seconds, expression), ``best_formula.txt``,
``best_loss.pt`` (a weights-only record for :func:`deap_mln.saved_losses.load_saved_loss`),
``fitness.png`` and ``checkpoint.json``, rewritten after every generation: an interrupted
run continues from it with ``--resume`` and ends as an uninterrupted one would.
"""
from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import __version__
from .gp import FORMAT, LossTree, infix_formula, loss_record
from .gp_fitness import GP_DATASETS, evaluate_expression, load_fitness_data
from .gp_search import GP_ALGORITHMS, GP_PRESETS, GPConfig, GPState, best_of, checkpoint, gp_preset, run_search
from .parallel import add_backend_arguments, evaluation_map
from .saved_losses import write_record
from .argtypes import non_negative_int, positive_int

CONFIG_FILE, LOGBOOK_FILE, EVALUATIONS_FILE = "config.json", "logbook.csv", "evaluations.csv"
FORMULA_FILE, BEST_LOSS_FILE, FITNESS_PLOT = "best_formula.txt", "best_loss.pt", "fitness.png"
CHECKPOINT_FILE = "checkpoint.json"


@dataclass
class GPRunResult:
    out_dir: Path
    state: GPState
    best: LossTree
    seconds: float

    @property
    def best_fitness(self) -> float:
        return self.best.fitness.values[0]


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_rows(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0].keys()))
    writer.writeheader()
    writer.writerows(rows)
    _write_atomically(path, buffer.getvalue())


def plot_gp_fitness(logbook: list[dict], path: Path, title: str) -> None:
    """Best and mean validation accuracy of the population against real evaluations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = [r["total_evals"] for r in logbook]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(evals, [r["best"] for r in logbook], label="best", color="C0", marker=".")
    ax.plot(evals, [r["mean"] for r in logbook], label="population mean", color="C1", marker=".")
    ax.set_xlabel("real evaluations (classifiers trained)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def formula_text(best: LossTree, config: GPConfig) -> str:
    return (f"loss(logits, target) = mean over the batch of sum over classes k of f(y_k, p_k),\n"
            f"p = softmax(logits), y = onehot(target), with\n\n"
            f"f(y, p) = {infix_formula(best)}\n\n"
            f"prefix expression: {best}\n"
            f"log, sqrt, / and exp are protected: log|x| and sqrt|x| with |x| >= 1e-12, "
            f"division by |b| >= 1e-12, exp of min(x, 30).\n"
            f"validation accuracy {best.fitness.values[0]:.4f} ({config.dataset}, {config.algorithm} GP, seed {config.seed})\n")


def progress_line(state: GPState) -> str:
    r = state.logbook[-1]
    return (f"gen {r['gen']:>3}  evals {r['total_evals']:>4} (+{r['evals']}, cached {r['cached']}, "
            f"rejected {r['rejected']})  best {r['best']:.4f}  mean {r['mean']:.4f}  size {r['size']:.1f}  "
            f"{r['seconds']:.1f} s")


def read_gp_checkpoint(out: Path) -> tuple[GPConfig, dict]:
    """The config and last checkpoint of the GP run in ``out``; clear errors if either is missing or corrupt."""
    if not (out / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{out} holds no GP run to resume (no {CONFIG_FILE})")
    path = out / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{out} has no {CHECKPOINT_FILE} to resume from")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    return GPConfig.load(out / CONFIG_FILE), data


def evolve_gp(config: GPConfig, out_dir: str | Path, progress: Callable[[str], None] | None = print,
              map_fn: Callable = map, resume: bool = False) -> GPRunResult:
    """Run a GP search of ``config`` into ``out_dir`` and write its files. With ``resume``,
    continue the run already in ``out_dir`` from its checkpoint, with that run's own config
    (``config`` is then ignored)."""
    out = Path(out_dir)
    saved = None
    if resume:
        config, saved = read_gp_checkpoint(out)
    else:
        config.validate()
        if (out / CONFIG_FILE).exists():
            raise FileExistsError(f"{out} already holds a run; choose another --out or continue it with --resume")
    load_fitness_data(config.dataset, config.data_seed)  # missing data fails before anything is written
    if not resume:
        out.mkdir(parents=True, exist_ok=True)
        config.save(out / CONFIG_FILE)
    say = progress or (lambda line: None)
    if saved is not None:
        say(f"resuming {out} after generation {saved.get('generation')}")
    tic = time.perf_counter()

    def on_generation(state: GPState) -> None:
        say(progress_line(state))
        write_rows(out / LOGBOOK_FILE, list(state.logbook))
        _write_atomically(out / CHECKPOINT_FILE, json.dumps(checkpoint(state)))

    evaluate = functools.partial(evaluate_expression, settings=config.training())
    state = run_search(config, evaluate, map_fn, on_generation, resume=saved)
    best = best_of(state.population, 1)[0]
    seconds = time.perf_counter() - tic
    expressions = {n: key for n, key in enumerate(state.cache.values, start=1)}
    write_rows(out / EVALUATIONS_FILE, [dict(evaluation=n, fitness=fit, seconds=round(s, 3), expression=expressions[n])
                                        for n, fit, s in state.cache.trace])
    _write_atomically(out / FORMULA_FILE, formula_text(best, config))
    write_record(out / BEST_LOSS_FILE, loss_record(best, metadata=dict(
        method=f"gp/{config.algorithm}", seed=config.seed, dataset=config.dataset,
        fitness=float(best.fitness.values[0]), generations=state.generation, evaluations=state.cache.evaluations,
        version=__version__)))
    plot_gp_fitness(list(state.logbook), out / FITNESS_PLOT, f"{config.algorithm} GP on {config.dataset}, seed {config.seed}")
    return GPRunResult(out, state, best, seconds)


# --------------------------------------------------------------------------- command line

GP_OVERRIDES = ("population", "generations", "max_evaluations", "tournament_size", "top_n", "steps", "data_seed")


def add_evolve_gp_command(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``deap-mln evolve-gp`` on the CLI's subparsers."""
    p = sub.add_parser("evolve-gp", help="evolve a symbolic loss (expression tree) with genetic programming",
                       description="Efficiency-based or standard GP over loss expressions in (y, p); fitness is "
                                   "the validation accuracy of a small classifier trained briefly with the loss.")
    p.add_argument("--out", required=True, type=Path, help="run directory to write (or resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--preset", choices=sorted(GP_PRESETS), help="base settings (default: quick)")
    p.add_argument("--algorithm", choices=GP_ALGORITHMS, help="default: efficiency")
    p.add_argument("--dataset", choices=GP_DATASETS, help="fitness data (default: digits)")
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
    add_backend_arguments(p)
    p.set_defaults(handler=cmd_evolve_gp)
    return p


def cmd_evolve_gp(args: argparse.Namespace) -> int:
    settings = ("preset", "algorithm", "dataset", "seed", *GP_OVERRIDES)
    if args.resume:
        given = [f"--{name.replace('_', '-')}" for name in settings if getattr(args, name) is not None]
        given += ["--no-known-losses"] if args.no_known_losses else []
        if given:
            raise ValueError(f"--resume continues the run with its own config.json; drop {' '.join(given)}")
        config = GPConfig()  # replaced by the run's config.json
    else:
        overrides = {name: getattr(args, name) for name in GP_OVERRIDES if getattr(args, name) is not None}
        config = gp_preset(args.preset or "quick", algorithm=args.algorithm or "efficiency",
                           dataset=args.dataset or "digits", seed=args.seed or 0,
                           seed_known_losses=not args.no_known_losses, **overrides)
    with evaluation_map(args.backend, args.workers) as map_fn:
        result = evolve_gp(config, args.out, progress=None if args.quiet else print, map_fn=map_fn,
                           resume=args.resume)
    print(f"best formula: f(y, p) = {infix_formula(result.best)}   [loss = mean_n sum_k f]")
    print(f"validation accuracy {result.best_fitness:.4f} after {result.state.generation} generations, "
          f"{result.state.cache.evaluations} evaluations, {result.seconds:.1f} s; run directory: {result.out_dir}")
    print(f"saved loss ({FORMAT}): {result.out_dir / BEST_LOSS_FILE}")
    return 0
