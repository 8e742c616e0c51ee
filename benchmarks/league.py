"""The league: every loss-learning family of the toolbox on the same data, budget and seeds,
meta-tested against cross-entropy and the fixed reference losses.

    python benchmarks/league.py --jobs 2                      # digits and mnist1d, 10 seeds (about an hour on 2 cores)
    python benchmarks/league.py --datasets digits --seeds 5   # fewer
    python benchmarks/league.py --smoke --out /tmp/league     # the whole pipeline in a minute or two

Protocol, per data set D and seed s (the statistical unit):

1. **Evolve** one loss per family with seed s, each allowed at most ``--budget`` classifier
   trainings that score candidates (600 by default):

   - ``mln-hybrid`` / ``mln-es``: the MLN wing on D's own data (``evolve --tasks D``): hybrid
     ES-GA or ES-only, population 12 + 12, two resampled train / validation tasks per
     evaluation, validation accuracy as fitness;
   - ``mln-universal`` / ``mln-kclass``: the Adaptive-MLN method as published, on synthetic
     binary (resp. 10-class) tasks with Algorithm 1's dynamic update: it never sees D;
   - ``edl``: data-free pretraining by ranking consistency (no classifier is trained; its cost
     is in seconds only);
   - ``gp``: efficiency-based GP on D's fitness splits; ``taylorglo``: DEAP's CMA-ES over the
     8 TaylorGLO parameters on the same splits.

   Every search on D sees only D's training part; D's test part is the meta-test's alone.
   **Trainings** are counted the same way for every family, from the run's own files: one
   training is one classifier trained with one candidate loss on one task. A candidate
   rejected by a check before training (GP's functional check, TaylorGLO's invariant check,
   the MLNs' K-class check) or served from a cache (GP) costs none. Counted: the fitness
   trainings (GP: rows of ``evaluations.csv``; TaylorGLO: ``evals - rejected`` per generation
   of its logbook; MLN: evaluated candidates x tasks, less the K-class check's failures), the
   MLNs' validation trainings (the logbook's ``validated`` genomes x validation tasks), and the
   dynamic update's: each meta-gradient step unrolls one classifier per offspring for
   ``update_truncation`` SGD steps on one task, which counts as one training (lambda x
   update steps per generation). The budget caps the scoring trainings; the update's come on
   top and are shown apart. The TaylorGLO and K-class MLN logbooks score a check-passing loss
   whose training diverged like a rejected one, so such a training would not be counted.
2. **Meta-test** each evolved loss under the tuned protocol (its own Adam rate, chosen on a
   validation split of D's training part) with one training run of seed s: mlp3, D's default
   steps. The reference losses (CE, MSE, focal, label smoothing, Poly-1, Baikal, NGL) are tuned
   once and run with the same seeds, so every row is paired with CE seed by seed. Every loss's
   timed runs follow an untimed warm-up in the same process (``deap_mln.metatest.train.warm_up``),
   so a reference row (10 runs in one job) and an evolved row (10 one-run jobs) are timed alike:
   *s / run* is the mean over a row's runs. A rate search that ended at an edge of its grid is
   recorded (``at_edge``) and marked in the table.
3. **Proxy check**: every row's loss is also scored the way the searches scored candidates,
   by a brief training (the GP / TaylorGLO fitness splits of D, 100 Adam steps, seed s): its
   validation accuracy (what the searches maximised) and its test accuracy after training on
   train + validation. A family that wins here and loses in the meta-test has learnt a loss for
   brief training, not for the meta-test's longer one.
4. **Compare** each row with CE: mean paired difference, bootstrap 95% interval, exact
   sign-flip p (none below 5 seeds) and Holm's adjustment over the rows of a data set.

Every job writes its facts to ``league_job.json`` in its directory, with the git commit (and
uncommitted changes) of the code that ran it. The tables are a pure function of those facts
(:func:`league_tables`). Writes ``league.json`` (the tables, every job's facts, the commits
that ran the jobs and the commit of the pass that aggregated them), ``league.md`` and
``league.png`` to ``--out`` (default ``benchmarks/results/league``); the run and meta-test
directories go under ``--out/work/`` (not committed). Interrupted? Run the same command again:
finished jobs are skipped (and re-aggregated).
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness

from deap_mln.io import BEST_LOSS_FILE, CONFIG_FILE, EVALUATIONS_FILE, LOGBOOK_FILE, read_json, write_json
from deap_mln.stats import compare_paired, holm_adjust

DATASETS = ("digits", "mnist1d")
REFERENCES = ("ce", "mse", "focal", "ls", "poly1", "baikal", "ngl")
BUDGET = 600           # classifier trainings that score candidates, per evolution run
MLN_SIZES = dict(mu=12, lambda_=12, tasks_per_eval=2, validation_tasks=2, validation_top=2, test_tasks=0,
                 patience=0, chunk_size=24)
# the brief training every data-driven family scores a candidate with (the GP / TaylorGLO defaults)
BRIEF = dict(steps=100, batch_size=64, lr=0.01, hidden=32)
JOB_FILE = "league_job.json"  # written last: its presence marks a finished job
CODE_PATHS = ("deap_mln", "benchmarks/league.py", "benchmarks/harness.py")  # the code a job's numbers depend on
TRAINING_KINDS = ("fitness", "validation", "update")  # what a family's trainings were for (module docstring)


@dataclass(frozen=True)
class Family:
    description: str
    per_dataset: bool                          # evolved on the meta-test's data set, or once for all
    evolve: Callable[[str, int, int, dict, Path], dict]  # (dataset, seed, budget, brief, out) -> facts


def mln_generations(budget: int, tasks: int) -> int:
    """Generations an MLN run of :data:`MLN_SIZES` can afford: mu x tasks trainings to start,
    then (mu + lambda) x tasks per generation (survivors are re-scored on the generation's new
    tasks) plus at most validation_top x validation_tasks validations."""
    mu, lam = MLN_SIZES["mu"], MLN_SIZES["lambda_"]
    validations = MLN_SIZES["validation_top"] * MLN_SIZES["validation_tasks"]
    return max(1, (budget - mu * tasks - validations) // ((mu + lam) * tasks + validations))


def mln_trainings(run_dir: Path) -> dict[str, int]:
    """Classifier trainings an MLN run spent, by kind, from its ``config.json`` and ``logbook.csv``.

    - fitness: evaluated candidates x tasks per evaluation; on K-class tasks (K > 2) a candidate
      that fails the K-class check is scored ``failed`` untrained, so those are left out (binary
      tasks have no check: a ``failed`` candidate there was trained and diverged);
    - validation: the genomes scored on the validation tasks (logbook ``validated``) x those tasks;
    - update: Algorithm 1's dynamic update unrolls one classifier per offspring on one task
      per meta-gradient step: lambda x steps per generation after the first.

    The ranking fitness (EDL) trains no classifier at all.
    """
    from deap_mln.mln.config import EvolutionConfig
    from deap_mln.mln.run import task_classes

    config = EvolutionConfig.load(run_dir / CONFIG_FILE)
    rows = harness.read_csv_rows(run_dir / LOGBOOK_FILE)
    if config.fitness == "ranking":
        return dict.fromkeys(TRAINING_KINDS, 0)
    checked = task_classes(config) > 2
    evaluated = sum(int(r["evals"]) - (int(r["failed"]) if checked else 0) for r in rows)
    validated = sum(int(r.get("validated") or 0) for r in rows)
    steps = config.update_steps if config.update_rule == "algorithm-1" else 1
    per_evaluation, per_validation = config.tasks_per_eval, config.validation_tasks
    if config.fitness_training == "faithful":  # splits of the search part instead of tasks, each at every rate tried
        rates = evaluation_trainings(config, config.tasks_source)
        per_evaluation, per_validation = config.fitness_splits * rates, config.validation_tasks * rates
    return dict(fitness=evaluated * per_evaluation, validation=validated * per_validation,
                update=(len(rows) - 1) * config.lambda_ * steps if config.dynamic_update else 0)


def evaluation_trainings(config: Any, source: str) -> int:
    """Trainings one evaluation of a candidate costs on one split: 1, except under the faithful fitness
    with a rate search (one training per rate tried); a config of any family (its FaithfulFields)."""
    if config.fitness_training != "faithful":
        return 1
    from deap_mln.training.fitness import candidate_rates

    return len(candidate_rates(config.training_spec(source), config.faithful()))


def gp_trainings(run_dir: Path, per_evaluation: int = 1) -> dict[str, int]:
    """A GP run's trainings: one row of ``evaluations.csv`` per evaluated tree (children that fail
    the functional check and trees served from the fitness cache have none), each ``per_evaluation``
    trainings: 1 under the league's brief fitness (and TaylorGLO's below); a faithful fitness over
    several splits or with a rate search trains more per evaluation."""
    return dict(fitness=len(harness.read_csv_rows(run_dir / EVALUATIONS_FILE)) * per_evaluation)


def taylor_trainings(run_dir: Path, per_evaluation: int = 1) -> dict[str, int]:
    """A TaylorGLO run's trainings: per generation, the vectors evaluated (``evals``, lambda) less
    those the invariant check rejected without training (``rejected``), each ``per_evaluation``
    trainings (as :func:`gp_trainings`)."""
    rows = harness.read_csv_rows(run_dir / LOGBOOK_FILE)
    return dict(fitness=sum(int(r["evals"]) - int(r["rejected"]) for r in rows) * per_evaluation)


def training_facts(by_kind: dict[str, int]) -> dict:
    """The facts an evolution job records about its trainings: the total and the split by kind."""
    return dict(trainings=sum(by_kind.values()), trainings_by_kind=by_kind)


def _evolve_mln(preset_name: str, algorithm: str, source: str | None) -> Callable[[str, int, int, dict, Path], dict]:
    def run(dataset: str, seed: int, budget: int, brief: dict, out: Path) -> dict:
        from deap_mln.mln.config import preset
        from deap_mln.mln.run import evolve

        overrides: dict[str, Any] = dict(MLN_SIZES, algorithm=algorithm, seed=seed,
                                         generations=mln_generations(budget, MLN_SIZES["tasks_per_eval"]))
        if source == "data":
            overrides |= dict(tasks_source=dataset, task_steps=brief["steps"], inner_batch=brief["batch_size"],
                              task_lr=brief["lr"], task_hidden=brief["hidden"])
        evolve(preset(preset_name, **overrides), out, backend="serial", progress=lambda line: None)
        return training_facts(mln_trainings(out)) | dict(generations=overrides["generations"])
    return run


def _evolve_edl(dataset: str, seed: int, budget: int, brief: dict, out: Path) -> dict:
    from deap_mln.mln.config import preset
    from deap_mln.mln.run import evolve

    config = preset("edl", seed=seed)
    evolve(config, out, backend="serial", progress=lambda line: None)
    return training_facts(mln_trainings(out)) | dict(generations=config.generations)


def _evolve_gp(dataset: str, seed: int, budget: int, brief: dict, out: Path) -> dict:
    from deap_mln.gp.config import gp_preset
    from deap_mln.gp.run import evolve_gp

    # max_evaluations stops after the generation that reaches it: the table reports what was spent
    config = gp_preset("quick", seed=seed, dataset=dataset, generations=1_000, max_evaluations=budget, **brief)
    evolve_gp(config, out, backend="serial", progress=lambda line: None)
    return training_facts(gp_trainings(out)) | dict(generations=len(harness.read_csv_rows(out / LOGBOOK_FILE)) - 1)


def _evolve_taylor(dataset: str, seed: int, budget: int, brief: dict, out: Path) -> dict:
    from deap_mln.taylor.config import taylor_preset
    from deap_mln.taylor.run import evolve_taylor

    lambda_ = taylor_preset("quick").lambda_
    config = taylor_preset("quick", seed=seed, dataset=dataset, generations=max(1, budget // lambda_), **brief)
    evolve_taylor(config, out, backend="serial", progress=lambda line: None)
    return training_facts(taylor_trainings(out)) | dict(generations=config.generations)


FAMILIES: dict[str, Family] = {
    "mln-hybrid": Family("MLN, hybrid ES-GA on the data set's own splits", True, _evolve_mln("quick", "hybrid", "data")),
    "mln-es": Family("MLN, ES-only on the data set's own splits", True, _evolve_mln("quick", "es", "data")),
    "mln-universal": Family("Adaptive-MLN (Algorithm 1) on synthetic binary tasks", False,
                            _evolve_mln("quick", "hybrid", None)),
    "mln-kclass": Family("Adaptive-MLN (Algorithm 1) on synthetic 10-class tasks", False,
                         _evolve_mln("kclass", "hybrid", None)),
    "edl": Family("EDL: data-free ranking pretraining, chaotic ES", False, _evolve_edl),
    "gp": Family("efficiency-based GP on the data set's fitness splits", True, _evolve_gp),
    "taylorglo": Family("TaylorGLO: DEAP CMA-ES on the 8 Taylor parameters", True, _evolve_taylor),
}


# ------------------------------------------------------------------------------ jobs
#
# Each job's facts name the job (``job``: evolution, meta-test or proxy, and its family or row,
# data set and seeds), so the tables can be computed from the facts alone.


def _finished(out: Path, identity: dict) -> dict | None:
    """The facts of a finished job, named by ``identity`` (facts from older code may lack the names)."""
    path = out / JOB_FILE
    return read_json(path) | identity if path.is_file() else None


def _fresh(out: Path) -> None:
    """An interrupted job leaves a partial directory: start it again from nothing."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)


