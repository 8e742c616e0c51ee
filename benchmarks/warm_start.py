"""MLN warm start: a population distilled from known losses against a random one, at equal budget.

    python benchmarks/warm_start.py                 # digits, 5 seeds, both arms, meta-tests (~10 min of one core)
    python benchmarks/warm_start.py --seeds 10      # more seeds (finished jobs are reused)
    python benchmarks/warm_start.py --smoke --out /tmp/warm_start   # the pipeline in a minute

Protocol, per seed s (the statistical unit) and arm (``initial_population`` ``random`` or
``known``, :mod:`deap_mln.mln.warm_start`):

1. **Evolve** the MLN hybrid on digits as the league does (``benchmarks/league.py``: population
   12 + 12, two resampled train / validation tasks per evaluation, two validation tasks for the
   best two survivors, its brief training of 100 Adam steps, generations sized for its budget of
   600 trainings), no dynamic update, with 4 test tasks scored once at the end. Both arms run the
   same generations with the same seed; the known arm first distils its four networks (timed
   apart: CPU seconds, not trainings).
2. **Read** the kept loss's validation fitness (what chose it) and its held-out test score from
   the run's ``scores.json``, and the logbook's generation 0 (how good the start was).
3. **Meta-test** each kept loss under the tuned protocol (its own Adam rate, mlp3, digits'
   default steps, meta-test seeds 0-2; their mean is the run's score), with CE on the same seeds
   as a reference.
4. **Compare** known with random seed by seed (:func:`deap_mln.stats.compare_paired`: mean
   difference, bootstrap 95% interval, exact sign-flip p; at 5 seeds the smallest possible p is
   2 / 2^5 = 0.0625, so 5 seeds cannot reach p < 0.05).

Each finished job writes a small JSON file under ``--out/jobs/`` (committed) with the git state
of the code that ran it; run directories go under ``--out/work/`` (not committed). Interrupted?
Run the same command again: finished jobs are skipped. Writes ``warm_start.json`` and
``warm_start.md`` to ``--out`` (default ``benchmarks/results/warm_start``), a pure function of
the job files (:func:`summarise`).
"""
from __future__ import annotations

import argparse
import math
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import harness
import league

from deap_mln.io import BEST_LOSS_FILE, LOGBOOK_FILE, SCORES_FILE, read_json, write_json
from deap_mln.stats import compare_paired, holm_adjust, min_sign_flip_p

ARMS = ("random", "known")
DATASET = "digits"
TEST_TASKS = 4               # held-out test tasks that score each kept loss once
META_SEEDS = 3               # meta-test seeds per kept loss (0 .. META_SEEDS - 1)
CODE_PATHS = ("deap_mln", "benchmarks/warm_start.py", "benchmarks/league.py", "benchmarks/harness.py")
OUT = harness.RESULTS_DIR / "warm_start"
MEASURES = (("validation", "kept loss's validation fitness (digits, 2 fixed tasks)"),
            ("test", "kept loss's held-out test score (4 tasks, scores.json)"),
            ("meta_test", "meta-test accuracy (tuned, mlp3, mean over the meta-test seeds)"),
            ("start_validation", "generation 0: best validation fitness of the initial population"))
END_MEASURES = ("validation", "test", "meta_test")  # what a run ends with: Holm's adjustment runs over these


def evolution_config(arm: str, seed: int, budget: int, generations: int | None = None) -> Any:
    """The league's MLN hybrid on digits (its sizes, brief training and budget) with ``arm``'s start."""
    from deap_mln.mln.config import preset

    brief = league.BRIEF
    gens = generations or league.mln_generations(budget, league.MLN_SIZES["tasks_per_eval"])
    return preset("quick", **dict(league.MLN_SIZES, test_tasks=TEST_TASKS, algorithm="hybrid", seed=seed,
                                  generations=gens, tasks_source=DATASET, task_steps=brief["steps"],
                                  inner_batch=brief["batch_size"], task_lr=brief["lr"], task_hidden=brief["hidden"],
                                  dynamic_update=False, initial_population=arm))


