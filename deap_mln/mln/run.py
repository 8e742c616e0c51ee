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
from deap import base

from deap_mln.data.user_data import load_task_data
from deap_mln.io import (
    BEST_LOSS_FILE,
    CONFIG_FILE,
    FITNESS_PLOT,
    LOGBOOK_FILE,
    LOSS_SHAPE_PLOT,
    MLN_CHECKPOINT_FILE,
    SCORES_FILE,
    read_json,
    write_csv,
    write_json,
)
from deap_mln.mln.algorithms import EvolutionState, genome_key, mu_plus_lambda, start_evolution
from deap_mln.mln.checkpoint import load_checkpoint, save_checkpoint
from deap_mln.mln.config import EvolutionConfig
from deap_mln.mln.network import load_loss_record, save_loss
from deap_mln.mln.plots import plot_fitness, plot_loss_shape
from deap_mln.mln.toolbox import build_toolbox
from deap_mln.parallel import DispatchOptions, evaluation_map, resolve_backend
from deap_mln.seeding import generator
from deap_mln.version import __version__

Progress = Callable[[str], None] | None


@dataclass
class RunResult:
    out_dir: Path
    state: EvolutionState
    seconds: float
    scores: dict  # what scores.json holds: validation and test scores of the kept loss

    @property
    def best_fitness(self) -> float:
        """The evolution fitness of the kept loss (see :func:`kept_individual`)."""
        return kept_individual(self.state).fitness.values[0]


def mln_progress_line(state: EvolutionState, total: int) -> str:
    """One line per generation: best, mean, sigma, failures and throughput."""
    row = state.logbook[-1]
    rate = row["evals"] / row["seconds"] if row["seconds"] > 0 else float("nan")
    validation = f"  validation {row['validation']:.5f}" if "validation" in row else ""
    return (f"gen {row['gen']:>4}/{total}  best {row['best']:.5f}  mean {row['mean']:.5f}{validation}  "
            f"sigma {row['sigma_mean']:.2e}  failed {row['failed']}  {rate:6.1f} evals/s")


def evolve(config: EvolutionConfig, out_dir: str | Path, *, backend: str | DispatchOptions = "auto", workers: int = 1,
           progress: Progress = print) -> RunResult:
    """Run an evolution of ``config`` into the new run directory ``out_dir`` and write its files."""
    out = Path(out_dir)
    if (out / MLN_CHECKPOINT_FILE).exists():
        raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    config.validate()
    resolve_backend(backend, workers)  # refuse before anything is written
    task_classes(config)               # so is a data set that cannot be read or used
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / CONFIG_FILE)
    return _run(config, out, None, backend, workers, progress)


def resume(run_dir: str | Path, *, backend: str | DispatchOptions = "auto", workers: int = 1,
           progress: Progress = print) -> RunResult:
    """Continue the run in ``run_dir`` from its last checkpoint, with the run's own config;
    it ends as an uninterrupted run would have."""
    out = Path(run_dir)
    config = EvolutionConfig.load(out / CONFIG_FILE)
    if not (out / MLN_CHECKPOINT_FILE).is_file():
        raise FileNotFoundError(f"{out} has no {MLN_CHECKPOINT_FILE} to resume from")
    resolve_backend(backend, workers)
    return _run(config, out, out / MLN_CHECKPOINT_FILE, backend, workers, progress)