def evolution_job(family: str, dataset: str, seed: int, budget: int, brief: dict, out: Path) -> dict:
    """Evolve ``family``'s loss with ``seed`` into ``out`` (one thread); facts about the run."""
    identity = dict(job="evolution", family=family, dataset=dataset, seed=seed)
    if (done := _finished(out, identity)) is not None:
        return done
    import torch

    torch.set_num_threads(1)
    _fresh(out)
    code = harness.git_state(CODE_PATHS)
    tic = time.process_time()
    wall = time.perf_counter()
    facts = FAMILIES[family].evolve(dataset, seed, budget, brief, out)
    facts |= dict(identity, budget=budget, brief=brief, cpu_seconds=round(time.process_time() - tic, 2),
                  wall_seconds=round(time.perf_counter() - wall, 2), **code)
    write_json(out / JOB_FILE, facts)
    return facts


def meta_test_job(row: str, loss: str, dataset: str, seeds: list[int], out: Path) -> dict:
    """Meta-test one loss (the table's row ``row``) under the tuned protocol on ``seeds`` (one
    thread): its test accuracy by seed, chosen rate (and whether its search ended at an edge of
    the grid) and seconds per run, each run timed after the meta-test's untimed warm-up."""
    identity = dict(job="meta-test", row=row, loss=loss, dataset=dataset, seeds=seeds)
    if (done := _finished(out, identity)) is not None:
        return done
    from deap_mln.metatest.run import meta_test

    _fresh(out)
    code = harness.git_state(CODE_PATHS)
    result = meta_test([loss], dataset, out, model="mlp3", seeds=len(seeds), first_seed=seeds[0],
                       protocol="tuned", threads=1)
    facts = dict(identity, **meta_test_facts(result), **code)
    write_json(out / JOB_FILE, facts)
    return facts


