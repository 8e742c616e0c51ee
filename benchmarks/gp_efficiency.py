"""Efficiency-based GP against standard GP at the same evaluation budget, over seeds.

For every seed both algorithms start from the same initial population (random trees that
pass the functional check; the known losses are left out so the search has to find good
losses itself) and the same fitness (same data, same classifier initialisation and batch
order), and run until they have trained ``--budget`` classifiers. From each run's trace of
evaluations it reports:

- evaluations and seconds until a tree reached the *level*: the best validation accuracy of
  the four known losses (cross-entropy, Baikal, NGL, squared error) under the same seed, so
  "as good as the best published loss of the four" (they are scored, not counted, before the run);
- the best validation accuracy within the budget (final fitness), and the test accuracy of
  that tree's loss (classifier trained on train + validation, tested on the untouched test split);
- how many children the functional check rejected, how many trees the cache served, and how
  many of the trained trees would have failed the functional check (standard GP trains them).

Statistics per metric: median and interquartile range per algorithm, the two-sided
Mann-Whitney U test and the Vargha-Delaney A12 effect size (:mod:`deap_mln.stats`); runs that
never reached the level count as the worst (infinite) value in the rank tests.

Writes ``<out>/gp_efficiency.json`` after every finished run (jobs already in it are skipped,
so an interrupted benchmark resumes), then ``gp_efficiency.md`` and ``gp_efficiency.png``::

    python benchmarks/gp_efficiency.py --seeds 10 --workers 2
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import harness
import numpy as np

from deap_mln.gp.config import GP_ALGORITHMS, GPConfig
from deap_mln.gp.fitness import best_so_far, evaluate_expression, first_reaching, fitness_data_of, test_accuracy
from deap_mln.gp.search import best_of, run_search
from deap_mln.gp.tree import KNOWN_LOSSES, check_tree, infix_formula, parse_expression
from deap_mln.io import read_json, write_json
from deap_mln.plotting import pyplot
from deap_mln.stats import compare

METRICS = {  # key -> (label, lower is better)
    "evals_to_level": ("evaluations to reach the level", True),
    "seconds_to_level": ("seconds to reach the level", True),
    "final_fitness": ("best validation accuracy within the budget", False),
    "test_accuracy": ("test accuracy of the best loss", False),
    "seconds": ("seconds for the whole budget", True),
    "trained_failing_check": ("trainings spent on trees failing the check", True),
}


def job_config(algorithm: str, seed: int, args: argparse.Namespace) -> GPConfig:
    return GPConfig(algorithm=algorithm, seed=seed, population=args.population, generations=100_000,
                    max_evaluations=args.budget, tournament_size=args.tournament_size, top_n=args.top_n,
                    seed_known_losses=False, dataset=args.dataset, steps=args.steps).validate()


def run_job(algorithm: str, seed: int, args: argparse.Namespace) -> dict:
    """One GP run; everything the report needs, as plain JSON values."""
    config = job_config(algorithm, seed, args)
    settings = config.training()
    fitness_data_of(config)
    evaluate_expression(KNOWN_LOSSES["squared_error"], dataclasses.replace(settings, steps=2))  # warm up torch/Adam
    known = {name: evaluate_expression(e, settings) for name, e in KNOWN_LOSSES.items()}  # not counted
    level = max(known.values())
    state, seconds = harness.timed(run_search, config, functools.partial(evaluate_expression, settings=settings))
    trace = [t for t in state.cache.trace if t[0] <= args.budget]
    expressions = list(state.cache.values)
    best_n = max(trace, key=lambda t: (t[1], -t[0]))[0]  # first evaluation with the best fitness
    best_expression = expressions[best_n - 1]
    reached = first_reaching(trace, level)
    rows = list(state.logbook)
    return dict(
        algorithm=algorithm, seed=seed, level=level, known=known, evaluations=len(trace), generations=state.generation,
        seconds=round(seconds, 2),
        evals_to_level=reached[0] if reached else None, seconds_to_level=round(reached[1], 2) if reached else None,
        final_fitness=best_so_far(trace, args.budget), best_expression=best_expression,
        best_formula=infix_formula(parse_expression(best_expression)),
        test_accuracy=test_accuracy(best_expression, settings),
        rejected=sum(r["rejected"] for r in rows), cached=state.cache.hits,
        trained_failing_check=sum(not check_tree(parse_expression(e)) for e in expressions[:len(trace)]),
        final_population_best=best_of(state.population, 1)[0].fitness.values[0],
        trace=[[n, round(f, 5), round(s, 3)] for n, f, s in trace])


def reference_accuracies(seed: int, args: argparse.Namespace) -> dict:
    """Validation and test accuracy of each known loss under ``seed`` (context for the evolved ones)."""
    settings = job_config("efficiency", seed, args).training()
    return dict(seed=seed, **{name: dict(validation=evaluate_expression(e, settings), test=test_accuracy(e, settings))
                              for name, e in KNOWN_LOSSES.items()})


def load_results(path: Path) -> dict:
    return read_json(path) if path.exists() else {"runs": []}


def metric_values(runs: list[dict], algorithm: str, key: str) -> list[float]:
    values = [r[key] for r in runs if r["algorithm"] == algorithm]
    return [math.inf if v is None else float(v) for v in values]


def quantile(values: np.ndarray, q: float) -> float | None:
    """Linear-interpolation quantile that tolerates infinite values (never reached): inf, not nan."""
    v = np.sort(values)
    position = q * (len(v) - 1)
    lo, hi = v[int(np.floor(position))], v[int(np.ceil(position))]
    value = float(lo if lo == hi else lo + (hi - lo) * (position - np.floor(position)))
    return None if math.isinf(value) else value  # JSON has no infinity: None means "not reached"


def summarise(runs: list[dict]) -> dict:
    """Median, IQR and reach counts per algorithm; Mann-Whitney U and A12 (efficiency vs standard)."""
    seeds = sorted({r["seed"] for r in runs if all(any(q["seed"] == r["seed"] and q["algorithm"] == a for q in runs)
                                                     for a in GP_ALGORITHMS)})
    paired = [r for r in runs if r["seed"] in seeds]
    out = {"seeds": seeds, "metrics": {}}
    for key, (label, lower_better) in METRICS.items():
        entry = {"label": label, "lower_is_better": lower_better}
        for algorithm in GP_ALGORITHMS:
            v = np.array(metric_values(paired, algorithm, key))
            finite = v[np.isfinite(v)]
            entry[algorithm] = dict(median=quantile(v, 0.5) if len(v) else None,
                                    q25=quantile(v, 0.25) if len(v) else None,
                                    q75=quantile(v, 0.75) if len(v) else None,
                                    reached=int(len(finite)), runs=int(len(v)))
        if seeds:
            entry["test"] = compare(metric_values(paired, "efficiency", key), metric_values(paired, "standard", key))
        out["metrics"][key] = entry
    return out


def fmt(x: float | None, digits: int) -> str:
    return "not reached" if x is None else f"{x:.{digits}f}"


def markdown(data: dict) -> str:
    s, info = data["summary"], data["settings"]
    lines = [
        "# Efficiency-based GP vs standard GP", "",
        f"Command: `{info['command']}`  ",
        f"{len(s['seeds'])} seeds ({', '.join(map(str, s['seeds']))}); budget {info['budget']} evaluations per run; "
        f"dataset {info['dataset']}; population {info['population']}; tournament {info['tournament_size']}; "
        f"efficiency GP: top {info['top_n']}; standard GP: crossover {GPConfig.crossover_prob}, "
        f"mutation {GPConfig.mutation_prob}, elite {GPConfig.elite}; {info['steps']} Adam steps per evaluation; "
        f"{info['workers']} runs in parallel, torch on one thread each. {harness.machine_line(info['machine'])}.", "",
        "Level = best validation accuracy of the known losses (CE, Baikal, NGL, squared error) under the same seed. "
        "A12 = P(efficiency > standard); "
        "for the two 'to level' rows lower is better, so A12 < 0.5 favours efficiency GP there.", "",
        "| metric | efficiency GP median [IQR] | standard GP median [IQR] | reached | Mann-Whitney p "
        "| A12 (magnitude) |",
        "|---|---|---|---|---|---|",
    ]
    for m in s["metrics"].values():
        digits = 4 if "accuracy" in m["label"] else 1
        cells = []
        for algorithm in GP_ALGORITHMS:
            a = m[algorithm]
            cells.append(f"{fmt(a['median'], digits)} [{fmt(a['q25'], digits)}, {fmt(a['q75'], digits)}]")
        reached = " / ".join(f"{m[a]['reached']}/{m[a]['runs']}" for a in GP_ALGORITHMS)
        t = m.get("test", {})
        lines.append(f"| {m['label']} | {cells[0]} | {cells[1]} | {reached} | {t.get('p_value', float('nan')):.3g} | "
                     f"{t.get('a12', float('nan')):.2f} ({t.get('magnitude', '-')}) |")
    if data.get("reference"):
        lines += ["", "The known losses under the same seeds and settings (not part of either search), "
                      "median over seeds:", "",
                  "| loss | validation accuracy | test accuracy |", "|---|---|---|"]
        for name in KNOWN_LOSSES:
            val = np.median([r[name]["validation"] for r in data["reference"]])
            test = np.median([r[name]["test"] for r in data["reference"]])
            lines.append(f"| {name} | {val:.4f} | {test:.4f} |")
    lines += ["", "Per run: *rejected* = children the functional check kept from training; *cached* = trees served "
              "by the cache; *trained, failing check* = trained trees the check would have rejected.", "",
              "| algorithm | seed | level | evals to level | s to level | best val acc | test acc | rejected "
              "| cached | trained, failing check | best formula |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(data["runs"], key=lambda r: (r["seed"], r["algorithm"])):
        to_level = r["seconds_to_level"] if r["seconds_to_level"] is not None else "-"
        lines.append(f"| {r['algorithm']} | {r['seed']} | {r['level']:.4f} | {r['evals_to_level'] or '-'} | "
                     f"{to_level} | {r['final_fitness']:.4f} | {r['test_accuracy']:.4f} | {r['rejected']} | "
                     f"{r['cached']} | {r['trained_failing_check']} | `{r['best_formula']}` |")
    return "\n".join(lines) + "\n"


def plot(path: Path, data: dict) -> None:
    plt = pyplot()
    budget = data["settings"]["budget"]
    grid = np.arange(1, budget + 1)
    fig, (curve, box) = plt.subplots(1, 2, figsize=(11, 4))
    finals = []
    for color, algorithm in zip(("C0", "C3"), GP_ALGORITHMS):
        runs = [r for r in data["runs"] if r["algorithm"] == algorithm]
        if not runs:
            continue
        curves = np.array([[best_so_far(r["trace"], n) - r["level"] for n in grid] for r in runs])
        med, lo, hi = np.median(curves, 0), np.percentile(curves, 25, 0), np.percentile(curves, 75, 0)
        curve.plot(grid, med, color=color, label=f"{algorithm} GP (median of {len(runs)})")
        curve.fill_between(grid, lo, hi, color=color, alpha=0.2)
        finals.append((algorithm, [r["test_accuracy"] for r in runs]))
    curve.axhline(0.0, color="k", lw=0.8, ls="--", label="level (best known loss)")
    curve.set_ylim(bottom=max(curve.get_ylim()[0], -0.05))  # the first few evaluations would flatten the rest
    curve.set_xlabel("real evaluations (classifiers trained)")
    curve.set_ylabel("best validation accuracy - level")
    curve.set_title("best so far, median and IQR over seeds")
    curve.grid(alpha=0.3)
    curve.legend()
    box.boxplot([v for _, v in finals], tick_labels=[f"{a} GP" for a, _ in finals])
    box.set_ylabel("test accuracy of the best loss")
    box.set_title(f"after {budget} evaluations")
    box.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=100, help="real evaluations per run (default 100)")
    parser.add_argument("--population", type=int, default=20)
    parser.add_argument("--tournament-size", type=int, default=8)
    parser.add_argument("--top-n", type=int, default=4)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel processes (one torch thread each)")
    parser.add_argument("--out", type=Path, default=harness.RESULTS_DIR,
                        help="results directory (default benchmarks/results); runs already in its gp_efficiency.json "
                             "are kept and skipped")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "gp_efficiency.json"
    settings = dict(budget=args.budget, population=args.population, tournament_size=args.tournament_size,
                    top_n=args.top_n, steps=args.steps, dataset=args.dataset, workers=args.workers,
                    machine=harness.machine_info(), command=harness.command_line(__file__))
    data = load_results(json_path)
    if data["runs"] and data.get("settings", {}).get("budget") not in (None, args.budget):
        raise SystemExit(f"{json_path} holds runs with another budget; use another --out")
    data["settings"] = settings
    done = {(r["algorithm"], r["seed"]) for r in data["runs"]}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = [(a, s) for s in seeds for a in GP_ALGORITHMS if (a, s) not in done]
    harness.say(f"{len(done)} runs already in {json_path}; {len(jobs)} to go")
    tic = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = {pool.submit(run_job, a, s, args): (a, s) for a, s in jobs}
        for future in as_completed(futures):
            r = future.result()
            data["runs"].append(r)
            data["summary"] = summarise(data["runs"])
            write_json(json_path, data)
            harness.say(f"{r['algorithm']:>10} seed {r['seed']}: level {r['level']:.4f}, reached after "
                        f"{r['evals_to_level']} evals / {r['seconds_to_level']} s; best {r['final_fitness']:.4f}, "
                        f"test {r['test_accuracy']:.4f}; {r['seconds']:.0f} s  "
                        f"[{time.perf_counter() - tic:.0f} s so far]")
    data["summary"] = summarise(data["runs"])
    known = {r["seed"] for r in data.setdefault("reference", [])}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:  # the known losses' test accuracy, once per seed
        data["reference"] += pool.map(functools.partial(reference_accuracies, args=args),
                                      sorted({r["seed"] for r in data["runs"]} - known))
    harness.write_results(args.out / "gp_efficiency", data, markdown(data))
    plot(args.out / "gp_efficiency.png", data)
    harness.say(markdown(data))


if __name__ == "__main__":
    main()
