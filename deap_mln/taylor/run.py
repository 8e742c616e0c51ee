"""A TaylorGLO run and its directory.

A run directory holds ``config.json``, ``logbook.csv`` (one row per generation: gen, evals,
total_evals, rejected, best, mean, best_so_far, sigma, seconds), ``checkpoint.json`` (the
CMA-ES state, best vector, logbook and numpy RNG state, :mod:`deap_mln.taylor.checkpoint`),
both rewritten after every generation, and at the end ``best_loss.pt`` (a weights-only record
of the best parameter vector for :func:`deap_mln.saved_losses.load_saved_loss`, format
``deap_mln.taylor_loss/1``) and ``fitness.png``. A run is a function of its config
(docs/taylor.md); an interrupted one continues from its checkpoint (:func:`resume_taylor`)
and ends as an uninterrupted run would.
"""
from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deap_mln.data.fitness_splits import fitness_data_of
from deap_mln.io import (
    BEST_LOSS_FILE,
    CONFIG_FILE,
    FITNESS_PLOT,
    LOGBOOK_FILE,
    TAYLOR_CHECKPOINT_FILE,
    read_json,
    write_csv,
    write_text,
)
from deap_mln.parallel import DispatchOptions, evaluation_map, resolve_backend
from deap_mln.plotting import plot_search_curves
from deap_mln.saved_losses import write_record
from deap_mln.taylor.checkpoint import TaylorState, checkpoint
from deap_mln.taylor.config import TaylorConfig
from deap_mln.taylor.fitness import evaluate_generation_by_halving, evaluate_parameters
from deap_mln.taylor.loss import loss_record
from deap_mln.taylor.search import TaylorSearch, run_taylor_search
from deap_mln.training.splits import class_names, open_split_run
from deap_mln.version import __version__

Progress = Callable[[str], None] | None


@dataclass
class TaylorRunResult:
    out_dir: Path
    search: TaylorSearch
    seconds: float

    @property
    def best(self) -> list[float]:
        return self.search.best

    @property
    def best_fitness(self) -> float:
        return self.search.best_fitness

    @property
    def loss_file(self) -> Path:
        return self.out_dir / BEST_LOSS_FILE


def taylor_progress_line(row: dict) -> str:
    """One line per generation: evaluations, rejections, fitness and step size."""
    return (f"gen {row['gen']:>3}  evals {row['total_evals']:>4} (+{row['evals']}, rejected {row['rejected']})  "
            f"best {row['best']:.4f}  mean {row['mean']:.4f}  best so far {row['best_so_far']:.4f}  "
            f"sigma {row['sigma']:.3g}  {row['seconds']:.1f} s")


def plot_taylor_fitness(logbook: list[dict], path: Path, title: str) -> None:
    """Best, best-so-far and mean validation accuracy of each CMA-ES generation."""
    plot_search_curves(path, [r["total_evals"] for r in logbook],
                       [("generation best", [r["best"] for r in logbook], "C2"),
                        ("best so far", [r["best_so_far"] for r in logbook], "C0"),  # drawn on top
                        ("generation mean", [r["mean"] for r in logbook], "C1")],
                       "evaluations (rejected vectors included)", title)


def read_taylor_checkpoint(out: Path) -> tuple[TaylorConfig, dict | None]:
    """The config and last checkpoint of the TaylorGLO run in ``out`` (None: the run stopped before
    its first generation ended); clear errors if the run is missing or a file is corrupt."""
    if not (out / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{out} holds no TaylorGLO run to resume (no {CONFIG_FILE})")
    config = TaylorConfig.load(out / CONFIG_FILE)
    if not (out / TAYLOR_CHECKPOINT_FILE).is_file():
        return config, None
    return config, read_json(out / TAYLOR_CHECKPOINT_FILE, "TaylorGLO checkpoint")


def evolve_taylor(config: TaylorConfig, out_dir: str | Path, *, backend: str | DispatchOptions = "auto",
                  workers: int = 1, progress: Progress = print) -> TaylorRunResult:
    """Run a TaylorGLO search of ``config`` into the new run directory ``out_dir`` and write its files."""
    out = open_split_run(config, out_dir, backend, workers, "choose another --out or continue it with --resume")
    return _search(config, out, None, backend, workers, progress)


def resume_taylor(run_dir: str | Path, *, backend: str | DispatchOptions = "auto", workers: int = 1,
                  progress: Progress = print) -> TaylorRunResult:
    """Continue the TaylorGLO run in ``run_dir`` from its checkpoint, with the run's own config;
    it ends as an uninterrupted run would have. A finished run gives its result again without
    evaluating; a run stopped before its first checkpoint starts from generation 0."""
    out = Path(run_dir)
    config, saved = read_taylor_checkpoint(out)
    resolve_backend(backend, workers)
    fitness_data_of(config)
    if saved is None and progress is not None:
        progress(f"{out} has no {TAYLOR_CHECKPOINT_FILE} yet: starting its run from generation 0")
    return _search(config, out, saved, backend, workers, progress)


def _search(config: TaylorConfig, out: Path, saved: dict | None, backend: str | DispatchOptions, workers: int,
            progress: Progress) -> TaylorRunResult:
    """The search between the files: from the initial strategy or a checkpoint to the end."""
    say = progress or (lambda line: None)
    if saved is not None:
        say(f"resuming {out} after generation {saved.get('generation')}")
    tic = time.perf_counter()

    def on_generation(state: TaylorState) -> None:
        say(taylor_progress_line(state.logbook[-1]))
        write_csv(out / LOGBOOK_FILE, state.logbook)
        write_text(out / TAYLOR_CHECKPOINT_FILE, json.dumps(checkpoint(state)))

    evaluate = functools.partial(evaluate_parameters, settings=config.training())
    by_halving = (functools.partial(evaluate_generation_by_halving, settings=config.training())
                  if config.halving_rungs else None)
    with evaluation_map(backend, workers) as map_fn:
        search = run_taylor_search(config, evaluate, map_fn, on_generation, resume=saved, evaluate_generation=by_halving)
    seconds = time.perf_counter() - tic
    write_csv(out / LOGBOOK_FILE, search.logbook)
    write_record(out / BEST_LOSS_FILE, loss_record(search.best, metadata=dict(
        method="taylorglo/cma-es", seed=config.seed, dataset=config.dataset, fitness=search.best_fitness,
        generations=config.generations, evaluations=search.evaluations, version=__version__, class_names=class_names(config))))
    plot_taylor_fitness(search.logbook, out / FITNESS_PLOT, f"TaylorGLO (CMA-ES) on {config.dataset}, seed {config.seed}")
    return TaylorRunResult(out, search, seconds)