def meta_test_facts(result: Any) -> dict:
    """What a table needs of a one-loss meta-test (:class:`deap_mln.metatest.run.MetaTestResult`):
    the loss's label, rate, whether its rate search ended at an edge, the K-class check's verdict,
    test accuracy by seed, mean seconds per run (each after the untimed warm-up), warnings, seconds."""
    (label, lr), = result.run_info["learning_rates"].items()
    search = result.run_info.get("tuning", {}).get("per_loss", {}).get(label, {})
    check = result.run_info.get("loss_checks", {}).get(label, {})  # a reference loss is not checked
    return dict(label=label, lr=lr, at_edge=bool(search.get("at_edge", False)),
                check_failed=not check.get("ok", True), warmed_up=True,
                accuracy={str(r.seed): r.final_accuracy for r in result.records},
                seconds_per_run=statistics.mean(r.seconds for r in result.records),
                warnings=result.warnings, seconds=round(result.seconds, 2))


def proxy_job(row: str, loss: str, dataset: str, seeds: list[int], brief: dict, out: Path) -> dict:
    """Brief-training scores of one loss (the searches' fitness) by seed: validation accuracy
    after training on D's fitness split, and test accuracy after training on train + validation."""
    identity = dict(job="proxy", row=row, loss=loss, dataset=dataset, seeds=seeds)
    if (done := _finished(out, identity)) is not None:
        return done
    import torch

    from deap_mln.metatest.baselines import resolve_loss
    from deap_mln.training.splits import SplitTraining, split_accuracy

    torch.set_num_threads(1)
    _fresh(out)
    code = harness.git_state(CODE_PATHS)
    module = resolve_loss(loss).module
    settings = {s: SplitTraining(dataset=dataset, seed=s, **brief) for s in seeds}
    facts = dict(identity, validation={str(s): split_accuracy(module, settings[s]) for s in seeds},
                 test={str(s): split_accuracy(module, settings[s], final=True) for s in seeds}, **code)
    write_json(out / JOB_FILE, facts)
    return facts


