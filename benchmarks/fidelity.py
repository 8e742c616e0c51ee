"""The fidelity benchmark: how well each fitness setting ranks a fixed panel of losses like the meta-test.

    python benchmarks/fidelity.py --jobs 2                          # six cells (hours on 2 cores)
    python benchmarks/fidelity.py --jobs 2 --cells digits/adam      # one cell
    python benchmarks/fidelity.py --report                          # tables from the finished jobs only
    python benchmarks/fidelity.py --smoke                           # 4 losses, 1 cell, 40 steps: a minute

A *cell* is a data set (digits, mnist1d, mnist: 8,000 / 2,000 of ``../shared/data/mnist``) and an
optimizer (Adam; SGD with momentum 0.9): mlp3, the data set's default steps, batch 500. In each cell:

1. **Meta-test** every panel loss (:data:`PANEL`: the reference losses, label smoothing at two
   epsilons, and evolved MLN, TaylorGLO and GP losses committed in the repository) under the tuned
   protocol, seeds 0-4, one thread: the *truth* a fitness should rank like.
2. **Fitness** of every panel loss by each setting of :data:`SETTINGS`, for run seeds 0-2 (a loss's
   fitness is its mean over those seeds; a diverged run counts as accuracy 0): today's brief MLP
   (:class:`deap_mln.training.splits.SplitTraining`'s defaults), and the faithful fitness
   (:func:`deap_mln.training.fitness.faithful_fitness`) of the cell's spec at CE's tuned rate in
   that cell, for 5%, 10% and 20% of its steps at that rate, 10% with a per-candidate rate search
   or normalised gradients, 5% with the rate search (added when the 10% search ranked best: 3
   trainings of 5% cost about 0.15), and successive halving from 5% over 3 rungs
   (:func:`deap_mln.training.fitness.successive_halving`, the whole panel at once).
3. **Report**, per cell and setting, two rows: the fitness from one training per loss (the mean
   over seeds of each seed's Spearman) and the mean of the 3 seeds' trainings (3 times the cost):
   Spearman's rank correlation of fitness against meta-test mean accuracy over the panel, with a
   percentile bootstrap 95% interval (panel losses resampled); the cost fraction, CPU seconds of
   the fitness per loss over the CPU seconds of one meta-test run of CE in the cell, timed by the
   same job just before and after its fitness trainings (the machine's load weighs on both alike);
   and the ceiling C, the Spearman between the meta-test means of seeds 0-1 and of seeds 2-4 (how
   well the meta-test agrees with itself). The default fitness is the row with the best mean
   Spearman over the cells among those whose cost fraction is at most 0.15 in every cell.

Every job, one (cell, loss, stage) or for successive halving (cell, panel, seed), writes a small
JSON file under ``--out/jobs/<dataset>-<optimizer>/`` when it finishes; a rerun skips finished jobs
(a job file written for other settings is refused, not reused), so an interrupted run goes on where
it stopped on any machine that has the committed job files. Jobs run cell by cell in the order of
:data:`CELLS`. Meta-test report directories go under ``--out/work/`` (not committed). The tables
(``fidelity.json``, ``fidelity.md``, ``fidelity.png``) are a pure function of the job files
(:func:`fidelity_tables`).
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import math
import multiprocessing
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
import numpy as np

from deap_mln.io import read_json, write_json

DATASETS = ("digits", "mnist1d", "mnist")
OPTIMIZERS = ("adam", "sgd")
CELLS = tuple(f"{d}/{o}" for d in DATASETS for o in OPTIMIZERS)   # the order the jobs run in
MODEL, BATCH_SIZE = "mlp3", 500
META_SEEDS = (0, 1, 2, 3, 4)
FITNESS_SEEDS = (0, 1, 2)
# the panel: name -> what resolve_loss takes (a baseline name or a loss file relative to the repository)
PANEL: dict[str, str] = {
    "ce": "ce", "ls": "ls", "ls:0.2": "ls:0.2", "mse": "mse", "focal": "focal", "poly1": "poly1",
    "baikal": "baikal", "ngl": "ngl",
    "mln-digits": "benchmarks/results/digits_task/best_loss.pt",
    "mln-linear": "benchmarks/results/reproduction/evolve-linear/best_loss.pt",
    "mln-nonlinear": "benchmarks/results/reproduction/evolve-nonlinear/best_loss.pt",
    "taylorglo-digits": "benchmarks/results/fidelity/panel/taylorglo-digits-s1.pt",
    "taylorglo-mnist1d": "benchmarks/results/fidelity/panel/taylorglo-mnist1d-s1.pt",
    "gp-digits": "benchmarks/results/fidelity/panel/gp-digits-s1.pt",
    "gp-mnist1d": "benchmarks/results/fidelity/panel/gp-mnist1d-s1.pt",
}
SMOKE_PANEL = ("ce", "ls", "mse", "focal")
COST_LIMIT = 0.15      # the target: the default fitness costs at most this fraction of a meta-test run
TARGET_SPEARMAN = 0.8  # ... and reaches this Spearman, or TARGET_OF_CEILING x C where the ceiling C < CEILING_BAR
TARGET_OF_CEILING, CEILING_BAR = 0.9, 0.9
BOOTSTRAP_RESAMPLES = 2000
CE_TIMING_RUNS = 2     # extra CE runs timed in CPU seconds by CE's meta-test job (for the record)
TIMING = "a CE meta-test run before and after, in the job"   # how a fitness job times its denominator
CODE_PATHS = ("deap_mln", "benchmarks/fidelity.py")
Numbers = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Setting:
    """One way to score a loss: the brief MLP, or the faithful fitness of the cell's spec."""

    name: str
    kind: str              # brief, faithful or halving
    fraction: float = 0.0  # of the spec's steps (faithful, halving: per rung)
    rates: str = "fixed"
    rungs: int = 0
    stage: str = "fitness"  # the job stage that computes it (settings added later get their own jobs)

    def describe(self) -> str:
        if self.kind == "brief":
            return "today's brief MLP: MLP-32, Adam 0.01, batch 64, 100 steps on the GP / TaylorGLO fitness split"
        if self.kind == "halving":
            return (f"successive halving: every loss {self.fraction:.0%} of the spec's steps, the better half "
                    f"{self.fraction:.0%} more, {self.rungs} rungs")
        rate = {"fixed": "at CE's tuned rate", "search": "best of CE's tuned rate and its two ladder neighbours",
                "normalised": "at CE's tuned rate, loss rescaled to CE's logit-gradient norm"}[self.rates]
        return f"the spec for {self.fraction:.0%} of its steps, {rate}"


