"""Algorithm 1 at paper settings: what the dynamic update costs, how far its fast meta-gradient
is from the exact one, and how many tasks per evaluation rank a population reliably.

    python benchmarks/algorithm1.py            # about 10 minutes on 2 cores; benchmarks/results/algorithm1.{json,md}
    python benchmarks/algorithm1.py --quick    # smoke check at small sizes, results to a temporary directory

Sections:

* ``gradient``: cosine between the meta-gradient through the fast path's table and the exact
  unrolled one (the MLN run at every unrolled step) on random paper-size MLNs, and their times;
* ``generation``: wall time of whole generations (vary, refine, evaluate 50, select, validate)
  from one evolved state, with the dynamic update (each rule) and without it, serial, one thread;
* ``tasks``: a population taken from a paper-preset run after some generations is scored on
  two independent task sets of n tasks each; the Spearman correlation of the two rankings
  says how reliably n tasks rank it, against the cost of n tasks.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import harness
import numpy as np
import torch
from scipy.stats import spearmanr

from deap_mln.data.synthetic import config_tasks
from deap_mln.mln.algorithms import mu_plus_lambda, start_evolution
from deap_mln.mln.config import EvolutionConfig, preset
from deap_mln.mln.dynamic_update import meta_gradient, update_task
from deap_mln.mln.fitness import population_fitness
from deap_mln.mln.toolbox import build_toolbox
from deap_mln.seeding import generator

TASK_COUNTS = (1, 2, 4, 8)
SECTIONS = ("gradient", "generation", "tasks")


def gradient_agreement(config: EvolutionConfig, genomes: int, truncation: int) -> dict:
    rng = np.random.default_rng(0)
    population = harness.glorot_genomes(config.hidden, genomes, seed=0)
    task = update_task(config, rng)
    exact, exact_s = harness.timed(meta_gradient, population, task, config, truncation, "exact")
    fast, fast_s = harness.timed(meta_gradient, population, task, config, truncation, "fast")
    e, f = exact.astype(np.float64), fast.astype(np.float64)
    cosine = (e * f).sum(1) / np.linalg.norm(e, axis=1) / np.linalg.norm(f, axis=1)
    return dict(genomes=genomes, truncation=truncation, cosine_min=float(cosine.min()),
                cosine_median=float(np.median(cosine)), gradient_norm_median=float(np.median(np.linalg.norm(e, axis=1))),
                exact_seconds=exact_s, fast_seconds=fast_s)


def evolved_state(config: EvolutionConfig, generations: int):
    """A toolbox and a state after ``generations`` generations without the update (a late population)."""
    rng = generator(config.seed, "evolution")
    toolbox = build_toolbox(config, rng)
    state = start_evolution(toolbox, config.mu, config.validate_top)
    mu_plus_lambda(state, toolbox, mu=config.mu, lambda_=config.lambda_, cxpb=config.crossover_prob,
                   ngen=generations, rng=rng, validate_top=config.validate_top)
    return state


def generation_seconds(base: EvolutionConfig, variants: dict[str, dict], warm: int, timed_generations: int) -> dict:
    """Median seconds of one generation per variant, each continuing the same evolved state."""
    out = {}
    for name, overrides in variants.items():
        config = base.replace(**overrides)
        state = evolved_state(config.replace(dynamic_update=False), warm)
        rng = generator(config.seed, "timing", name)
        toolbox = build_toolbox(config, rng)
        times = []
        for _ in range(timed_generations):
            tic = time.perf_counter()
            mu_plus_lambda(state, toolbox, mu=config.mu, lambda_=config.lambda_, cxpb=config.crossover_prob,
                           ngen=state.generation + 1, rng=rng, validate_top=config.validate_top)
            times.append(time.perf_counter() - tic)
        out[name] = dict(overrides=overrides, seconds=times, median_seconds=statistics.median(times))
        harness.say(f"generation {name}: median {out[name]['median_seconds']:.2f} s over {timed_generations}")
    reference = out["no update"]["median_seconds"]
    for row in out.values():
        row["ratio_to_no_update"] = row["median_seconds"] / reference
    return out


def task_agreement(config: EvolutionConfig, warm: int, repeats: int) -> dict:
    """Spearman correlation of one population's fitness on two independent task sets of n tasks."""
    state = evolved_state(config.replace(tasks_per_eval=1, dynamic_update=False), warm)
    toolbox = build_toolbox(config, generator(config.seed, "task-count"))
    offspring = [toolbox.clone(ind) for ind in state.population]
    for child in offspring:
        toolbox.mutate(child)
    genomes = np.stack([np.asarray(ind) for ind in state.population + offspring])
    rows = {}
    for n in TASK_COUNTS:
        rhos, seconds = [], []
        for r in range(repeats):
            fits = []
            for side in (0, 1):
                tasks = config_tasks(config, f"task-count-{side}", 1000 + r, n)
                tic = time.perf_counter()
                fits.append(np.concatenate([population_fitness(genomes[i:i + config.chunk_size], config, tasks)
                                            for i in range(0, len(genomes), config.chunk_size)]))
                seconds.append(time.perf_counter() - tic)
            rhos.append(float(spearmanr(fits[0], fits[1]).statistic))
        rows[n] = dict(spearman=rhos, spearman_mean=float(np.mean(rhos)), seconds_per_evaluation_of_50=float(np.mean(seconds)))
        harness.say(f"{n} tasks: Spearman {np.mean(rhos):.3f} ({', '.join(f'{x:.3f}' for x in rhos)}), "
                    f"{np.mean(seconds):.2f} s per 50 evaluations")
    return dict(population=len(genomes), warm_generations=warm, repeats=repeats, rows=rows)