def run_jobs(jobs: list[tuple[Callable, tuple]], workers: int) -> list[Any]:
    """Run ``(function, args)`` jobs, in ``workers`` spawned processes when more than one."""
    if workers <= 1:
        return [fn(*args) for fn, args in jobs]
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(fn, *args) for fn, args in jobs]
        return [f.result() for f in futures]


# ------------------------------------------------------------------------------ the league


def evolution_dir(work: Path, family: str, dataset: str, seed: int) -> Path:
    return work / "runs" / family / (dataset if FAMILIES[family].per_dataset else "universal") / f"seed-{seed}"


def run_league(datasets: list[str], families: list[str], seeds: list[int], budget: int, brief: dict,
               work: Path, workers: int) -> list[dict]:
    """Every job of the league (skipping finished ones); their facts."""
    evolutions = {(f, d, s): evolution_dir(work, f, d, s) for f in families for d in datasets for s in seeds}
    unique = {path: key for key, path in evolutions.items()}  # a universal loss is evolved once for all data sets
    harness.say(f"league: {len(unique)} evolution runs, budget {budget} trainings each")
    reference_jobs = [(meta_test_job, (ref, ref, d, seeds, work / "meta" / d / "references" / ref))
                      for d in datasets for ref in REFERENCES]
    evolution_jobs = [(evolution_job, (f, d, s, budget, brief, path)) for path, (f, d, s) in unique.items()]
    done = run_jobs(evolution_jobs + reference_jobs, workers)
    tests = [(meta_test_job, (f, str(path / BEST_LOSS_FILE), d, [s], work / "meta" / d / f / f"seed-{s}"))
             for (f, d, s), path in evolutions.items()]
    harness.say(f"league: {len(tests)} meta-tests of evolved losses")
    done += run_jobs(tests, workers)
    proxies = [(proxy_job, (ref, ref, d, seeds, brief, work / "proxy" / d / "references" / ref))
               for d in datasets for ref in REFERENCES]
    proxies += [(proxy_job, (f, str(path / BEST_LOSS_FILE), d, [s], brief, work / "proxy" / d / f / f"seed-{s}"))
                for (f, d, s), path in evolutions.items()]
    harness.say(f"league: brief-training scores of {len(proxies)} losses")
    return done + run_jobs(proxies, workers)


