"""Compare evolution variants over seeds: convergence, held-out fitness, statistics, plots.

Every variant is the same run with a few config fields changed, so every variant gets the
same number of fitness evaluations, the same seeds and, for a given seed, the same tasks in
every generation. Each (variant, seed) job leaves a full run directory and a ``result.json``;
jobs whose result exists are skipped, so an interrupted benchmark resumes where it stopped.

Final losses are compared on *held-out* tasks (a generation no run ever evaluates), the
same for every variant of a seed, because logbook fitness values of different runs may be
lucky draws of their last generation's tasks.

With a data source (``data``, ``deap-mln bench --data``) every variant runs on that data's
meta-tasks (``tasks_source``) at the same budget and seeds, and the held-out tasks are trained on
samples of the search part and scored on the held-out part of the training part, which no
search's choice reads; CE is the reference loss there.
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deap_mln.data.brief_training import module_logit_gradient, train_and_score
from deap_mln.data.synthetic import generation_tasks
from deap_mln.data.user_data import DataTask, load_task_data, make_data_task
from deap_mln.io import BEST_LOSS_FILE, CONFIG_FILE, MLN_CHECKPOINT_FILE, RESULT_FILE, write_json, write_text
from deap_mln.mln.config import EvolutionConfig, preset
from deap_mln.mln.edl import ranking_fitness
from deap_mln.mln.fitness import brief_training, data_task_fitness, fitness_from_mse
from deap_mln.mln.inner import PopulationLoss, train_population, validation_mse
from deap_mln.mln.network import load_loss_record
from deap_mln.mln.population_loss import BaselinePopulationLoss, TabulatedMLNLoss
from deap_mln.mln.run import evolve, resume
from deap_mln.parallel import single_thread
from deap_mln.plotting import pyplot, save_figure
from deap_mln.stats import a12, compare_paired, median_iqr

_HYBRID = {"algorithm": "hybrid", "mutation": "log-normal", "dynamic_update": True, "update_rule": "algorithm-1"}
_ES = {"algorithm": "es", "mutation": "log-normal", "dynamic_update": False}
VARIANTS: dict[str, dict] = {
    "hybrid": _HYBRID,                                   # all of Algorithm 1: roulette, crossover, adaptive mutation, update
    "es": _ES,                                           # the ES-only baseline (paper's Table 3)
    "hybrid-no-update": {**_HYBRID, "dynamic_update": False},        # Algorithm 1 without lines 12-21
    "hybrid-normalised-update": {**_HYBRID, "update_rule": "normalised"},  # one fixed-length step instead
    "hybrid-fixed-sigma": {**_HYBRID, "tau": 0.0},       # no adaptive mutation: sigma stays at its initial value
    "hybrid-chaotic": {**_HYBRID, "mutation": "chaotic"},   # EDL's logistic-map noise instead of Gaussian
    "es-chaotic": {**_ES, "mutation": "chaotic"},        # the EDL search
}
# budget -> (preset, overrides, default threshold for "evaluations to reach")
BUDGETS: dict[str, tuple[str, dict, float]] = {
    # checks the whole pipeline in seconds; its numbers mean nothing
    "smoke": ("quick", dict(generations=2, hidden=(8, 8), pool_size=2_000, train_size=400, val_size=200,
                            tasks_per_eval=1, mu=4, lambda_=4, chunk_size=4, update_truncation=3), -0.1),
    "quick": ("quick", dict(generations=20, tasks_per_eval=2), -0.01),
    "paper": ("paper", {}, -0.01),
    "edl": ("edl", {}, 0.995),  # ranking fitness: compare es-chaotic with es (Gaussian)
}
HELD_OUT_GENERATION = 1_000_000  # tasks of this generation are never used by a run
HELD_OUT_TASKS = 5
DATA_THRESHOLD = 0.9  # default "evaluations to reach" on a data source: the fitness is an accuracy there
SYNTHETIC = "synthetic"


def job_config(budget: str, variant: str, seed: int, data: str = SYNTHETIC, label: str = "") -> EvolutionConfig:
    """The config of one (variant, seed) job, on the meta-tasks of ``data`` (a data source, or
    synthetic); early stopping is off so budgets are equal. On a data source every variant is
    scored by the brief data fitness (the training the dynamic update unrolls and
    :func:`data_held_out_scores` repeats), whatever a preset's default."""
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    name, overrides, _ = BUDGETS[budget]
    source = {} if data == SYNTHETIC else dict(tasks_source=data, data_label=label, fitness_training="brief")
    return preset(name, **{**overrides, **VARIANTS[variant], **source, "seed": seed, "patience": 0})


