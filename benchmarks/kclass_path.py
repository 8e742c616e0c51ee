"""K-class meta-training: the fast path (2-D table) against the exact path, per evaluation.

Run from the repository root (the package installed)::

    python benchmarks/kclass_path.py            # the shipped settings: about 3-4 minutes on 2 idle cores
    python benchmarks/kclass_path.py --quick    # smoke check of every code path, seconds

At the shipped settings (``preset("kclass")``: 10-class linear tasks of 2,000 / 2,000 points,
4 tasks per evaluation, 200 SGD steps each, the paper-size MLN, ``pair_grid_size`` 33), all
in one process with torch on one thread:

1. **Cost per fitness evaluation** of
   a. the fast path: ``population_fitness`` on one chunk of ``chunk_size`` (25) genomes, as a
      generation evaluates them (tabulation of the 2-D table included), median of ``--repeats``;
   b. the exact path: ``population_fitness`` with ``evaluation="exact"`` (the MLNs run on every
      mini-batch's 9 pairs per sample, autograd) on ``--exact`` genomes, batched like a chunk;
   c. the straightforward reference: ``reference_fitness`` on one genome (``nn.Module``
      classifier, ``MLNLoss``, ``torch.optim.SGD``).
2. **Rank agreement** of fast and exact fitness (Spearman, largest absolute difference) over
   the ``--exact`` genomes: Glorot genomes that pass the K-class check, and for half of them a
   mutant at sigma 0.01 (as close as an offspring to its parent).
3. **Table resolution**: the same agreement for the fast path at ``pair_grid_size`` 17, 33 and 65,
   with its time per evaluation.

Writes ``kclass_path.json`` and ``kclass_path.md`` to ``--out`` (default ``benchmarks/results``;
with ``--quick`` a temporary directory). The load of the machine is recorded per section
(``benchmarks/harness.py``); timings taken beside other work are upper bounds.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import harness
import numpy as np
import torch
from scipy.stats import spearmanr

from deap_mln.data.synthetic import generation_tasks
from deap_mln.mln.check import population_passes
from deap_mln.mln.config import EvolutionConfig, preset
from deap_mln.mln.fitness import population_fitness, reference_fitness

FULL = dict(config={}, exact=12, repeats=3, resolutions=(17, 33, 65))
QUICK = dict(config=dict(hidden=(8, 8), pool_size=2_000, train_size=400, val_size=200, tasks_per_eval=1,
                         chunk_size=6), exact=4, repeats=1, resolutions=(9, 17))
TARGETS = dict(speedup_vs_exact=50.0, spearman=0.99)  # issue 14


def passing_genomes(config: EvolutionConfig, n: int, seed: int) -> np.ndarray:
    """``n`` genomes that pass the K-class check: Glorot draws, and for half of them a mutant at sigma 0.01."""
    rng = np.random.default_rng(seed)
    drawn = harness.glorot_genomes(config.hidden, 4 * n, seed)  # about a third pass
    parents = drawn[population_passes(drawn, config.hidden, config.classes)]
    half = (n + 1) // 2
    mutants = parents[:n - half] + (0.01 * rng.standard_normal(parents[:n - half].shape)).astype(np.float32)
    mutants = mutants[population_passes(mutants, config.hidden, config.classes)]
    chosen = np.concatenate([parents[:half], mutants, parents[half:]])[:n]  # spare parents fill in for failed mutants
    if len(chosen) < n:
        raise RuntimeError(f"only {len(chosen)} of {n} genomes pass the K-class check")
    return chosen


def section_cost(config: EvolutionConfig, size: dict, seed: int) -> dict:
    tasks = generation_tasks(config, 1)
    chunk = passing_genomes(config, config.chunk_size, seed)
    fast_times = []
    for _ in range(size["repeats"]):
        fast, seconds = harness.timed(population_fitness, chunk, config, tasks)
        fast_times.append(seconds)
    harness.say(f"fast: {statistics.median(fast_times):.2f} s per chunk of {len(chunk)}")
    genomes = passing_genomes(config, size["exact"], seed + 1)
    exact, exact_seconds = harness.timed(population_fitness, genomes, config.replace(evaluation="exact"), tasks)
    harness.say(f"exact: {exact_seconds:.1f} s for {len(genomes)} genomes")
    warm = torch.zeros(1, requires_grad=True)  # torch.optim's first step costs a second of one-time set-up
    warm.sum().backward()
    torch.optim.SGD([warm], lr=0.1).step()
    reference, reference_seconds = harness.timed(reference_fitness, genomes[0], config, tasks)
    harness.say(f"reference: {reference_seconds:.1f} s for one genome")
    fast_on_exact = population_fitness(genomes, config, tasks)
    per_eval = dict(fast=statistics.median(fast_times) / len(chunk), exact=exact_seconds / len(genomes),
                    reference=reference_seconds)
    return dict(seconds_per_evaluation=per_eval, fast_chunk_seconds=fast_times, chunk=len(chunk),
                exact_genomes=len(genomes), speedup_vs_exact=per_eval["exact"] / per_eval["fast"],
                speedup_vs_reference=per_eval["reference"] / per_eval["fast"],
                exact_fitness=exact.tolist(), fast_fitness=fast_on_exact.tolist(),
                reference_fitness=float(reference), reference_vs_exact=abs(float(reference) - float(exact[0])),
                spearman=float(spearmanr(fast_on_exact, exact).statistic),
                max_abs_difference=float(np.abs(fast_on_exact - exact).max()),
                exact_spread=float(exact.max() - exact.min()))


def section_resolution(config: EvolutionConfig, size: dict, seed: int, exact: list[float]) -> list[dict]:
    tasks = generation_tasks(config, 1)
    genomes = passing_genomes(config, size["exact"], seed + 1)
    rows = []
    for resolution in size["resolutions"]:
        fast, seconds = harness.timed(population_fitness, genomes, config.replace(pair_grid_size=resolution), tasks)
        rows.append(dict(pair_grid_size=resolution, seconds_per_evaluation=seconds / len(genomes),
                         spearman=float(spearmanr(fast, exact).statistic),
                         max_abs_difference=float(np.abs(fast - np.asarray(exact)).max())))
        harness.say(f"pair_grid_size {resolution}: Spearman {rows[-1]['spearman']:.4f}, "
                    f"max |fast - exact| {rows[-1]['max_abs_difference']:.2e}")
    return rows


def markdown(report: dict) -> str:
    c, s = report["cost"], report["settings"]
    t = c["seconds_per_evaluation"]
    lines = ["# K-class meta-training: fast path against exact path", "",
             f"{harness.machine_line(report['machine'])}. Load average before {report['load_before']}. "
             f"Command: `{report['command']}`.", "",
             f"Settings: {s['classes']}-class {s['task_kind']} tasks of {s['train_size']:,} / {s['val_size']:,} points, "
             f"{s['tasks_per_eval']} tasks per evaluation, {s['inner_steps']} SGD steps each, MLN hidden {s['hidden']}, "
             f"pair_grid_size {s['pair_grid_size']}; torch on one thread.", "",
             "| path | seconds per evaluation | fast path's speed-up |", "|---|---:|---:|",
             f"| fast (chunk of {c['chunk']}, table included) | {t['fast']:.4f} | 1 |",
             f"| exact (batched, {c['exact_genomes']} genomes) | {t['exact']:.3f} | {c['speedup_vs_exact']:.0f}x |",
             f"| reference (one genome, nn.Module, SGD) | {t['reference']:.3f} | {c['speedup_vs_reference']:.0f}x |", "",
             f"Fast against exact fitness over {c['exact_genomes']} genomes that pass the K-class check (half of them "
             f"mutants at sigma 0.01): Spearman {c['spearman']:.4f} (target >= {TARGETS['spearman']}), largest "
             f"|difference| {c['max_abs_difference']:.2e}, spread of the exact fitness {c['exact_spread']:.2e}; "
             f"reference against exact on one genome: {c['reference_vs_exact']:.1e}. Speed-up target against the "
             f"exact path: >= {TARGETS['speedup_vs_exact']:.0f}x.", "",
             "| pair_grid_size | seconds per evaluation | Spearman | max abs difference |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['pair_grid_size']} | {r['seconds_per_evaluation']:.4f} | {r['spearman']:.4f} | "
              f"{r['max_abs_difference']:.2e} |" for r in report["resolution"]]
    return "\n".join(lines + ["", *harness.other_load_table(report["sections"])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes: a smoke check of every code path")
    parser.add_argument("--out", type=Path, help="results directory (default benchmarks/results; "
                                                   "with --quick a temporary directory)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    size = QUICK if args.quick else FULL
    config = preset("kclass", **size["config"])
    out = harness.output_dir(args.out, args.quick, "kclass_path")
    report = dict(command=harness.command_line(__file__, argv), quick=args.quick, machine=harness.machine_info(),
                  load_before=harness.load_average(), targets=TARGETS,
                  settings={**config.to_dict(), "inner_steps": config.inner_steps})
    sections = report["sections"] = {}
    with harness.measured_section("cost", sections):
        report["cost"] = section_cost(config, size, args.seed)
    with harness.measured_section("resolution", sections):
        report["resolution"] = section_resolution(config, size, args.seed, report["cost"]["exact_fitness"])
    json_path, md_path = harness.write_results(out / "kclass_path", report, markdown(report))
    harness.say(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