def _by_seed(jobs: list[dict], field: str, seeds: list[int]) -> list[float]:
    """``field`` (a dict by seed) of the jobs that measured a row, merged, in the order of ``seeds``."""
    merged = {seed: value for job in jobs for seed, value in job[field].items()}
    return [merged[str(s)] for s in seeds]


def league_tables(jobs: Sequence[dict], datasets: Sequence[str], references: Sequence[str], families: Sequence[str],
                  seeds: Sequence[int]) -> dict[str, list[dict]]:
    """Per data set, one row per reference loss and family: accuracies by seed, the comparison
    with CE (paired by seed) and the compute spent; a pure function of the jobs' facts.

    Seeds are taken in increasing order, so neither the order of ``seeds`` nor that of ``jobs``
    changes a number (the bootstrap resamples by position). A row's runs may come from one job
    (a reference loss: all seeds) or several (an evolved loss: one job per seed); *s / run*
    is the mean over its runs, its trainings the mean over its evolution runs.
    """
    seeds = sorted(seeds)
    runs = {(j["family"], j["dataset"] if FAMILIES[j["family"]].per_dataset else None, j["seed"]): j
            for j in jobs if j["job"] == "evolution"}
    tables: dict[str, list[dict]] = {}
    for d in datasets:
        def measured(kind: str, name: str, dataset: str = d) -> list[dict]:
            return [j for j in jobs if j["job"] == kind and j["dataset"] == dataset and j["row"] == name]

        rows = []
        for name in [*references, *families]:
            tested, brief = measured("meta-test", name), measured("proxy", name)
            row = dict(name=name, kind="reference" if name in references else "evolved",
                       accuracy=_by_seed(tested, "accuracy", seeds), lr=[j["lr"] for j in tested],
                       seconds_per_run=(sum(j["seconds_per_run"] * len(j["seeds"]) for j in tested)
                                        / sum(len(j["seeds"]) for j in tested)),
                       warmed_up=all(j.get("warmed_up", False) for j in tested),
                       rate_searches=len(tested), at_edge=sum(bool(j.get("at_edge", False)) for j in tested),
                       # older jobs' only warnings were the K-class check's
                       check_failed=any(j.get("check_failed", bool(j["warnings"])) for j in tested),
                       warnings=sorted({w for j in tested for w in j["warnings"]}),
                       brief_validation=_by_seed(brief, "validation", seeds), brief_test=_by_seed(brief, "test", seeds),
                       trainings=None, trainings_by_kind=None, evolution_cpu_seconds=None)
            if name in families:
                spent = [runs[(name, d if FAMILIES[name].per_dataset else None, s)] for s in seeds]
                row |= dict(trainings=statistics.mean(r["trainings"] for r in spent),
                            trainings_by_kind={k: statistics.mean(r.get("trainings_by_kind", {}).get(k, 0) for r in spent)
                                               for k in TRAINING_KINDS},
                            evolution_cpu_seconds=statistics.mean(r["cpu_seconds"] for r in spent))
            rows.append(row)
        ce = next(r for r in rows if r["name"] == "ce")
        for row in rows:
            paired = compare_paired(row["accuracy"], ce["accuracy"])
            row |= dict(mean=statistics.mean(row["accuracy"]),
                        sd=statistics.stdev(row["accuracy"]) if len(seeds) > 1 else math.nan,
                        difference=paired.mean_difference, ci=[paired.ci_low, paired.ci_high],
                        p=math.nan if row is ce else paired.p_value, test=paired.test,
                        wins=sum(a > c for a, c in zip(row["accuracy"], ce["accuracy"], strict=True)),
                        losses=sum(a < c for a, c in zip(row["accuracy"], ce["accuracy"], strict=True)),
                        time_vs_ce=row["seconds_per_run"] / ce["seconds_per_run"],
                        brief_validation_mean=statistics.mean(row["brief_validation"]),
                        brief_test_mean=statistics.mean(row["brief_test"]))
        for row, adjusted in zip(rows, holm_adjust([r["p"] for r in rows]), strict=True):
            row["p_holm"] = adjusted
        tables[d] = rows
    return tables


