"""An evolution run and its directory: config -> toolbox -> loop -> files.

A run directory holds ``config.json``, ``checkpoint.npz``, ``logbook.csv``,
``best_loss.pt``, ``fitness.png`` and ``loss_shape.png``.
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


from . import __version__
from .algorithms import EvolutionState, mu_plus_lambda, start
from .checkpoint import load_checkpoint, save_checkpoint
from .config import EvolutionConfig
from .mln import save_loss
from .parallel import evaluation_map, resolve_backend
from .plots import plot_fitness, plot_loss_shape
from .seeding import generator
from .toolbox import build_toolbox

CONFIG_FILE, CHECKPOINT_FILE, LOGBOOK_FILE, BEST_LOSS_FILE = "config.json", "checkpoint.npz", "logbook.csv", "best_loss.pt"


@dataclass
class RunResult:
    out_dir: Path
    state: EvolutionState
    seconds: float

    @property
    def best_fitness(self) -> float:
        return self.state.hall_of_fame[0].fitness.values[0]


def write_logbook_csv(logbook, path: Path) -> None:
    """The logbook as CSV, written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(logbook[0].keys()))
    writer.writeheader()
    writer.writerows(logbook)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(buffer.getvalue())
    tmp.replace(path)


def progress_line(state: EvolutionState, total: int) -> str:
    row = state.logbook[-1]
    rate = row["evals"] / row["seconds"] if row["seconds"] > 0 else float("nan")
    return (f"gen {row['gen']:>4}/{total}  best {row['best']:.5f}  mean {row['mean']:.5f}  "
            f"sigma {row['sigma_mean']:.2e}  failed {row['failed']}  {rate:6.1f} evals/s")


def evolve(config: EvolutionConfig, out_dir: str | Path, *, resume: bool = False, backend: str = "auto",
           workers: int = 1, progress: Callable[[str], None] | None = print) -> RunResult:
    """Run (or resume) an evolution into ``out_dir`` and write its files."""
    out = Path(out_dir)
    if resume:
        config = EvolutionConfig.load(out / CONFIG_FILE)
    elif (out / CHECKPOINT_FILE).exists():
        raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    config.validate()
    resolve_backend(backend, workers)  # refuse before anything is written
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / CONFIG_FILE)
    tic = time.perf_counter()
    rng = generator(config.seed, "evolution")
    say = progress or (lambda line: None)

    def checkpoint(state: EvolutionState) -> None:
        say(progress_line(state, config.generations))
        write_logbook_csv(state.logbook, out / LOGBOOK_FILE)
        if config.checkpoint_every and state.generation % config.checkpoint_every == 0:
            save_checkpoint(out / CHECKPOINT_FILE, state, rng)

    with evaluation_map(backend, workers) as map_fn:
        toolbox = build_toolbox(config, rng, map_fn)
        if resume:
            state = load_checkpoint(out / CHECKPOINT_FILE, rng)
            say(f"resuming {out} at generation {state.generation}")
        else:
            state = start(toolbox, config.mu)
            checkpoint(state)
        cxpb = config.crossover_prob if config.algorithm == "hybrid" else 0.0
        mu_plus_lambda(state, toolbox, mu=config.mu, lambda_=config.lambda_, cxpb=cxpb, ngen=config.generations,
                       rng=rng, epsilon=config.convergence_epsilon, patience=config.patience,
                       on_generation=checkpoint)
    save_checkpoint(out / CHECKPOINT_FILE, state, rng)
    write_logbook_csv(state.logbook, out / LOGBOOK_FILE)
    best = state.hall_of_fame[0]
    save_loss(out / BEST_LOSS_FILE, best, config.hidden, metadata=dict(
        method=f"adaptive-mln/{config.algorithm}", seed=config.seed, fitness=float(best.fitness.values[0]),
        sigma=float(best.strategy), generations=state.generation, version=__version__))
    plot_fitness(list(state.logbook), out / "fitness.png", title=f"{config.algorithm}, seed {config.seed}")
    plot_loss_shape(best, config.hidden, out / "loss_shape.png")
    return RunResult(out, state, time.perf_counter() - tic)
