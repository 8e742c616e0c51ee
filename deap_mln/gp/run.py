"""A GP run and its directory.

A run directory holds ``config.json``, ``logbook.csv`` (one row per generation: gen, evals,
total_evals, cached, rejected, best, mean, size, best_size, seconds), ``evaluations.csv``
(every training run: number, fitness, seconds, expression), ``best_formula.txt``,
``best_loss.pt`` (a weights-only record for :func:`deap_mln.saved_losses.load_saved_loss`),
``fitness.png`` and ``checkpoint.json``, rewritten after every generation: an interrupted
run continues from it (:func:`resume_gp`) and ends as an uninterrupted one would.
"""
from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deap_mln.gp.checkpoint import GPState, checkpoint
from deap_mln.gp.config import GPConfig
from deap_mln.gp.fitness import evaluate_expression, fitness_data_of
from deap_mln.gp.search import best_of, run_search
from deap_mln.gp.tree import LossTree, infix_formula, loss_record
from deap_mln.io import (
    BEST_LOSS_FILE,
    CONFIG_FILE,
    EVALUATIONS_FILE,
    FITNESS_PLOT,
    FORMULA_FILE,
    GP_CHECKPOINT_FILE,
    LOGBOOK_FILE,
    read_json,
    write_csv,
    write_text,
)
from deap_mln.parallel import DispatchOptions, evaluation_map, resolve_backend
from deap_mln.plotting import plot_search_curves
from deap_mln.saved_losses import write_record
from deap_mln.training.splits import class_names, open_split_run
from deap_mln.version import __version__

Progress = Callable[[str], None] | None


@dataclass
class GPRunResult:
    out_dir: Path
    state: GPState
    best: LossTree
    seconds: float

    @property
    def best_fitness(self) -> float:
        return self.best.fitness.values[0]

    @property
    def formula(self) -> str:
        """The best tree's per-class term f(y, p), readable."""
        return infix_formula(self.best)

    @property
    def loss_file(self) -> Path:
        return self.out_dir / BEST_LOSS_FILE


def plot_gp_fitness(logbook: list[dict], path: Path, title: str) -> None:
    """Best and mean validation accuracy of the population against real evaluations."""
    plot_search_curves(path, [r["total_evals"] for r in logbook],
                       [("best", [r["best"] for r in logbook], "C0"),
                        ("population mean", [r["mean"] for r in logbook], "C1")],
                       "real evaluations (classifiers trained)", title)


def formula_text(best: LossTree, config: GPConfig) -> str:
    return (f"loss(logits, target) = mean over the batch of sum over classes k of f(y_k, p_k),\n"
            f"p = softmax(logits), y = onehot(target), with\n\n"
            f"f(y, p) = {infix_formula(best)}\n\n"
            f"prefix expression: {best}\n"
            f"log, sqrt, / and exp are protected: log|x| and sqrt|x| with |x| >= 1e-12, "
            f"division by |b| >= 1e-12, exp of min(x, 30).\n"
            f"validation accuracy {best.fitness.values[0]:.4f} ({config.dataset}, {config.algorithm} GP, seed {config.seed})\n")


def gp_progress_line(state: GPState) -> str:
    """One line per generation: evaluations, cache hits, rejections, fitness and size."""
    r = state.logbook[-1]
    return (f"gen {r['gen']:>3}  evals {r['total_evals']:>4} (+{r['evals']}, cached {r['cached']}, "
            f"rejected {r['rejected']})  best {r['best']:.4f}  mean {r['mean']:.4f}  size {r['size']:.1f}  "
            f"{r['seconds']:.1f} s")


def read_gp_checkpoint(out: Path) -> tuple[GPConfig, dict]:
    """The config and last checkpoint of the GP run in ``out``; clear errors if either is missing or corrupt."""
    if not (out / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{out} holds no GP run to resume (no {CONFIG_FILE})")
    if not (out / GP_CHECKPOINT_FILE).is_file():
        raise FileNotFoundError(f"{out} has no {GP_CHECKPOINT_FILE} to resume from")
    return GPConfig.load(out / CONFIG_FILE), read_json(out / GP_CHECKPOINT_FILE, "GP checkpoint")


def evolve_gp(config: GPConfig, out_dir: str | Path, *, backend: str | DispatchOptions = "auto", workers: int = 1,
              progress: Progress = print) -> GPRunResult:
    """Run a GP search of ``config`` into the new run directory ``out_dir`` and write its files."""
    out = open_split_run(config, out_dir, backend, workers, "choose another --out or continue it with --resume")
    return _search(config, out, None, backend, workers, progress)


def resume_gp(run_dir: str | Path, *, backend: str | DispatchOptions = "auto", workers: int = 1,
              progress: Progress = print) -> GPRunResult:
    """Continue the GP run in ``run_dir`` from its checkpoint, with the run's own config; it
    ends as an uninterrupted run would have."""
    out = Path(run_dir)
    config, saved = read_gp_checkpoint(out)
    resolve_backend(backend, workers)
    fitness_data_of(config)
    return _search(config, out, saved, backend, workers, progress)


def _search(config: GPConfig, out: Path, saved: dict | None, backend: str | DispatchOptions, workers: int,
            progress: Progress) -> GPRunResult:
    """The search between the files: from the initial population or a checkpoint to the end."""
    say = progress or (lambda line: None)
    if saved is not None:
        say(f"resuming {out} after generation {saved.get('generation')}")
    tic = time.perf_counter()

    def on_generation(state: GPState) -> None:
        say(gp_progress_line(state))
        write_csv(out / LOGBOOK_FILE, list(state.logbook))
        write_text(out / GP_CHECKPOINT_FILE, json.dumps(checkpoint(state)))

    evaluate = functools.partial(evaluate_expression, settings=config.training())
    with evaluation_map(backend, workers) as map_fn:
        state = run_search(config, evaluate, map_fn, on_generation, resume=saved)
    best = best_of(state.population, 1)[0]
    seconds = time.perf_counter() - tic
    expressions = {n: key for n, key in enumerate(state.cache.values, start=1)}
    write_csv(out / EVALUATIONS_FILE, [dict(evaluation=n, fitness=fit, seconds=round(s, 3), expression=expressions[n])
                                       for n, fit, s in state.cache.trace])
    write_text(out / FORMULA_FILE, formula_text(best, config))
    write_record(out / BEST_LOSS_FILE, loss_record(best, metadata=dict(
        method=f"gp/{config.algorithm}", seed=config.seed, dataset=config.dataset,
        fitness=float(best.fitness.values[0]), generations=state.generation, evaluations=state.cache.evaluations,
        version=__version__, class_names=class_names(config))))
    plot_gp_fitness(list(state.logbook), out / FITNESS_PLOT, f"{config.algorithm} GP on {config.dataset}, seed {config.seed}")
    return GPRunResult(out, state, best, seconds)