def _number(value: float | None, fmt: str) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def _row_name(row: dict) -> str:
    """The row's name with its marks: (!) a loss flagged by the K-class check, (edge) a rate search
    that ended at an edge of its grid (of k / n searches when the row had several)."""
    marks = " (!)" if row.get("check_failed", bool(row["warnings"])) else ""  # older tables: warnings
    if row.get("at_edge"):
        searches = row.get("rate_searches", 1)
        marks += " (edge)" if searches == 1 else f" (edge {row['at_edge']}/{searches})"
    return row["name"] + marks


def _trainings(row: dict) -> str:
    """Mean trainings per run, with the dynamic update's part when it had one."""
    update = (row.get("trainings_by_kind") or {}).get("update", 0)
    return _number(row["trainings"], ".0f") + (f" ({update:.0f} upd.)" if update else "")


def markdown_table(rows: list[dict], n: int) -> str:
    lines = [f"| loss | kind | mean test acc. (sd) | vs CE [95% CI] | wins / losses of {n} | p | p (Holm) "
             "| Adam lr | trainings | evolution CPU s | s / run (x CE) | brief: val. / test |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: -r["mean"]):
        lr = r["lr"][0] if len(set(r["lr"])) == 1 else f"{min(r['lr']):g}-{max(r['lr']):g}"
        cold = "" if r.get("warmed_up", True) else "*"
        lines.append(
            f"| {_row_name(r)} | {r['kind']} | {r['mean']:.4f} ({_number(r['sd'], '.4f')}) "
            f"| {r['difference']:+.4f} [{_number(r['ci'][0], '+.4f')}, {_number(r['ci'][1], '+.4f')}] "
            f"| {r['wins']} / {r['losses']} | {_number(r['p'], '.3f')} | {_number(r['p_holm'], '.3f')} | {lr} "
            f"| {_trainings(r)} | {_number(r['evolution_cpu_seconds'], '.1f')} "
            f"| {r['seconds_per_run']:.2f}{cold} ({r['time_vs_ce']:.2f}x) "
            f"| {r['brief_validation_mean']:.4f} / {r['brief_test_mean']:.4f} |")
    return "\n".join(lines)


def plot_league(tables: dict[str, list[dict]], path: Path) -> None:
    """Per data set, each row's paired difference from CE: one dot per seed, the mean and its interval."""
    from deap_mln.plotting import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(tables), figsize=(5.5 * len(tables), 5.5), squeeze=False)
    for ax, (dataset, rows) in zip(axes[0], tables.items(), strict=True):
        ce = next(r for r in rows if r["name"] == "ce")["accuracy"]
        ordered = sorted(rows, key=lambda r: r["difference"])
        for y, row in enumerate(ordered):
            colour = "tab:blue" if row["kind"] == "evolved" else "tab:grey"
            diffs = [a - c for a, c in zip(row["accuracy"], ce, strict=True)]
            ax.scatter(diffs, [y] * len(diffs), s=10, alpha=0.35, color=colour)
            if not math.isnan(row["ci"][0]):
                ax.plot(row["ci"], [y, y], color=colour, lw=2)
            ax.scatter([row["difference"]], [y], marker="D", color=colour, zorder=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(range(len(ordered)), [r["name"] for r in ordered])
        ax.set_xlabel("test accuracy minus CE's, same seed")
        ax.set_title(f"{dataset}: evolved (blue) and fixed (grey) losses")
    fig.tight_layout()
    save_figure(fig, path)


def plot_proxy(tables: dict[str, list[dict]], path: Path) -> None:
    """Per data set, each row's gain over CE after the searches' brief training (x) against its
    gain in the meta-test (y): rows far right of the diagonal won the proxy, not the test."""
    from deap_mln.plotting import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(tables), figsize=(5.5 * len(tables), 5), squeeze=False)
    for ax, (dataset, rows) in zip(axes[0], tables.items(), strict=True):
        ce = next(r for r in rows if r["name"] == "ce")
        for row in rows:
            x, y = row["brief_test_mean"] - ce["brief_test_mean"], row["difference"]
            ax.scatter([x], [y], color="tab:blue" if row["kind"] == "evolved" else "tab:grey")
            ax.annotate(row["name"], (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
        low = min(ax.get_xlim()[0], ax.get_ylim()[0])
        high = max(ax.get_xlim()[1], ax.get_ylim()[1])
        ax.plot([low, high], [low, high], color="black", lw=0.6, ls=":")
        ax.axhline(0, color="black", lw=0.6)
        ax.axvline(0, color="black", lw=0.6)
        ax.set_xlabel("brief training: test accuracy minus CE's")
        ax.set_ylabel("meta-test: test accuracy minus CE's")
        ax.set_title(f"{dataset}: the searches' proxy against the meta-test")
    fig.tight_layout()
    save_figure(fig, path)


def job_seconds(jobs: Sequence[dict]) -> float:
    """Seconds the league's evolutions and meta-tests took, summed over jobs (each on one thread)."""
    return (sum(j["wall_seconds"] for j in jobs if j["job"] == "evolution")
            + sum(j["seconds"] for j in jobs if j["job"] == "meta-test"))


def job_commits(jobs: Sequence[dict]) -> list[dict]:
    """The commits whose code ran the jobs, most jobs first: each with its number of jobs, how many
    of them ran with uncommitted changes and which (``git status --porcelain`` lines, all of them
    together); commit None: not recorded (jobs of older code)."""
    commits: dict[str | None, dict] = {}
    for job in jobs:
        entry = commits.setdefault(job.get("git_commit"), dict(git_commit=job.get("git_commit"), jobs=0,
                                                                dirty_jobs=0, git_dirty=set()))
        entry["jobs"] += 1
        entry["dirty_jobs"] += bool(job.get("git_dirty"))
        entry["git_dirty"] |= set(job.get("git_dirty") or [])
    return [dict(entry, git_dirty=sorted(entry["git_dirty"]))
            for entry in sorted(commits.values(), key=lambda e: -e["jobs"])]


def commits_line(commits: list[dict]) -> str:
    """One sentence: which code ran the jobs (the changed files are in ``league.json``)."""
    def one(entry: dict) -> str:
        name = f"commit {entry['git_commit'][:10]}" if entry["git_commit"] else "code not recorded"
        dirty = f", {entry['dirty_jobs']} with uncommitted changes" if entry["dirty_jobs"] else ""
        return f"{name} ({entry['jobs']} jobs{dirty})"
    changed = " (the changed files are listed in league.json)" if any(e["dirty_jobs"] for e in commits) else ""
    return "Jobs ran at " + "; ".join(one(e) for e in commits) + changed + "."


def proxy_agreement(rows: list[dict]) -> float:
    """Spearman correlation, over the rows, of the brief training's mean test accuracy with the
    meta-test's: near 1 when the searches' fitness ranks losses as the meta-test does."""
    from scipy.stats import spearmanr

    return float(spearmanr([r["brief_test_mean"] for r in rows], [r["mean"] for r in rows]).statistic)


def caption(n: int, tables: dict[str, list[dict]]) -> str:
    """What the table's columns and marks mean, for ``n`` seeds."""
    from deap_mln.mln.config import EvolutionConfig

    unrolled = EvolutionConfig().update_truncation  # no MLN preset of the league changes it
    text = ("Each evolved row: one loss per seed (evolved with that seed), meta-tested once with the same seed "
            "at its own tuned Adam rate; reference rows tuned once, same seeds. *vs CE*: mean paired difference "
            "with a bootstrap 95% interval; *p*: exact sign-flip test (smallest possible "
            f"{2 / 2 ** n:.4f} at {n} seeds), *p (Holm)*: adjusted over the rows of the data set. "
            "*trainings*: classifier trainings the evolution spent (mean per run), counted alike for every "
            "family: one classifier trained with one candidate loss on one task, for the fitness or the "
            "validation of candidates; a candidate rejected by a check before training or served from a cache "
            "costs none (nor, as the logbooks cannot tell it from a rejected one, would a TaylorGLO or K-class MLN "
            "loss that passed the check and diverged in training). *upd.*: the part spent by Algorithm 1's dynamic "
            "update, each meta-gradient step "
            f"counting one training per offspring (a classifier unrolled for {unrolled} SGD steps on one task and "
            "differentiated through); the budget caps the other trainings. *evolution CPU s*: one thread. "
            "*s / run*: mean wall seconds of one meta-test run, every loss's runs timed after an untimed warm-up "
            f"in the same process (a reference row: {n} runs in one job; an evolved row: {n} one-run jobs). "
            "*brief*: mean accuracy after the searches' brief training (Adam steps above, on the "
            "fitness split, seed s), on the validation part (what the searches maximised) and on the test part "
            "(trained on train + validation). (!): a loss flagged by the K-class check. (edge): the learning-rate "
            "search ended with its best rate at an edge of the grid it tried (of k / n searches for an evolved "
            "row): the loss's best rate may lie beyond, and its accuracy may understate it.")
    if any(not r.get("warmed_up", True) for rows in tables.values() for r in rows):
        text += " \\*: seconds from jobs of older code, timed without the warm-up (their first run pays one-off costs)."
    return text


def write_report(tables: dict[str, list[dict]], jobs: list[dict], args: argparse.Namespace, out: Path,
                 seconds: float) -> str:
    n = len(args.seeds)
    commits = job_commits(jobs)
    aggregation = harness.git_state(CODE_PATHS)
    parts = [f"# League: {', '.join(args.datasets)}, {n} seeds, budget {args.budget} trainings of "
             f"{args.brief_steps} steps", "",
             f"`{harness.command_line(__file__)}` — this pass {seconds / 60:.1f} min with {args.jobs} job(s) in "
             f"parallel (jobs finished by an earlier pass are reused); the jobs themselves took "
             f"{job_seconds(jobs) / 60:.1f} min of one core. {commits_line(commits)} This pass: "
             f"{harness.machine_line(harness.machine_info() | aggregation)}", "",
             caption(n, tables), ""]
    for dataset, rows in tables.items():
        parts += [f"## {dataset}", "", markdown_table(rows, n), "",
                  f"Rank agreement of the brief training's test accuracy with the meta-test's over these "
                  f"{len(rows)} rows: Spearman {proxy_agreement(rows):+.2f}.", ""]
    text = "\n".join(parts)
    harness.write_results(out / "league", dict(
        datasets=args.datasets, families=args.families, references=list(REFERENCES), seeds=args.seeds,
        budget=args.budget, brief=dict(BRIEF, steps=args.brief_steps), seconds=seconds,
        machine=harness.machine_info(), commits=dict(aggregation=aggregation, jobs=commits), tables=tables,
        jobs=jobs, families_described={f: FAMILIES[f].description for f in args.families}), text)
    plot_league(tables, out / "league.png")
    plot_proxy(tables, out / "league_proxy.png")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--families", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0 .. N-1 (default 10)")
    parser.add_argument("--budget", type=int, default=BUDGET, help=f"trainings per evolution run (default {BUDGET})")
    parser.add_argument("--jobs", type=int, default=1, help="jobs in parallel processes, one thread each")
    parser.add_argument("--brief-steps", type=int, default=BRIEF["steps"],
                        help=f"steps of the brief training the searches score with (default {BRIEF['steps']})")
    parser.add_argument("--smoke", action="store_true", help="2 seeds, budget 60, digits: checks the pipeline")
    parser.add_argument("--out", type=Path, default=harness.RESULTS_DIR / "league")
    args = parser.parse_args()
    if args.smoke:
        args.seeds, args.budget, args.datasets = 2, 60, ["digits"]
    if min(args.seeds, args.budget, args.jobs, args.brief_steps) < 1:
        parser.error("--seeds, --budget, --jobs and --brief-steps must be at least 1")
    brief = dict(BRIEF, steps=args.brief_steps)
    args.seeds = list(range(args.seeds))
    tic = time.perf_counter()
    jobs = run_league(args.datasets, args.families, args.seeds, args.budget, brief, args.out / "work", args.jobs)
    tables = league_tables(jobs, args.datasets, REFERENCES, args.families, args.seeds)
    harness.say(write_report(tables, jobs, args, args.out, time.perf_counter() - tic))
    harness.say(json.dumps({d: {r["name"]: round(r["mean"], 4) for r in rows} for d, rows in tables.items()}))


if __name__ == "__main__":
    main()