def _run(config: EvolutionConfig, out: Path, checkpoint_path: Path | None, backend: str | DispatchOptions, workers: int,
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
            state = start_evolution(toolbox, config.mu, config.validate_top)
            on_generation(state)
        cxpb = config.crossover_prob if config.algorithm == "hybrid" else 0.0
        mu_plus_lambda(state, toolbox, mu=config.mu, lambda_=config.lambda_, cxpb=cxpb, ngen=config.generations,
                       rng=rng, epsilon=config.convergence_epsilon, patience=config.patience,
                       validate_top=config.validate_top, on_generation=on_generation)
        scores = final_scores(state, toolbox, config)
    save_checkpoint(out / MLN_CHECKPOINT_FILE, state, rng)
    write_csv(out / LOGBOOK_FILE, list(state.logbook))
    write_json(out / SCORES_FILE, scores)
    kept = kept_individual(state)
    save_loss(out / BEST_LOSS_FILE, kept, config.hidden, metadata=dict(
        method=f"adaptive-mln/{config.algorithm}", seed=config.seed, classes=task_classes(config),
        tasks=config.tasks_source, class_names=scores["data"].get("class_names"),
        fitness=float(kept.fitness.values[0]),
        sigma=float(kept.strategy), generations=state.generation, version=__version__,
        selected_by=scores["kept"]["selected_by"], validation=scores["kept"]["validation"],
        test=scores["kept"]["test"]))
    plot_fitness(list(state.logbook), out / FITNESS_PLOT, title=f"{config.algorithm}, seed {config.seed}")
    plot_loss_shape(kept, config.hidden, out / LOSS_SHAPE_PLOT)
    return RunResult(out, state, time.perf_counter() - tic, scores)


def task_classes(config: EvolutionConfig) -> int:
    """K of the run's meta-tasks: ``config.classes`` for synthetic tasks, else the data's (which
    loads it: a bad file raises its one-line ValueError here)."""
    if config.tasks_source == "synthetic":
        return config.classes
    return load_task_data(config.tasks_source, config.data_label).classes


def kept_individual(state: EvolutionState):
    """The loss a run keeps: the best validated one, or without validation tasks the best
    single measurement (the hall of fame's)."""
    return state.best_validated if state.best_validated is not None else state.hall_of_fame[0]


def final_scores(state: EvolutionState, toolbox: base.Toolbox, config: EvolutionConfig) -> dict:
    """Scores of the kept loss (and, for comparison, of the best single measurement) on the
    run's test tasks, measured once here and never used for a choice."""
    kept, measured = kept_individual(state), state.hall_of_fame[0]
    same = genome_key(kept) == genome_key(measured)
    test = toolbox.test([kept] if same else [kept, measured]) if config.test_tasks else [None, None]
    return dict(
        kept=dict(selected_by="validation" if state.best_validated is not None else "best single measurement",
                  fitness=float(kept.fitness.values[0]),
                  validation=state.best_validation if state.best_validated is not None else None,
                  test=test[0]),
        best_single_measurement=dict(fitness=float(measured.fitness.values[0]), test=test[0] if same else test[1],
                                     same_genome=same),
        validation_tasks=config.validation_tasks, test_tasks=config.test_tasks, data=score_data(config))


def score_data(config: EvolutionConfig) -> dict:
    """Which data each of the run's scores used (scores.json's ``data``)."""
    if config.tasks_source == "synthetic":
        return dict(source="synthetic", evolution="synthetic tasks of each generation's own seeds",
                    validation="fixed synthetic validation tasks", test="fixed synthetic test tasks, never used for a choice")
    data = load_task_data(config.tasks_source, config.data_label)
    return dict(source=config.tasks_source, description=data.source,
                class_names=list(data.class_names) if data.class_names else None,
                evolution=f"resampled train / validation splits of the search part ({len(data.y_train)} points)",
                validation=f"fixed resampled splits of the search part ({len(data.y_train)} points)",
                test=f"trained on the search part, scored on the held-out part of the training part "
                     f"({len(data.y_holdout)} points); the source's test part is never read by a search")


@dataclass(frozen=True)
class RunSummary:
    """What ``deap-mln show`` prints about a finished (or interrupted) run."""

    run_dir: Path
    config: EvolutionConfig
    best_metadata: dict
    genome: np.ndarray
    logbook_lines: list[str]   # the CSV's header and rows
    files: list[str]
    scores: dict | None        # scores.json: validation and test scores (None for runs made before it existed)

    def score_lines(self) -> list[str]:
        return summary_score_lines(self.scores)

    def lines(self) -> list[str]:
        """The summary as text lines: settings, best loss, first and last generations, files."""
        meta, rows = self.best_metadata, self.logbook_lines
        shown = rows[:3] + (["..."] if len(rows) > 5 else []) + rows[max(3, len(rows) - 2):]
        return [f"run {self.run_dir}: {self.config.algorithm}, seed {self.config.seed}, "
                f"MLN hidden {list(self.config.hidden)}",
                f"kept loss: fitness {meta['fitness']:.5f}, sigma {meta['sigma']:.3e}, "
                f"{meta['generations']} generations",
                *self.score_lines(),
                "logbook (first and last generations):", *("  " + line for line in shown),
                "files: " + ", ".join(self.files)]


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.5f}"


def summary_score_lines(scores: dict | None) -> list[str]:
    """How the kept loss was chosen and how it scores on the test tasks."""
    if not scores:
        return ["scores: none recorded (a run from before validation and test tasks)"]
    kept, single = scores["kept"], scores["best_single_measurement"]
    lines = [f"selected by {kept['selected_by']}: validation {_score(kept['validation'])} "
             f"({scores['validation_tasks']} fixed tasks), test {_score(kept['test'])} ({scores['test_tasks']} tasks)"]
    if not single["same_genome"]:
        lines.append(f"best single measurement (not kept): fitness {single['fitness']:.5f}, test {_score(single['test'])}")
    return lines


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
    scores = read_json(run / SCORES_FILE, "scores file") if (run / SCORES_FILE).is_file() else None
    return RunSummary(run, config, dict(record["metadata"]), record["genome"].numpy(), rows, files, scores)