REFERENCE_LOSSES = BaselinePopulationLoss.NAMES  # fixed losses scored beside the variants
DATA_REFERENCE_LOSSES = ("ce",)                  # ... on a data source's tasks (K classes: torch's CE)


def held_out_scores(genome: np.ndarray | None, config: EvolutionConfig, baseline: str | None = None) -> dict:
    """Scores of a loss (an MLN ``genome``, or a fixed ``baseline`` loss) on held-out data of ``config.seed``.

    meta-MSE fitness: Eq. 1 on held-out tasks (the same tasks for every variant and reference
    loss of a seed), and accuracy of a classifier trained with the loss (inner-loop SGD
    settings) against the ground truth's labels on their validation points.
    Ranking fitness: ranking consistency on a held-out sample of predictions.
    """
    if config.tasks_source != SYNTHETIC:
        return data_held_out_scores(genome, config, baseline)
    if config.fitness == "ranking":
        if genome is None:
            raise ValueError("reference losses are scored on meta-MSE budgets only")
        with single_thread():
            return dict(held_out_fitness=float(ranking_fitness(genome[None], config, HELD_OUT_GENERATION)[0]))
    held_out = dataclasses.replace(config, tasks_per_eval=HELD_OUT_TASKS, evaluation="fast")
    tasks = generation_tasks(held_out, HELD_OUT_GENERATION)
    if genome is None:
        if baseline is None:
            raise ValueError("held_out_scores needs a genome or a baseline loss")
        loss: PopulationLoss = BaselinePopulationLoss(baseline)
    else:
        loss = TabulatedMLNLoss(torch.as_tensor(genome[None]), config.hidden, config.grid_size)
    mses, accuracy = [], []
    with single_thread():
        for task in tasks:
            classifier = train_population(loss, task, 1, task_kind=config.task_kind, lr=config.inner_lr,
                                          batch=config.inner_batch, epochs=config.inner_epochs)
            mses.append(float(validation_mse(classifier, task)[0]))
            predicted = classifier.logits(task.x_val)[0] > 0
            accuracy.append(float((predicted == (task.p_val > 0.5)).float().mean()))
    fitness = float(fitness_from_mse(torch.tensor([np.mean(mses)]))[0])
    return dict(held_out_fitness=fitness, held_out_accuracy=float(np.mean(accuracy)))


def held_out_data_tasks(config: EvolutionConfig) -> list[DataTask]:
    """The held-out tasks of a data source for ``config.seed``: trained on samples of the search
    part, scored on the held-out part (stream ``data-test``, a generation no run draws)."""
    data = load_task_data(config.tasks_source, config.data_label)
    return [make_data_task(data, config.seed, "data-test", HELD_OUT_GENERATION, i, config.train_size, config.val_size)
            for i in range(HELD_OUT_TASKS)]