def markdown(result: dict) -> str:
    lines = [f"# Algorithm 1 at {result['settings']} settings", "", harness.machine_line(result["machine"]), ""]
    if "gradient" in result:
        g = result["gradient"]
        lines += ["## Fast meta-gradient against the exact unrolled one", "",
                  f"{g['genomes']} random MLNs, {g['truncation']} unrolled steps: cosine min {g['cosine_min']:.5f}, "
                  f"median {g['cosine_median']:.5f}; exact {g['exact_seconds']:.2f} s, fast {g['fast_seconds']:.2f} s "
                  f"(median gradient norm {g['gradient_norm_median']:.2e}).", ""]
    if "generation" in result:
        lines += ["## One generation (50 evaluations, serial, one thread)", "",
                  "| variant | median s / generation | ratio to no update |", "|---|---:|---:|"]
        lines += [f"| {name} | {row['median_seconds']:.2f} | {row['ratio_to_no_update']:.2f}x |"
                  for name, row in result["generation"].items()]
    if "tasks" not in result:
        return "\n".join([*lines, "", f"Command: `{result['command']}`", ""])
    t = result["tasks"]
    lines += ["", "## Tasks per evaluation", "",
              f"A population of {t['population']} (the survivors after {t['warm_generations']} generations and one "
              f"mutated child each), scored on two independent task sets; {t['repeats']} repeats.", "",
              "| tasks per evaluation | Spearman of the two rankings (mean) | s per 50 evaluations |", "|---:|---:|---:|"]
    lines += [f"| {n} | {row['spearman_mean']:.3f} | {row['seconds_per_evaluation_of_50']:.2f} |"
              for n, row in t["rows"].items()]
    lines += ["", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke check at small sizes")
    parser.add_argument("--warm", type=int, default=15, help="generations before the measured ones (default 15)")
    parser.add_argument("--generations", type=int, default=4, help="timed generations per variant (default 4)")
    parser.add_argument("--repeats", type=int, default=3, help="pairs of task sets per task count (default 3)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="default: all")
    parser.add_argument("--out", type=Path, help="results directory (default benchmarks/results)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    base = preset("paper", seed=0)
    if args.quick:
        base = preset("quick", seed=0, train_size=400, val_size=200, pool_size=2_000, hidden=(16, 16))
        args.warm, args.generations, args.repeats = 2, 1, 1
    result: dict = dict(command=harness.command_line(__file__, argv), machine=harness.machine_info(),
                        settings="quick (smoke)" if args.quick else "paper")
    if "gradient" in args.sections:
        result["gradient"] = gradient_agreement(base, genomes=4 if args.quick else 8, truncation=base.update_truncation)
        harness.say(f"gradient: cosine min {result['gradient']['cosine_min']:.5f}")
    if "generation" in args.sections:
        result["generation"] = generation_seconds(base, {
            "no update": dict(dynamic_update=False),
            "algorithm-1 update (default)": dict(dynamic_update=True),
            "normalised update": dict(dynamic_update=True, update_rule="normalised"),
            "algorithm-1 update, exact meta-gradient": dict(dynamic_update=True, update_path="exact"),
        }, args.warm, args.generations)
    if "tasks" in args.sections:
        result["tasks"] = task_agreement(base, args.warm, args.repeats)
    _, md_path = harness.write_results(harness.output_dir(args.out, args.quick, "algorithm1") / "algorithm1",
                                       result, markdown(result))
    harness.say(md_path.read_text())


if __name__ == "__main__":
    main()
