"""An evolution run and its directory: config -> toolbox -> loop -> files.

A run directory holds ``config.json``, ``checkpoint.npz``, ``logbook.csv``,
``best_loss.pt``, ``fitness.png`` and ``loss_shape.png`` (names in :mod:`deap_mln.io`).
:func:`evolve` starts a run, :func:`resume` continues one from its checkpoint with its own
config, :func:`summarise_run` reads one back.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deap_mln import __version__
from deap_mln.io import (
    BEST_LOSS_FILE,
    CONFIG_FILE,
    FITNESS_PLOT,
    LOGBOOK_FILE,
    LOSS_SHAPE_PLOT,
    MLN_CHECKPOINT_FILE,
    write_csv,
)
from deap_mln.mln.algorithms import EvolutionState, mu_plus_lambda, start_evolution
from deap_mln.mln.checkpoint import load_checkpoint, save_checkpoint
from deap_mln.mln.config import EvolutionConfig
from deap_mln.mln.network import load_loss_record, save_loss
from deap_mln.mln.plots import plot_fitness, plot_loss_shape
from deap_mln.mln.toolbox import build_toolbox
from deap_mln.parallel import evaluation_map, resolve_backend
from deap_mln.seeding import generator

Progress = Callable[[str], None] | None


@dataclass
class RunResult:
    out_dir: Path
    state: EvolutionState
    seconds: float

    @property
    def best_fitness(self) -> float:
        return self.state.hall_of_fame[0].fitness.values[0]


def mln_progress_line(state: EvolutionState, total: int) -> str:
    """One line per generation: best, mean, sigma, failures and throughput."""
    row = state.logbook[-1]
    rate = row["evals"] / row["seconds"] if row["seconds"] > 0 else float("nan")
    return (f"gen {row['gen']:>4}/{total}  best {row['best']:.5f}  mean {row['mean']:.5f}  "
            f"sigma {row['sigma_mean']:.2e}  failed {row['failed']}  {rate:6.1f} evals/s")


def evolve(config: EvolutionConfig, out_dir: str | Path, *, backend: str = "auto", workers: int = 1,
           progress: Progress = print) -> RunResult:
    """Run an evolution of ``config`` into the new run directory ``out_dir`` and write its files."""
    out = Path(out_dir)
    if (out / MLN_CHECKPOINT_FILE).exists():
        raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    config.validate()
    resolve_backend(backend, workers)  # refuse before anything is written
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / CONFIG_FILE)
    return _run(config, out, None, backend, workers, progress)


def resume(run_dir: str | Path, *, backend: str = "auto", workers: int = 1, progress: Progress = print) -> RunResult:
    """Continue the run in ``run_dir`` from its last checkpoint, with the run's own config;
    it ends as an uninterrupted run would have."""
    out = Path(run_dir)
    config = EvolutionConfig.load(out / CONFIG_FILE)
    if not (out / MLN_CHECKPOINT_FILE).is_file():
        raise FileNotFoundError(f"{out} has no {MLN_CHECKPOINT_FILE} to resume from")
    resolve_backend(backend, workers)
    return _run(config, out, out / MLN_CHECKPOINT_FILE, backend, workers, progress)


def _run(config: EvolutionConfig, out: Path, checkpoint_path: Path | None, backend: str, workers: int,
         progress: Progress) -> RunResult:
    """The loop between the files: from a fresh population or a checkpoint to the last generation."""
    tic = time.perf_counter()
    rng = generator(config.seed, "evolution")
    say = progress or (lambda line: None)

    def on_generation(state: EvolutionState) -> None:
        say(mln_progress_line(state, config.generations))
        write_csv(out / LOGBOOK_FILE, list(state.logbook))
        if config.checkpoint_every and state.generation % config.checkpoint_every == 0:
            save_checkpoint(out / MLN_CHECKPOINT_FILE, state, rng)

    with evaluation_map(backend, workers) as map_fn:
        toolbox = build_toolbox(config, rng, map_fn)
        if checkpoint_path is not None:
            state = load_checkpoint(checkpoint_path, rng)
            say(f"resuming {out} at generation {state.generation}")
        else:
            state = start_evolution(toolbox, config.mu)
            on_generation(state)
        cxpb = config.crossover_prob if config.algorithm == "hybrid" else 0.0
        mu_plus_lambda(state, toolbox, mu=config.mu, lambda_=config.lambda_, cxpb=cxpb, ngen=config.generations,
                       rng=rng, epsilon=config.convergence_epsilon, patience=config.patience,
                       on_generation=on_generation)
    save_checkpoint(out / MLN_CHECKPOINT_FILE, state, rng)
    write_csv(out / LOGBOOK_FILE, list(state.logbook))
    best = state.hall_of_fame[0]
    save_loss(out / BEST_LOSS_FILE, best, config.hidden, metadata=dict(
        method=f"adaptive-mln/{config.algorithm}", seed=config.seed, fitness=float(best.fitness.values[0]),
        sigma=float(best.strategy), generations=state.generation, version=__version__))
    plot_fitness(list(state.logbook), out / FITNESS_PLOT, title=f"{config.algorithm}, seed {config.seed}")
    plot_loss_shape(best, config.hidden, out / LOSS_SHAPE_PLOT)
    return RunResult(out, state, time.perf_counter() - tic)


@dataclass(frozen=True)
class RunSummary:
    """What ``deap-mln show`` prints about a finished (or interrupted) run."""

    run_dir: Path
    config: EvolutionConfig
    best_metadata: dict
    genome: np.ndarray
    logbook_lines: list[str]   # the CSV's header and rows
    files: list[str]

    def lines(self) -> list[str]:
        """The summary as text lines: settings, best loss, first and last generations, files."""
        meta, rows = self.best_metadata, self.logbook_lines
        shown = rows[:3] + (["..."] if len(rows) > 5 else []) + rows[max(3, len(rows) - 2):]
        return [f"run {self.run_dir}: {self.config.algorithm}, seed {self.config.seed}, "
                f"MLN hidden {list(self.config.hidden)}",
                f"best loss: fitness {meta['fitness']:.5f}, sigma {meta['sigma']:.3e}, "
                f"{meta['generations']} generations",
                "logbook (first and last generations):", *("  " + line for line in shown),
                "files: " + ", ".join(self.files)]


def summarise_run(run_dir: str | Path) -> RunSummary:
    """Read back the config, best loss and logbook of the MLN run in ``run_dir``."""
    run = Path(run_dir)
    if not (run / CONFIG_FILE).is_file():
        raise ValueError(f"{run} is not a run directory (no {CONFIG_FILE})")
    config = EvolutionConfig.load(run / CONFIG_FILE)
    record = load_loss_record(run / BEST_LOSS_FILE)
    logbook = run / LOGBOOK_FILE
    rows = logbook.read_text().splitlines() if logbook.is_file() else []
    files = sorted(p.name for p in run.iterdir() if not p.name.endswith(".tmp"))
    return RunSummary(run, config, dict(record["metadata"]), record["genome"].numpy(), rows, files)