def data_held_out_scores(genome: np.ndarray | None, config: EvolutionConfig, baseline: str | None = None) -> dict:
    """:func:`held_out_scores` on a data source: the run's fitness (``task_fitness``) and accuracy
    on :func:`held_out_data_tasks`, of an MLN ``genome`` (:func:`data_task_fitness`: the K-class
    check, then the brief training through Eq. 4's table) or of the ``baseline`` CE."""
    tasks = held_out_data_tasks(config)
    measures = dict.fromkeys((config.task_fitness, "accuracy"))
    with single_thread():
        if genome is not None:
            scores = {m: float(data_task_fitness(genome[None], dataclasses.replace(config, task_fitness=m), tasks)[0])
                      for m in measures}
        elif baseline in DATA_REFERENCE_LOSSES:
            ce = module_logit_gradient(nn.CrossEntropyLoss())
            scores = {m: float(np.mean([train_and_score(ce, t.split, 1, brief_training(config, t), m)[0]
                                        for t in tasks])) for m in measures}
        else:
            raise ValueError(f"on a data source the reference loss is {', '.join(DATA_REFERENCE_LOSSES)}; "
                             f"got {baseline!r}")
    return dict(held_out_fitness=scores[config.task_fitness], held_out_accuracy=scores["accuracy"])


def run_job(budget: str, variant: str, seed: int, out_dir: str, data: str = SYNTHETIC, label: str = "") -> dict:
    """Evolve one (variant, seed), score its kept loss on held-out tasks, write result.json.

    A reference loss (``ce``, ``mse``, ``focal``; on a data source ``ce``) is not evolved: it is
    scored on the same held-out tasks, with the same inner training, as the variants of its seed.
    A result is reused only when it was made on the same ``data``.
    The loss the run kept (chosen on validation tasks) and the best single measurement of the
    run (what earlier versions kept) are both scored, which measures what validation changes.
    """
    run_dir = Path(out_dir) / "runs" / f"{variant}-seed{seed}"
    result_file = run_dir / RESULT_FILE
    if result_file.is_file():
        done = json.loads(result_file.read_text())
        if (done.get("data", SYNTHETIC), done.get("label", "")) == (data, label):
            return done
    if variant in REFERENCE_LOSSES:
        tic = time.perf_counter()
        config = job_config(budget, "hybrid", seed, data, label)
        result = dict(variant=variant, seed=seed, budget=budget, data=data, label=label, reference_loss=True,
                      **held_out_scores(None, config, baseline=variant), seconds=time.perf_counter() - tic)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(result_file, result)
        return result
    config = job_config(budget, variant, seed, data, label)
    tic = time.perf_counter()
    if _resumable(run_dir, config):  # an interrupted job goes on from its last checkpoint
        run = resume(run_dir, progress=None)
    else:
        if run_dir.exists():  # interrupted before its first checkpoint: start again from scratch
            for p in run_dir.iterdir():
                p.unlink()
        run = evolve(config, run_dir, progress=None)
    seconds = time.perf_counter() - tic
    rows = list(run.state.logbook)
    genome = load_loss_record(run_dir / BEST_LOSS_FILE)["genome"].numpy()
    single = held_out_scores(np.asarray(run.state.hall_of_fame[0]), config)
    result = dict(variant=variant, seed=seed, budget=budget, data=data, label=label,
                  best=[r["best"] for r in rows], evals=np.cumsum([r["evals"] for r in rows]).tolist(),
                  failed=int(sum(r["failed"] for r in rows)), final_best=rows[-1]["best"], seconds=seconds,
                  **held_out_scores(genome, config),
                  **{f"{k}_single_measurement": v for k, v in single.items()}, run_scores=run.scores)
    write_json(result_file, result)
    return result


def _resumable(run_dir: Path, config: EvolutionConfig) -> bool:
    """True when ``run_dir`` holds a checkpoint of a run of exactly ``config``."""
    try:
        return (run_dir / MLN_CHECKPOINT_FILE).is_file() and EvolutionConfig.load(run_dir / CONFIG_FILE) == config
    except (ValueError, FileNotFoundError):
        return False


def _run_job_args(args: tuple) -> dict:
    return run_job(*args)


def evaluations_to_reach(result: dict, threshold: float) -> int | None:
    """Fitness evaluations spent when the best first reached ``threshold`` (None: never)."""
    for best, evals in zip(result["best"], result["evals"]):
        if best >= threshold:
            return int(evals)
    return None


MEASURES = ("held_out_fitness", "held_out_accuracy")  # measured alike for variants and reference losses