SETTINGS = (
    Setting("brief", "brief"),
    Setting("spec 5%", "faithful", 0.05),
    Setting("spec 10%", "faithful", 0.10),
    Setting("spec 20%", "faithful", 0.20),
    Setting("spec 10% search", "faithful", 0.10, "search"),
    Setting("spec 5% search", "faithful", 0.05, "search", stage="fitness-extra"),
    Setting("spec 10% normalised", "faithful", 0.10, "normalised"),
    Setting("halving 5%, 3 rungs", "halving", 0.05, rungs=3),
)
PER_LOSS_SETTINGS = tuple(s for s in SETTINGS if s.kind != "halving")
FITNESS_STAGES = tuple(dict.fromkeys(s.stage for s in PER_LOSS_SETTINGS))
HALVING = next(s for s in SETTINGS if s.kind == "halving")


@dataclass(frozen=True)
class Plan:
    """What one pass measures: the panel, cells, seeds and (for a smoke run) steps."""

    panel: tuple[str, ...]
    cells: tuple[str, ...]
    meta_seeds: tuple[int, ...] = META_SEEDS
    fitness_seeds: tuple[int, ...] = FITNESS_SEEDS
    steps: int = 0          # 0: each data set's default steps

    def cell_steps(self, dataset: str) -> int:
        from deap_mln.training.trainer import default_steps

        return self.steps or default_steps(dataset)


# ------------------------------------------------------------------------------ the pure part: statistics


def average_ranks(values: Numbers) -> np.ndarray:
    """Ranks 1..n of ``values``, ties sharing their mean rank (NaN must be replaced before)."""
    _, inverse, counts = np.unique(np.asarray(values, dtype=float), return_inverse=True, return_counts=True)
    last = np.cumsum(counts)                      # 1-based rank of each distinct value's last copy
    return ((last - counts + 1 + last) / 2)[inverse.reshape(-1)]


def spearman(a: Numbers, b: Numbers) -> float:
    """Spearman's rank correlation (Pearson's of the average ranks); NaN where either is constant."""
    if len(a) != len(b):
        raise ValueError(f"spearman needs two sequences of one length, got {len(a)} and {len(b)}")
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denominator) if denominator > 0 else math.nan


def bootstrap_interval(statistic: Callable[[np.ndarray], float], n: int, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile 95% interval of ``statistic(indices)`` over ``resamples`` resamples, with
    replacement, of ``n`` items (the panel's losses); NaN statistics (a constant side) are left out."""
    rng = np.random.default_rng(seed)
    values = [statistic(idx) for idx in rng.integers(0, n, size=(resamples, n))]
    finite = np.array([v for v in values if not math.isnan(v)])
    if not len(finite):
        return math.nan, math.nan
    return float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))