def _fresh(path: Path, job_file: Path) -> None:
    """An interrupted job leaves a partial run directory: start it again from nothing."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    job_file.parent.mkdir(parents=True, exist_ok=True)


def evolution_job(arm: str, seed: int, budget: int, generations: int | None, job_file: Path, work: Path) -> dict:
    """Evolve one run (one thread) into ``work``; its facts, also written to ``job_file``."""
    if job_file.is_file():
        return read_json(job_file)
    import torch

    from deap_mln.mln.run import evolve
    from deap_mln.mln.toolbox import eq4_classes
    from deap_mln.mln.warm_start import TARGETS, distil_genome

    torch.set_num_threads(1)
    _fresh(work, job_file)
    code = harness.git_state(CODE_PATHS)
    config = evolution_config(arm, seed, budget, generations)
    tic = time.process_time()
    if arm == "known":  # distilled here first so that their cost is seen apart; the run reuses them (cached)
        for target in TARGETS:
            distil_genome(target, config.hidden, eq4_classes(config), config.seed)
    distil = time.process_time() - tic
    evolve(config, work, backend="serial", progress=lambda line: None)
    rows = harness.read_csv_rows(work / LOGBOOK_FILE)
    scores = read_json(work / SCORES_FILE)
    facts = dict(job="evolution", arm=arm, seed=seed, dataset=DATASET, budget=budget, generations=config.generations,
                 validation=scores["kept"]["validation"], test=scores["kept"]["test"],
                 fitness=scores["kept"]["fitness"], start_best=float(rows[0]["best"]),
                 start_validation=float(rows[0]["validation"]), start_failed=int(rows[0]["failed"]),
                 validation_curve=[float(r["validated_best"]) for r in rows],
                 failed=sum(int(r["failed"]) for r in rows),
                 **league.training_facts(league.mln_trainings(work)),
                 distillation_cpu_seconds=round(distil, 2),
                 evolution_cpu_seconds=round(time.process_time() - tic - distil, 2), **code)
    write_json(job_file, facts)
    return facts


def meta_test_job(row: str, loss: str, seeds: int, job_file: Path, work: Path) -> dict:
    """Meta-test ``loss`` under the tuned protocol on seeds 0 .. seeds-1 (one thread)."""
    if job_file.is_file():
        return read_json(job_file)
    from deap_mln.metatest.run import meta_test

    _fresh(work, job_file)
    code = harness.git_state(CODE_PATHS)
    tic = time.process_time()
    result = meta_test([loss], DATASET, work, model="mlp3", seeds=seeds, protocol="tuned", threads=1)
    (label, lr), = result.run_info["learning_rates"].items()
    accuracy = {str(r.seed): r.final_accuracy for r in result.records}
    facts = dict(job="meta-test", row=row, lr=lr, accuracy=accuracy, mean=statistics.mean(accuracy.values()),
                 warnings=result.warnings, cpu_seconds=round(time.process_time() - tic, 2), **code)
    write_json(job_file, facts)
    return facts


def run_all(out: Path, seeds: list[int], budget: int, generations: int | None, meta_seeds: int, workers: int) -> list[dict]:
    """Every job (finished ones are read back), evolutions first, then the meta-tests."""
    jobs, work = out / "jobs", out / "work"
    evolutions = [(evolution_job, (arm, s, budget, generations, jobs / "evolution" / f"{arm}-seed-{s}.json",
                                   work / "runs" / arm / f"seed-{s}")) for s in seeds for arm in ARMS]
    harness.say(f"warm start: {len(evolutions)} evolution runs")
    done = league.run_jobs(evolutions, workers)
    if meta_seeds:
        tests = [(meta_test_job, ("ce", "ce", meta_seeds, jobs / "meta-test" / "ce.json", work / "meta" / "ce"))]
        tests += [(meta_test_job, (f"{arm}-seed-{s}", str(work / "runs" / arm / f"seed-{s}" / BEST_LOSS_FILE),
                                   meta_seeds, jobs / "meta-test" / f"{arm}-seed-{s}.json",
                                   work / "meta" / arm / f"seed-{s}")) for s in seeds for arm in ARMS]
        harness.say(f"warm start: {len(tests)} meta-tests")
        done += league.run_jobs(tests, workers)
    return done


# ------------------------------------------------------------------------------ summary


def summarise(jobs: list[dict], seeds: list[int]) -> dict:
    """Per arm and measure, the values by seed and their mean; known vs random paired by seed."""
    seeds = sorted(seeds)
    runs = {(j["arm"], j["seed"]): j for j in jobs if j["job"] == "evolution"}
    tested = {j["row"]: j for j in jobs if j["job"] == "meta-test"}
    for (arm, seed), run in runs.items():
        if f"{arm}-seed-{seed}" in tested:
            run["meta_test"] = tested[f"{arm}-seed-{seed}"]["mean"]
    measures = [m for m, _ in MEASURES if all(m in runs[(a, s)] for a in ARMS for s in seeds)]
    arms = {arm: {m: [runs[(arm, s)][m] for s in seeds] for m in measures} for arm in ARMS}
    comparisons = {}
    for m in measures:
        paired = compare_paired(arms["known"][m], arms["random"][m])
        known, random = arms["known"][m], arms["random"][m]
        comparisons[m] = dict(known_mean=statistics.mean(known), random_mean=statistics.mean(random),
                              difference=paired.mean_difference, ci=[paired.ci_low, paired.ci_high],
                              p=paired.p_value, test=paired.test, min_p=paired.min_p_value,
                              wins=sum(k > r for k, r in zip(known, random, strict=True)),
                              losses=sum(k < r for k, r in zip(known, random, strict=True)))
    ends = [m for m in measures if m in END_MEASURES]
    for m, adjusted in zip(ends, holm_adjust([comparisons[m]["p"] for m in ends]), strict=True):
        comparisons[m]["p_holm"] = adjusted
    costs = {arm: dict(trainings=statistics.mean(runs[(arm, s)]["trainings"] for s in seeds),
                       start_failed=statistics.mean(runs[(arm, s)]["start_failed"] for s in seeds),
                       distillation_cpu_seconds=statistics.mean(runs[(arm, s)]["distillation_cpu_seconds"] for s in seeds),
                       evolution_cpu_seconds=statistics.mean(runs[(arm, s)]["evolution_cpu_seconds"] for s in seeds))
             for arm in ARMS}
    ce = tested.get("ce")
    return dict(seeds=seeds, measures=measures, arms=arms, comparisons=comparisons, costs=costs,
                ce_meta_test=ce["mean"] if ce else None, ce_lr=ce["lr"] if ce else None,
                meta_test_lr={arm: [tested[f"{arm}-seed-{s}"]["lr"] for s in seeds if f"{arm}-seed-{s}" in tested]
                              for arm in ARMS})


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def markdown_table(summary: dict) -> str:
    """Known against random, one row per measure."""
    n = len(summary["seeds"])
    lines = [f"| measure | random | known | known - random [95% CI] | wins / losses of {n} | p | p (Holm) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    described = dict(MEASURES)
    for m in summary["measures"]:
        c = summary["comparisons"][m]
        lines.append(f"| {described[m]} | {c['random_mean']:.4f} | {c['known_mean']:.4f} "
                     f"| {c['difference']:+.4f} [{_num(c['ci'][0], '+.4f')}, {_num(c['ci'][1], '+.4f')}] "
                     f"| {c['wins']} / {c['losses']} | {_num(c['p'], '.4f')} | {_num(c.get('p_holm'), '.4f')} |")
    return "\n".join(lines)


def cost_table(summary: dict) -> str:
    lines = ["| arm | trainings per run | generation 0: candidates failing the K-class check | distillation CPU s "
             "| evolution CPU s |", "|---|---:|---:|---:|---:|"]
    for arm in ARMS:
        c = summary["costs"][arm]
        lines.append(f"| {arm} | {c['trainings']:.0f} | {c['start_failed']:.1f} | {c['distillation_cpu_seconds']:.1f} "
                     f"| {c['evolution_cpu_seconds']:.1f} |")
    return "\n".join(lines)


def per_seed_table(summary: dict) -> str:
    measures = summary["measures"]
    lines = ["| seed | " + " | ".join(f"{m} (random / known)" for m in measures) + " |",
             "|---:|" + "---:|" * len(measures)]
    for i, seed in enumerate(summary["seeds"]):
        cells = [f"{summary['arms']['random'][m][i]:.4f} / {summary['arms']['known'][m][i]:.4f}" for m in measures]
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(data: dict) -> str:
    """The report of ``warm_start.json``: known against random, the cost, the values by seed."""
    summary, settings = data["summary"], data["settings"]
    n = len(summary["seeds"])
    ce = summary["ce_meta_test"]
    reference = f" CE under the same meta-test: {ce:.4f} (Adam lr {summary['ce_lr']:g})." if ce is not None else ""
    return "\n\n".join([
        f"# MLN warm start: known against random initial population ({DATASET}, {n} seeds)",
        f"`{data['command']}`; {harness.machine_line(data['machine'])}",
        (f"MLN hybrid, population 12 + 12, {settings['generations']} generations (the league's budget of "
         f"{settings['budget']} trainings of {settings['brief']['steps']} Adam steps), no dynamic update. *known*: "
         "the initial population distilled from CE, label smoothing, Baikal and NGL (`initial_population=\"known\"`, "
         "docs/method.md); *random*: Glorot networks. Paired by seed: mean difference with a bootstrap 95% "
         f"interval and the exact sign-flip p (smallest possible at {n} seeds: {min_sign_flip_p(n):.4f}), "
         "Holm-adjusted over the three end measures (validation, test, meta-test). "
         f"Meta-test: seeds 0-{settings['meta_seeds'] - 1} per kept loss.{reference}"),
        markdown_table(summary), "Cost per run (one thread):", cost_table(summary),
        "Per seed:", per_seed_table(summary)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1 (default 5)")
    parser.add_argument("--budget", type=int, default=league.BUDGET, help="trainings per run (default: the league's)")
    parser.add_argument("--meta-seeds", type=int, default=META_SEEDS, help="meta-test seeds per kept loss (0: none)")
    parser.add_argument("--jobs", type=int, default=1, help="jobs in parallel (default 1)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--smoke", action="store_true", help="2 seeds, 1 generation, 1 meta-test seed")
    args = parser.parse_args(argv)
    generations = 1 if args.smoke else None
    seeds, meta_seeds = (2, 1) if args.smoke else (args.seeds, args.meta_seeds)
    if seeds < 1 or args.budget < 1 or args.jobs < 1 or meta_seeds < 0:
        parser.error("--seeds, --budget and --jobs must be at least 1, --meta-seeds non-negative")
    wall = time.perf_counter()
    jobs = run_all(args.out, list(range(seeds)), args.budget, generations, meta_seeds, args.jobs)
    summary = summarise(jobs, list(range(seeds)))
    settings = dict(dataset=DATASET, seeds=seeds, budget=args.budget, meta_seeds=meta_seeds,
                    generations=evolution_config("random", 0, args.budget, generations).generations,
                    mln_sizes=league.MLN_SIZES, brief=league.BRIEF, test_tasks=TEST_TASKS)
    data = dict(settings=settings, summary=summary, jobs=jobs, command=harness.command_line(__file__, argv),
                machine=harness.machine_info(), seconds=round(time.perf_counter() - wall, 1),
                **harness.git_state(CODE_PATHS))
    harness.write_results(args.out / "warm_start", data, markdown(data))
    harness.say(markdown_table(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