def paired_against(results: Sequence[dict], reference: Sequence[dict], measure: str) -> dict:
    """``results`` against ``reference`` on ``measure``, paired by seed (a seed's variants and
    reference losses share the held-out tasks): mean difference, bootstrap CI, sign-flip p, A12."""
    ref = {r["seed"]: r[measure] for r in reference}
    pairs = [(r[measure], ref[r["seed"]]) for r in results if r["seed"] in ref]
    values, reference_values = [p[0] for p in pairs], [p[1] for p in pairs]
    return {**dataclasses.asdict(compare_paired(values, reference_values)), "a12": a12(values, reference_values)}


def summarise_variants(results: Sequence[dict], variants: Sequence[str], threshold: float) -> dict:
    """Per-variant (and per-reference-loss) medians and quartiles, and each against the first
    variant (the reference), paired by seed."""
    names = list(dict.fromkeys([*variants, *(r["variant"] for r in results)]))
    by_variant = {v: sorted((r for r in results if r["variant"] == v), key=lambda r: r["seed"]) for v in names}
    measures = [m for m in MEASURES if results and all(m in r for r in results)]
    summary = {}
    for v, rs in by_variant.items():
        if not rs:
            continue
        summary[v] = {"seeds": len(rs), "reference_loss": bool(rs[0].get("reference_loss")),
                      **{f"{k}_median": float(np.median([r[k] for r in rs])) for k in (*measures, "seconds")},
                      **{f"{k}_iqr": [float(np.percentile([r[k] for r in rs], q)) for q in (25, 75)] for k in measures}}
        if not rs[0].get("reference_loss"):
            hit = [e for e in (evaluations_to_reach(r, threshold) for r in rs) if e is not None]
            summary[v] |= {"final_best_median": float(np.median([r["final_best"] for r in rs])),
                           "reached_threshold": f"{len(hit)}/{len(rs)}",
                           "evals_to_threshold_median": float(np.median(hit)) if hit else None,
                           "failed_evaluations": int(sum(r["failed"] for r in rs))}
            if all("held_out_fitness_single_measurement" in r for r in rs):
                summary[v]["validation_vs_single_measurement"] = paired_against(
                    rs, [{**r, "held_out_fitness": r["held_out_fitness_single_measurement"]} for r in rs],
                    "held_out_fitness")
    reference = variants[0]
    comparisons = {v: {k: paired_against(rs, by_variant[reference], k) for k in measures}
                   for v, rs in by_variant.items() if v != reference and rs and by_variant[reference]}
    return dict(reference=reference, summary=summary, comparisons=comparisons)