def bootstrap_spearman(a: Numbers, b: Numbers, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile 95% interval of :func:`spearman` over resamples of the pairs (:func:`bootstrap_interval`)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bootstrap_interval(lambda idx: spearman(x[idx], y[idx]), len(x), resamples, seed)


def single_seed_spearman(per_seed: np.ndarray, truth: np.ndarray, idx: np.ndarray | None = None) -> float:
    """The mean over run seeds (rows of ``per_seed``, losses in columns) of the Spearman of one
    seed's fitness with ``truth``: the fidelity of a fitness that trains each candidate once."""
    cols = np.arange(per_seed.shape[1]) if idx is None else idx
    values = [v for v in (spearman(row[cols], truth[cols]) for row in per_seed) if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def seed_halves(seeds: Sequence[int]) -> tuple[list[int], list[int]]:
    """The ceiling's two disjoint halves of the meta-test seeds: the first floor(n/2), the rest."""
    half = len(seeds) // 2
    return list(seeds[:half]), list(seeds[half:])


def ceiling(accuracy: dict[str, dict[int, float]], seeds: Sequence[int]) -> float:
    """Spearman between two disjoint halves of the meta-test (:func:`seed_halves`) over the losses:
    ``accuracy[loss][seed]`` is a test accuracy."""
    first, second = seed_halves(seeds)
    losses = list(accuracy)
    return spearman([float(np.mean([accuracy[k][s] for s in first])) for k in losses],
                    [float(np.mean([accuracy[k][s] for s in second])) for k in losses])


def ceiling_over_splits(accuracy: dict[str, dict[int, float]], seeds: Sequence[int]) -> float:
    """The mean of the half-vs-half Spearman over every split of ``seeds`` into floor(n/2) and the rest."""
    losses, values = list(accuracy), []
    for first in itertools.combinations(seeds, len(seeds) // 2):
        second = [s for s in seeds if s not in first]
        values.append(spearman([float(np.mean([accuracy[k][s] for s in first])) for k in losses],
                               [float(np.mean([accuracy[k][s] for s in second])) for k in losses]))
    return float(np.nanmean(values))


def fitness_value(values: Sequence[float]) -> float:
    """A loss's fitness: the mean over run seeds, a diverged run (NaN) counting as accuracy 0."""
    return float(np.mean([0.0 if math.isnan(v) else v for v in values]))


def meets_target(spearman_value: float, cost_fraction: float, ceiling_value: float) -> bool:
    """The issue's target in one cell: cost <= 0.15 and Spearman >= 0.8, or >= 0.9 C where C < 0.9."""
    if any(math.isnan(v) for v in (spearman_value, cost_fraction, ceiling_value)) or cost_fraction > COST_LIMIT:
        return False
    return spearman_value >= TARGET_SPEARMAN or (ceiling_value < CEILING_BAR
                                                 and spearman_value >= TARGET_OF_CEILING * ceiling_value)


def cell_table(meta: dict[str, dict], fitness: dict[str, dict], halving: dict[Any, dict],
               meta_seeds: Sequence[int], fitness_seeds: Sequence[int], ce_cpu_seconds: float,
               settings: Sequence[Setting] = SETTINGS, resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """One cell's table from its job facts.

    ``meta[loss]``: ``accuracy`` {seed: test accuracy}, ``lr``; ``fitness[loss]``: per setting
    name ``values`` {seed: fitness}, ``cpu_seconds`` {seed: s} and the CPU seconds of the CE runs
    its job timed (``ce_run_cpu_seconds``); ``halving[seed]``: ``values`` {loss: rung + accuracy},
    ``cpu_seconds`` for the whole panel and ``ce_run_cpu_seconds``; ``ce_cpu_seconds``: one meta-test
    run of CE, for facts without their own CE timing. Each setting gives two rows: one training per
    loss and the mean of all the seeds' trainings (their cost). Keys of dicts read from JSON may be
    strings: seeds are looked up both ways.
    """
    losses = list(meta)
    truth = {k: float(np.mean([_at(meta[k]["accuracy"], s) for s in meta_seeds])) for k in losses}
    accuracy = {k: {s: _at(meta[k]["accuracy"], s) for s in meta_seeds} for k in losses}
    rows: list[dict[str, Any]] = []
    b = np.array([truth[k] for k in losses])
    for setting in settings:
        if setting.kind == "halving":
            if not all(s in halving or str(s) in halving for s in fitness_seeds):
                continue
            runs = [_at(halving, s) for s in fitness_seeds]
            per_seed = np.array([[fitness_value([run["values"][k]]) for k in losses] for run in runs])
            cpu = float(np.mean([run["cpu_seconds"] / len(run["values"]) for run in runs]))
            cost = float(np.mean([run["cpu_seconds"] / len(run["values"]) / _denominator(run, ce_cpu_seconds)
                                  for run in runs]))
        else:
            if not all(setting.name in fitness.get(k, {}) for k in losses):
                continue
            per_seed = np.array([[fitness_value([_at(fitness[k][setting.name]["values"], s)]) for k in losses]
                                 for s in fitness_seeds])
            cpu = float(np.mean([_at(fitness[k][setting.name]["cpu_seconds"], s)
                                 for k in losses for s in fitness_seeds]))
            cost = float(np.mean([_at(fitness[k][setting.name]["cpu_seconds"], s)
                                  / _denominator(fitness[k][setting.name], ce_cpu_seconds)
                                  for k in losses for s in fitness_seeds]))
        a = per_seed.mean(axis=0)
        for count in sorted({1, len(fitness_seeds)}):
            if count == 1:   # one training per candidate: the mean over seeds of each seed's Spearman
                value = single_seed_spearman(per_seed, b)
                ci = bootstrap_interval(functools.partial(single_seed_spearman, per_seed, b), len(losses), resamples)
            else:            # the mean of ``count`` trainings per candidate (as FaithfulFitness(splits=count) costs)
                value, ci = spearman(a, b), bootstrap_spearman(a, b, resamples)
            rows.append(dict(setting=setting.name if count == 1 else f"{setting.name}, mean of {count}",
                             base_setting=setting.name, trainings=count, spearman=value, ci=list(ci),
                             cost_fraction=count * cost, cost_per_training=cost,
                             cpu_seconds_per_loss_seed=cpu,
                             fitness={k: float(v) for k, v in zip(losses, per_seed[0] if count == 1 else a)}))
    c = ceiling(accuracy, meta_seeds)
    for row in rows:
        row["meets_target"] = meets_target(row["spearman"], row["cost_fraction"], c)
    halves = seed_halves(meta_seeds)
    return dict(losses=losses, meta_test={k: dict(mean=truth[k], sd=float(np.std(list(accuracy[k].values()), ddof=1))
                                                  if len(meta_seeds) > 1 else 0.0, lr=meta[k]["lr"],
                                                  at_edge=meta[k].get("at_edge", False)) for k in losses},
                ceiling=c, ceiling_halves=halves, ceiling_over_splits=ceiling_over_splits(accuracy, meta_seeds),
                ce_run_cpu_seconds=ce_cpu_seconds, rows=rows)


def _denominator(facts: dict, ce_cpu_seconds: float) -> float:
    """CPU seconds of one meta-test run of CE for a fitness job's facts: the mean of the runs the job
    timed itself (``ce_run_cpu_seconds``), else the cell's ``ce_cpu_seconds``."""
    own = facts.get("ce_run_cpu_seconds")
    return float(np.mean(own)) if own else ce_cpu_seconds


def _at(mapping: dict, seed: int) -> Any:
    return mapping[seed] if seed in mapping else mapping[str(seed)]


def choose_default(tables: dict[str, dict]) -> dict:
    """The default setting: among those measured in every cell of ``tables`` with cost fraction at
    most :data:`COST_LIMIT` in each, the best mean Spearman over the cells (ties: the cheaper)."""
    if not tables:
        return dict(setting=None, reason="no cell finished")
    names = [row["setting"] for row in next(iter(tables.values()))["rows"]]
    candidates = []
    for name in names:
        rows = [next((r for r in t["rows"] if r["setting"] == name), None) for t in tables.values()]
        if any(r is None for r in rows):
            continue
        spearmans = [r["spearman"] for r in rows if not math.isnan(r["spearman"])]  # type: ignore[index]
        if spearmans and all(r["cost_fraction"] <= COST_LIMIT for r in rows):  # type: ignore[index]
            candidates.append((float(np.mean(spearmans)),
                               -float(np.mean([r["cost_fraction"] for r in rows])), name))  # type: ignore[index]
    if not candidates:
        return dict(setting=None, reason=f"no setting costs at most {COST_LIMIT} in every cell")
    mean_s, neg_cost, name = max(candidates)
    others = ", ".join(f"{n} {s:+.2f}" for s, _, n in sorted(candidates, reverse=True) if n != name)
    return dict(setting=name, mean_spearman=mean_s, mean_cost_fraction=-neg_cost,
                reason=(f"best mean Spearman over the {len(tables)} finished cell(s) ({mean_s:+.2f}) among the "
                        f"settings whose cost fraction is at most {COST_LIMIT} in every cell"
                        + (f" (the others: {others})" if others else "")))


def fidelity_summary(tables: dict[str, dict], cells: Sequence[str] = CELLS) -> dict:
    """The ``default`` block (every cell of ``cells``; None for a cell not finished), the chosen
    setting and the target's verdict per cell."""
    choice = choose_default(tables)
    default: dict[str, dict | None] = {}
    target: dict[str, bool | None] = {}
    for cell in cells:
        row = next((r for r in tables[cell]["rows"] if r["setting"] == choice["setting"]), None) \
            if cell in tables else None
        if row is None:
            default[cell], target[cell] = None, None
            continue
        default[cell] = dict(spearman=row["spearman"], cost_fraction=row["cost_fraction"],
                             ceiling=tables[cell]["ceiling"])
        target[cell] = row["meets_target"]
    finished = [v for v in target.values() if v is not None]
    by_optimizer = {o: choose_default({c: t for c, t in tables.items() if c.endswith(f"/{o}")}) for o in OPTIMIZERS}
    return dict(default=default, default_setting=choice, best_by_optimizer=by_optimizer, target_met=target,
                target_met_everywhere=bool(finished) and len(finished) == len(cells) and all(finished))


# ------------------------------------------------------------------------------ jobs


def panel_spec(name: str) -> str:
    """What :func:`deap_mln.metatest.baselines.resolve_loss` takes for panel loss ``name``."""
    spec = PANEL.get(name, name)
    return str(harness.REPO_ROOT / spec) if spec.endswith(".pt") else spec


def loss_digest(name: str) -> str:
    """A baseline's name, or the first 16 hex digits of a loss file's SHA-256 (the job's identity)."""
    spec = panel_spec(name)
    return hashlib.sha256(Path(spec).read_bytes()).hexdigest()[:16] if spec.endswith(".pt") else spec


def job_path(out: Path, cell: str, stage: str, name: str) -> Path:
    """Where a job's facts go (its folder created)."""
    folder = out / "jobs" / cell.replace("/", "-") / stage
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name.replace(':', '_')}.json"




def _spec(cell: str, steps: int, lr: float):
    from deap_mln.training.trainer import TrainingSpec

    _, optimizer = cell.split("/")
    return TrainingSpec(model=MODEL, steps=steps, batch_size=BATCH_SIZE, optimizer=optimizer, lr=lr)


def meta_test_job(cell: str, loss: str, plan: Plan, out: Path) -> dict:
    """Meta-test ``loss`` in ``cell`` (tuned protocol, one thread); for CE also the CPU seconds of
    :data:`CE_TIMING_RUNS` runs like the meta-test's (the cost fractions' denominator)."""
    dataset, optimizer = cell.split("/")
    steps = plan.cell_steps(dataset)
    identity = dict(stage="meta-test", cell=cell, loss=loss, loss_id=loss_digest(loss), seeds=list(plan.meta_seeds),
                    steps=steps, model=MODEL, batch_size=BATCH_SIZE)
    path = job_path(out, cell, "meta-test", loss)
    if (done := harness.finished_job(path, identity)) is not None:
        return done
    import torch

    from deap_mln.metatest.run import meta_test

    torch.set_num_threads(1)
    code = harness.git_state(CODE_PATHS)
    work = out / "work" / cell.replace("/", "-") / loss
    shutil.rmtree(work, ignore_errors=True)   # an interrupted job's partial report
    cpu, wall = time.process_time(), time.perf_counter()
    result = meta_test([panel_spec(loss)], dataset, work, model=MODEL,
                       seeds=len(plan.meta_seeds), first_seed=plan.meta_seeds[0], steps=steps, batch_size=BATCH_SIZE,
                       optimizer=optimizer, protocol="tuned", threads=1)
    label = next(iter(result.run_info["learning_rates"]))
    search = result.run_info["tuning"]["per_loss"][label]
    facts: dict[str, Any] = dict(
        identity=identity, lr=result.run_info["learning_rates"][label], at_edge=search["at_edge"], tuning=search,
        accuracy={r.seed: r.final_accuracy for r in result.records}, diverged={r.seed: r.diverged for r in result.records},
        run_wall_seconds=[round(r.seconds, 3) for r in result.records],
        cpu_seconds=round(time.process_time() - cpu, 2), wall_seconds=round(time.perf_counter() - wall, 2),
        warnings=result.warnings, **code)
    if loss == "ce":
        facts["run_cpu_seconds"] = time_ce_runs(cell, facts["lr"], plan)
    write_json(path, facts)
    return facts


class CETimer:
    """CPU seconds of one meta-test run of CE at ``lr`` in ``cell`` (warmed up once, test accuracy
    recorded as often as the meta-test records it): the cost fractions' denominator, timed in the
    same process as the fitness it divides, just before and after it, so that the load of the
    machine at the time weighs on both alike."""

    def __init__(self, cell: str, lr: float, plan: Plan, data: Any = None):
        from deap_mln.data.source import load_source
        from deap_mln.metatest.baselines import resolve_loss
        from deap_mln.metatest.train import CURVE_POINTS, MetaTestSettings, warm_up

        dataset, optimizer = cell.split("/")
        steps = plan.cell_steps(dataset)
        self.data = load_source(dataset) if data is None else data
        self.settings = MetaTestSettings(model=MODEL, steps=steps, batch_size=BATCH_SIZE, optimizer=optimizer, lr=lr,
                                         eval_every=max(1, steps // CURVE_POINTS))
        warm_up(self.data, resolve_loss("ce"), self.settings)

    def run(self, seed: int) -> float:
        from torch import nn

        from deap_mln.training.trainer import train_classifier

        tic = time.process_time()
        train_classifier(self.data, nn.CrossEntropyLoss(), seed, self.settings, eval_every=self.settings.eval_every)
        return round(time.process_time() - tic, 3)


def time_ce_runs(cell: str, lr: float, plan: Plan) -> list[float]:
    """CPU seconds of :data:`CE_TIMING_RUNS` meta-test runs of CE at ``lr`` (:class:`CETimer`)."""
    timer = CETimer(cell, lr, plan)
    return [timer.run(seed) for seed in plan.meta_seeds[:CE_TIMING_RUNS]]


def fitness_job(cell: str, loss: str, plan: Plan, out: Path, ce_lr: float, stage: str = "fitness") -> dict:
    """The fitness of ``loss`` in ``cell`` by every per-loss setting of ``stage``, for each run seed,
    with its CPU seconds."""
    dataset, _ = cell.split("/")
    steps = plan.cell_steps(dataset)
    settings = [s for s in PER_LOSS_SETTINGS if s.stage == stage]
    identity = dict(stage=stage, cell=cell, loss=loss, loss_id=loss_digest(loss), seeds=list(plan.fitness_seeds),
                    steps=steps, ce_lr=ce_lr, settings=[s.name for s in settings], timing=TIMING)
    path = job_path(out, cell, stage, loss)
    if (done := harness.finished_job(path, identity)) is not None:
        return done
    import torch

    from deap_mln.data.fitness_splits import load_fitness_data
    from deap_mln.data.source import load_source
    from deap_mln.metatest.baselines import resolve_loss
    from deap_mln.training.fitness import FaithfulFitness, faithful_fitness
    from deap_mln.training.splits import SplitTraining, split_accuracy

    torch.set_num_threads(1)
    code = harness.git_state(CODE_PATHS)
    module = resolve_loss(panel_spec(loss)).module
    data = load_source(dataset)
    load_fitness_data(dataset)   # cached: its loading is not the fitness's cost
    spec = _spec(cell, steps, ce_lr)
    timer = CETimer(cell, ce_lr, plan, data)
    before = timer.run(plan.meta_seeds[0])
    results: dict[str, dict[str, dict[int, float]]] = {}
    for setting in settings:
        values, seconds = {}, {}
        for seed in plan.fitness_seeds:
            tic = time.process_time()
            if setting.kind == "brief":
                value = split_accuracy(module, SplitTraining(dataset=dataset, seed=seed))
            else:
                value = faithful_fitness(module, data, spec, FaithfulFitness(setting.fraction, rates=setting.rates),
                                         seed=seed)
            seconds[seed] = round(time.process_time() - tic, 4)
            values[seed] = value
        results[setting.name] = dict(values=values, cpu_seconds=seconds)
    write_json(path, dict(identity=identity, settings=results, ce_run_cpu_seconds=[before, timer.run(plan.meta_seeds[-1])],
                          **code))
    return read_json(path)


def halving_job(cell: str, seed: int, plan: Plan, out: Path, ce_lr: float) -> dict:
    """Successive halving (:data:`HALVING`) of the whole panel in ``cell`` with run seed ``seed``."""
    dataset, _ = cell.split("/")
    steps = plan.cell_steps(dataset)
    identity = dict(stage="halving", cell=cell, seed=seed, panel={k: loss_digest(k) for k in plan.panel},
                    steps=steps, ce_lr=ce_lr, fraction=HALVING.fraction, rungs=HALVING.rungs, timing=TIMING)
    path = job_path(out, cell, "halving", f"seed{seed}")
    if (done := harness.finished_job(path, identity)) is not None:
        return done
    import torch

    from deap_mln.data.source import load_source
    from deap_mln.metatest.baselines import resolve_loss
    from deap_mln.training.fitness import FaithfulFitness, successive_halving

    torch.set_num_threads(1)
    code = harness.git_state(CODE_PATHS)
    modules = [resolve_loss(panel_spec(k)).module for k in plan.panel]
    data = load_source(dataset)
    timer = CETimer(cell, ce_lr, plan, data)
    before = timer.run(plan.meta_seeds[0])
    tic = time.process_time()
    values = successive_halving(modules, data, _spec(cell, steps, ce_lr), FaithfulFitness(HALVING.fraction), seed,
                                rungs=HALVING.rungs)
    cpu = time.process_time() - tic
    write_json(path, dict(identity=identity, values=dict(zip(plan.panel, values)), cpu_seconds=round(cpu, 3),
                          ce_run_cpu_seconds=[before, timer.run(plan.meta_seeds[-1])], **code))
    return read_json(path)


# ------------------------------------------------------------------------------ scheduling


@dataclass
class Job:
    key: str
    fn: Callable[..., dict]
    args: tuple
    rate_of: str = ""   # the key of CE's meta-test job: its rate is passed as ``ce_lr`` (the job waits for it)


def plan_jobs(plan: Plan, out: Path) -> list[Job]:
    """Every job, cell by cell: CE's meta-test first (the fitness needs its rate), then the others'."""
    jobs = []
    for cell in plan.cells:
        ce = f"{cell}|meta-test|ce"
        jobs.append(Job(ce, meta_test_job, (cell, "ce", plan, out)))
        jobs += [Job(f"{cell}|meta-test|{loss}", meta_test_job, (cell, loss, plan, out)) for loss in plan.panel
                 if loss != "ce"]
        jobs += [Job(f"{cell}|fitness|{loss}", fitness_job, (cell, loss, plan, out), ce) for loss in plan.panel]
        jobs += [Job(f"{cell}|halving|seed{seed}", halving_job, (cell, seed, plan, out), ce)
                 for seed in plan.fitness_seeds]
        jobs += [Job(f"{cell}|{stage}|{loss}", functools.partial(fitness_job, stage=stage), (cell, loss, plan, out), ce)
                 for stage in FITNESS_STAGES[1:] for loss in plan.panel]
    return jobs


def run_jobs(jobs: list[Job], workers: int) -> dict[str, dict]:
    """Run ``jobs`` in order in ``workers`` processes (a job starts once the jobs it needs have
    finished); the facts of every job that finished. A failed job is reported; its dependants are skipped."""
    done: dict[str, dict] = {}
    failed: set[str] = set()
    pending = list(jobs)
    running: dict[Future, Job] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        while pending or running:
            for job in list(pending):
                if len(running) >= workers:
                    break
                if job.rate_of in failed:
                    pending.remove(job)
                    failed.add(job.key)
                    harness.say(f"   skipped {job.key}: a job it needs failed")
                elif not job.rate_of or job.rate_of in done:
                    pending.remove(job)
                    rate = dict(ce_lr=float(done[job.rate_of]["lr"])) if job.rate_of else {}
                    running[pool.submit(job.fn, *job.args, **rate)] = job
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                try:
                    done[job.key] = future.result()
                    harness.say(f"   done {job.key} ({_job_seconds(done[job.key]):.0f} CPU s)")
                except Exception as error:  # noqa: BLE001  (one failed job must not stop the others)
                    failed.add(job.key)
                    harness.say(f"   FAILED {job.key}: {type(error).__name__}: {error}")
    return done


def _job_seconds(facts: dict) -> float:
    if "cpu_seconds" in facts and isinstance(facts["cpu_seconds"], (int, float)):
        return float(facts["cpu_seconds"])
    return sum(sum(s["cpu_seconds"].values()) for s in facts.get("settings", {}).values())


def collect(plan: Plan, out: Path) -> dict[str, dict]:
    """The finished jobs' facts, read from their files (by the keys of :func:`plan_jobs`)."""
    facts: dict[str, dict] = {}
    for path in sorted((out / "jobs").glob("*/*/*.json")):
        one = read_json(path)
        ident = one["identity"]
        name = ident.get("loss", f"seed{ident.get('seed')}")
        facts[f"{ident['cell']}|{ident['stage']}|{name}"] = one
    return facts


def fidelity_tables(facts: dict[str, dict], plan: Plan) -> dict[str, dict]:
    """The table of every cell whose meta-test of every panel loss has finished (rows: the
    settings whose fitness jobs have all finished), from the job facts alone."""
    tables = {}
    for cell in plan.cells:
        meta = {k: facts.get(f"{cell}|meta-test|{k}") for k in plan.panel}
        if any(v is None for v in meta.values()):
            continue
        ce = meta["ce"]
        fitness = {k: {name: dict(value, ce_run_cpu_seconds=facts[f"{cell}|{stage}|{k}"].get("ce_run_cpu_seconds"))
                       for stage in FITNESS_STAGES if f"{cell}|{stage}|{k}" in facts
                       for name, value in facts[f"{cell}|{stage}|{k}"]["settings"].items()} for k in plan.panel}
        halving = {s: facts[f"{cell}|halving|seed{s}"] for s in plan.fitness_seeds
                   if f"{cell}|halving|seed{s}" in facts}
        tables[cell] = cell_table({k: v for k, v in meta.items() if v is not None}, fitness, halving,
                                  plan.meta_seeds, plan.fitness_seeds,
                                  float(np.median(ce["run_cpu_seconds"])))  # type: ignore[index]
    return tables


# ------------------------------------------------------------------------------ report


def _f(value: float | None, fmt: str = "+.2f") -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def markdown(result: dict) -> str:
    """``fidelity.md`` from the contents of ``fidelity.json``."""
    plan, tables, summary = result["plan"], result["tables"], result["summary"]
    choice = summary["default_setting"]
    lines = [f"# Fidelity of the fitness: {len(tables)} of {len(plan['cells'])} cells finished", "",
             f"Jobs: `{result['continue_command']}` (a rerun skips finished jobs); these tables: `{result['command']}`; "
             f"{harness.machine_line(result['machine'])}; the jobs took {result['job_cpu_seconds'] / 3600:.1f} CPU hours "
             "(one thread each).", "",
             f"Panel of {len(plan['panel'])} losses: {', '.join(plan['panel'])}. Meta-test: mlp3, batch {BATCH_SIZE}, "
             f"{plan['steps']} steps, each loss at its own tuned rate, seeds "
             f"{plan['meta_seeds'][0]}-{plan['meta_seeds'][-1]}; fitness trained with run seeds "
             f"{', '.join(map(str, plan['fitness_seeds']))}. Each setting has two rows: *one training* per loss "
             "(Spearman: the mean over the seeds of each seed's Spearman) and *mean of N* (the fitness is the mean "
             "over the N seeds, N trainings per loss, as `FaithfulFitness(splits=N)` would cost). *Spearman*: rank "
             "correlation of the fitness with the meta-test's mean accuracy over the panel [bootstrap 95% interval, "
             "panel losses resampled]; *cost*: the fitness's CPU seconds per loss (trainings x CPU s per training) / "
             "CPU seconds of one meta-test run of CE in the cell (timed by the same job just before and after); "
             f"*ceiling C*: Spearman between the meta-test means of seeds "
             f"{'-'.join(map(str, seed_halves(plan['meta_seeds'])[0]))} and "
             f"{'-'.join(map(str, seed_halves(plan['meta_seeds'])[1]))}. *Target* (issue 21): Spearman >= "
             f"{TARGET_SPEARMAN} (or >= {TARGET_OF_CEILING} C where C < {CEILING_BAR}) at cost <= {COST_LIMIT}.", "",
             "## The default", "",
             f"**{choice.get('setting')}**: {choice['reason']}.", "",
             "| cell | Spearman | cost | ceiling C | target met |", "|---|---:|---:|---:|---|"]
    for cell, value in summary["default"].items():
        if value is None:
            lines.append(f"| {cell} | not finished | | | |")
        else:
            met = summary["target_met"][cell]
            lines.append(f"| {cell} | {_f(value['spearman'])} | {_f(value['cost_fraction'], '.3f')} | "
                         f"{_f(value['ceiling'])} | {'yes' if met else 'no'} |")
    lines += ["", "The same rule within the cells of one optimizer: " + "; ".join(
        f"{o}: **{c.get('setting')}** ({_f(c.get('mean_spearman'))} mean Spearman)"
        for o, c in summary["best_by_optimizer"].items()) + "."]
    lines += ["", "## Settings", ""] + [f"- *{s['name']}*: {s['description']}" for s in result["settings"]]
    for cell, table in tables.items():
        lines += ["", f"## {cell}", "",
                  f"Ceiling C {_f(table['ceiling'])} (seeds {table['ceiling_halves'][0]} vs "
                  f"{table['ceiling_halves'][1]}; mean over all such splits {_f(table['ceiling_over_splits'])}); "
                  f"one meta-test run of CE: {table['ce_run_cpu_seconds']:.2f} CPU s in CE's meta-test job (each fitness job "
                  "divides by the CE runs it timed itself).", "",
                  "| setting | trainings | Spearman [95% CI] | cost | CPU s / training | target met |",
                  "|---|---:|---:|---:|---:|---|"]
        for row in table["rows"]:
            lines.append(f"| {row['setting']} | {row['trainings']} | {_f(row['spearman'])} [{_f(row['ci'][0])}, "
                         f"{_f(row['ci'][1])}] | {_f(row['cost_fraction'], '.3f')} | "
                         f"{row['cpu_seconds_per_loss_seed']:.2f} | {'yes' if row['meets_target'] else 'no'} |")
        most = max(row["trainings"] for row in table["rows"])
        shown = [row for row in table["rows"] if row["trainings"] == most]
        names = [row["base_setting"] for row in shown]
        lines += ["", f"Fitness of each loss (mean of {most} trainings; halving: rung reached + accuracy):"]
        lines += ["", "| loss | meta-test acc. (sd) | lr | " + " | ".join(names) + " |",
                  "|---|---:|---:|" + "---:|" * len(names)]
        order = sorted(table["losses"], key=lambda k: -table["meta_test"][k]["mean"])
        for k in order:
            m = table["meta_test"][k]
            lines.append(f"| {k} | {m['mean']:.4f} ({m['sd']:.4f}) | {m['lr']:g}{' (edge)' if m['at_edge'] else ''} | "
                         + " | ".join(f"{row['fitness'][k]:.4f}" for row in shown) + " |")
    if result.get("unfinished"):
        lines += ["", "## Not finished", "", f"{len(result['unfinished'])} jobs: "
                  + ", ".join(result["unfinished"][:12]) + (" ..." if len(result["unfinished"]) > 12 else ""),
                  "", f"Continue with `{result['continue_command']}`."]
    return "\n".join(lines) + "\n"


def plot(tables: dict[str, dict], path: Path, cells: Sequence[str]) -> None:
    """Per cell: Spearman (bootstrap interval) against cost fraction of each setting, the ceiling as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(len(cells), len(OPTIMIZERS))
    rows = math.ceil(len(cells) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 3.8 * rows), squeeze=False)
    markers = dict(zip([s.name for s in SETTINGS], "osD^vXP*"))
    colors = {s.name: f"C{i}" for i, s in enumerate(SETTINGS)}
    for ax, cell in zip(axes.flat, cells):
        ax.set_title(cell)
        ax.set_xscale("log")
        ax.set_xlabel("cost: fitness CPU s / meta-test run of CE")
        ax.set_ylabel("Spearman with the meta-test")
        ax.axvline(COST_LIMIT, color="grey", ls=":", lw=1)
        ax.axhline(TARGET_SPEARMAN, color="grey", ls="--", lw=1)
        ax.set_ylim(-1.05, 1.05)
        if cell not in tables:
            ax.text(0.5, 0.5, "not finished", transform=ax.transAxes, ha="center")
            continue
        table = tables[cell]
        ax.axhline(table["ceiling"], color="tab:red", lw=1.2, label=f"ceiling C {table['ceiling']:+.2f}")
        for row in table["rows"]:
            low, high = row["ci"]
            color = colors[row["base_setting"]]
            ax.errorbar([row["cost_fraction"]], [row["spearman"]],
                        yerr=[[max(0.0, row["spearman"] - low)], [max(0.0, high - row["spearman"])]],
                        fmt=markers.get(row["base_setting"], "o"), color=color, capsize=3,
                        mfc=color if row["trainings"] > 1 else "white",
                        label=row["base_setting"] if row["trainings"] == 1 else None)
        ax.legend(fontsize=6, loc="lower right", title="hollow: 1 training; filled: mean", title_fontsize=6)
    for ax in list(axes.flat)[len(cells):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(plan: Plan, out: Path, command: str, continue_command: str) -> dict:
    """Aggregate the finished jobs under ``out`` into fidelity.json, .md and .png; the result."""
    facts = collect(plan, out)
    tables = fidelity_tables(facts, plan)
    keys = [job.key for job in plan_jobs(plan, out)]
    unfinished = [k for k in keys if k not in facts]
    summary = fidelity_summary(tables, plan.cells)
    result = dict(default=summary["default"], default_setting=summary["default_setting"]["setting"],
                  summary=summary, command=command,
                  plan=dict(panel=list(plan.panel), panel_specs={k: PANEL.get(k, k) for k in plan.panel},
                            cells=list(plan.cells), meta_seeds=list(plan.meta_seeds),
                            fitness_seeds=list(plan.fitness_seeds), steps=plan.steps or "the data set's default", model=MODEL,
                            batch_size=BATCH_SIZE),
                  settings=[dict(name=s.name, description=s.describe()) for s in SETTINGS], tables=tables,
                  unfinished=unfinished, continue_command=continue_command,
                  job_cpu_seconds=round(sum(_job_seconds(f) for f in facts.values()), 1),
                  machine=harness.machine_info())
    text = markdown(result)
    harness.write_results(out / "fidelity", result, text)
    plot(tables, out / "fidelity.png", plan.cells)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    parser.add_argument("--jobs", type=int, default=1, help="jobs in parallel processes, one thread each")
    parser.add_argument("--report", action="store_true", help="only aggregate the finished jobs")
    parser.add_argument("--smoke", action="store_true",
                        help=f"{len(SMOKE_PANEL)} losses, digits/adam, 40 steps, 2 + 2 seeds, to a temporary directory")
    parser.add_argument("--out", type=Path, help="results directory (default benchmarks/results/fidelity)")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.smoke:
        plan = Plan(panel=SMOKE_PANEL, cells=("digits/adam",), meta_seeds=(0, 1), fitness_seeds=(0, 1), steps=40)
    else:
        plan = Plan(panel=tuple(PANEL), cells=tuple(c for c in CELLS if c in args.cells))
    out = harness.output_dir(args.out, args.smoke, "fidelity") if (args.smoke or args.out) \
        else harness.RESULTS_DIR / "fidelity"
    out.mkdir(parents=True, exist_ok=True)
    command = harness.command_line(__file__)
    continue_command = harness.command_line(__file__, ["--jobs", "2", *(["--cells", *args.cells] if args.cells != list(CELLS)
                                                               else []), *(["--smoke"] if args.smoke else []),
                                                        *(["--out", str(args.out)] if args.out else [])])
    if not args.report:
        tic = time.perf_counter()
        harness.say(f"fidelity: {len(plan.panel)} losses x {len(plan.cells)} cells into {out}, {args.jobs} worker(s)")
        run_jobs(plan_jobs(plan, out), args.jobs)
        harness.say(f"   {time.perf_counter() - tic:.0f} s")
    result = write_report(plan, out, command, continue_command)
    harness.say(markdown(result))


if __name__ == "__main__":
    main()