def plot_results(results: Sequence[dict], variants: Sequence[str], out: Path) -> None:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, v in enumerate(variants):
        rs = [r for r in results if r["variant"] == v and "best" in r]
        if not rs:
            continue
        med, lo, hi = median_iqr([r["best"] for r in rs])
        evals = rs[0]["evals"]
        ax.plot(evals, med, color=f"C{i}", label=f"{v} (n={len(rs)})")
        ax.fill_between(evals, lo, hi, color=f"C{i}", alpha=0.2)
    ax.set_xlabel("fitness evaluations")
    ax.set_ylabel("best fitness of the generation")
    ax.set_title("convergence: median and interquartile band over seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, out / "convergence.png")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    present = list(dict.fromkeys(r["variant"] for r in results))
    ax.boxplot([[r["held_out_fitness"] for r in results if r["variant"] == v] for v in present])
    ax.set_xticks(range(1, len(present) + 1), present)
    ax.set_ylabel("held-out fitness of the final best loss")
    ax.set_title("final fitness over seeds")
    ax.grid(alpha=0.3, axis="y")
    save_figure(fig, out / "final_fitness.png")


def _difference(c: dict, digits: int) -> str:
    """Mean difference with its CI (or alone when the sample is too small for one)."""
    if c["ci_low"] != c["ci_low"]:  # NaN: too few seeds
        return f"{c['mean_difference']:+.{digits}f}"
    return f"{c['mean_difference']:+.{digits}f} [{c['ci_low']:+.{digits}f}, {c['ci_high']:+.{digits}f}]"


def _p(c: dict) -> str:
    return f"n/a (n = {c['n']} < 5)" if c["p_value"] != c["p_value"] else f"{c['p_value']:.3g}"


def data_name(report: dict) -> str:
    """Which meta-tasks a report's runs used: ``synthetic``, or the data source (with its label column)."""
    data, label = report.get("data", SYNTHETIC), report.get("label", "")
    return f"{data} (label {label})" if label else data


def _held_out_line(report: dict) -> str:
    tasks = report["held_out"]["tasks"]
    if report.get("data", SYNTHETIC) == SYNTHETIC:
        return (f"Meta-tasks: synthetic. Held-out: {tasks} tasks per seed that no run trains on, the same for every "
                "row of a seed; reference losses (CE, MSE, focal) are trained there with the same inner SGD as the "
                "evolved ones.")
    return (f"Meta-tasks: resampled splits of the search part of `{data_name(report)}`; fitness: the runs' "
            f"`task_fitness`. Held-out: {tasks} tasks per seed trained on samples of the search part and scored on "
            "the held-out part of the training part (never read by a search's choice), the same for every row of a "
            "seed; CE is trained there with the same brief training as the evolved losses.")


def markdown_report(report: dict) -> str:
    ref = report["reference"]
    counts = sorted({s["seeds"] for s in report["summary"].values()})
    seeds = f"{counts[0]} seeds" if len(counts) == 1 else f"{counts[0]} to {counts[-1]} seeds per row"
    lines = [f"# Variants compared: budget `{report['budget']}` on `{data_name(report)}`, {seeds}", "",
             f"Threshold for 'evaluations to reach': best fitness >= {report['threshold']}. {_held_out_line(report)}",
             "",
             "| variant | seeds | final best (median) | held-out fitness median [IQR] | held-out accuracy median "
             "| reached | evals to threshold (median) | s/run |",
             "|---|---|---|---|---|---|---|---|"]
    for v, s in report["summary"].items():
        lo, hi = s["held_out_fitness_iqr"]
        accuracy = f"{s['held_out_accuracy_median']:.4f}" if "held_out_accuracy_median" in s else "-"
        if s["reference_loss"]:
            lines.append(f"| {v} (reference loss) | {s['seeds']} | - | {s['held_out_fitness_median']:.5f} "
                         f"[{lo:.5f}, {hi:.5f}] | {accuracy} | - | - | {s['seconds_median']:.1f} |")
            continue
        evals = "-" if s["evals_to_threshold_median"] is None else f"{s['evals_to_threshold_median']:.0f}"
        lines.append(f"| {v} | {s['seeds']} | {s['final_best_median']:.5f} | {s['held_out_fitness_median']:.5f} "
                     f"[{lo:.5f}, {hi:.5f}] | {accuracy} | {s['reached_threshold']} | {evals} | "
                     f"{s['seconds_median']:.1f} |")
    if report["comparisons"]:
        lines += ["", f"Against `{ref}`, paired by seed (mean difference row - {ref} with its 95% bootstrap CI; "
                  f"exact two-sided sign-flip test, none below 5 seeds; A12 = P(row > {ref})):", "",
                  "| row | measure | mean difference [95% CI] | p-value | A12 |", "|---|---|---|---|---|"]
        for v, by_measure in report["comparisons"].items():
            for measure, c in by_measure.items():
                lines.append(f"| {v} | {measure} | {_difference(c, 5)} | {_p(c)} | {c['a12']:.2f} |")
    checked = {v: s["validation_vs_single_measurement"] for v, s in report["summary"].items()
               if "validation_vs_single_measurement" in s}
    if checked:
        lines += ["", "What keeping the validated loss instead of the best single measurement changes "
                  "(held-out fitness, kept - single measurement, paired by seed):", "",
                  "| variant | mean difference [95% CI] | p-value |", "|---|---|---|"]
        lines += [f"| {v} | {_difference(c, 5)} | {_p(c)} |" for v, c in checked.items()]
    lines += ["", "![convergence](convergence.png)", "", "![final fitness](final_fitness.png)", ""]
    return "\n".join(lines)


def compare_variants(variants: Sequence[str], seeds: int, budget: str, out_dir: str | Path, *, workers: int = 1,
                     threshold: float | None = None, references: Sequence[str] | None = None,
                     data: str = SYNTHETIC, label: str = "", progress: Callable[[str], None] | None = print) -> dict:
    """Run (or resume) every (variant, seed) job, then write bench.json, report.md and the plots.

    The first variant is the reference the others are tested against; ``threshold``
    defaults to the budget's (:data:`DATA_THRESHOLD` on a data source). ``references`` are fixed
    losses scored beside the variants (default: CE, MSE and focal on meta-MSE budgets, CE on a
    data source, none on ranking budgets). ``data`` (a data source, with a CSV's ``label``
    column) runs every variant on that data's meta-tasks instead of synthetic ones.
    """
    out = Path(out_dir)
    for v in variants:
        job_config(budget, v, 0, data, label)  # refuse unknown names and invalid combinations before anything runs
    on_data = data != SYNTHETIC
    if on_data:
        load_task_data(data, label)  # so is data that cannot be read or used
    if threshold is None:
        threshold = DATA_THRESHOLD if on_data else BUDGETS[budget][2]
    if seeds < 1 or workers < 1:
        raise ValueError("--seeds and --workers must be at least 1")
    known = DATA_REFERENCE_LOSSES if on_data else REFERENCE_LOSSES
    if references is None:
        references = known if job_config(budget, variants[0], 0, data, label).fitness == "meta-mse" else ()
    unknown = [r for r in references if r not in known]
    if unknown:
        raise ValueError(f"unknown reference loss {unknown[0]!r} on {data} tasks; choose from {', '.join(known)}")
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(budget, v, s, str(out), data, label) for s in range(seeds) for v in (*variants, *references)]
    say = progress or (lambda line: None)
    results = []
    if workers == 1:
        iterator: Iterator[dict] = map(_run_job_args, jobs)
        pool = None
    else:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=torch.set_num_threads, initargs=(1,))
        iterator = pool.map(_run_job_args, jobs)
    try:
        for job, result in zip(jobs, iterator):
            results.append(result)
            accuracy = f"accuracy {result['held_out_accuracy']:.4f}  " if "held_out_accuracy" in result else ""
            say(f"{job[1]:>20} seed {job[2]:>2}: held-out fitness {result['held_out_fitness']:.5f}  "
                f"{accuracy}({result['seconds']:.0f} s)")
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return write_variant_report(results, variants, budget, threshold, out, data=data, label=label)


def write_variant_report(results: Sequence[dict], variants: Sequence[str], budget: str, threshold: float,
                         out_dir: str | Path, *, data: str = SYNTHETIC, label: str = "") -> dict:
    """bench.json, report.md and the figures of ``results`` (rows of any seeds; each comparison
    pairs the seeds both sides have); ``data`` names the meta-tasks they ran on."""
    out = Path(out_dir)
    report = dict(budget=budget, data=data, label=label, variants=list(variants),
                  seeds=sorted({r["seed"] for r in results}),
                  threshold=threshold, held_out=dict(generation=HELD_OUT_GENERATION, tasks=HELD_OUT_TASKS),
                  **summarise_variants(results, variants, threshold), results=list(results))
    write_json(out / "bench.json", report)
    write_text(out / "report.md", markdown_report(report))
    plot_results(results, variants, out)
    return report


def finished_results(out_dir: str | Path) -> list[dict]:
    """Every finished job's result.json under ``out_dir/runs``, in a stable order."""
    files = sorted(Path(out_dir).glob(f"runs/*/{RESULT_FILE}"))
    return sorted((json.loads(p.read_text()) for p in files), key=lambda r: (r["seed"], r["variant"]))
