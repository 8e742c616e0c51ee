"""ES against hybrid operators: the full quick-budget comparison of issue 5.

    python benchmarks/es_vs_hybrid.py                 # all variants, 10 seeds, quick budget
    python benchmarks/es_vs_hybrid.py --seeds 3       # fewer seeds
    python benchmarks/es_vs_hybrid.py --workers 2     # jobs in parallel processes
    python benchmarks/es_vs_hybrid.py --budget smoke --seeds 1 --out /tmp/es_vs_hybrid   # smoke check, seconds

Calls :func:`deap_mln.mln.variants.compare_variants`, as ``deap-mln bench --variants hybrid
es hybrid-fixed-sigma hybrid-dynamic hybrid-chaotic --seeds 10 --budget quick --out
benchmarks/results/es_vs_hybrid`` does. Writes bench.json, report.md, convergence.png and
final_fitness.png there, plus one run directory per (variant, seed) under runs/ (those are
not committed). An interrupted run resumes: finished jobs are skipped.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import harness

from deap_mln.mln.variants import BUDGETS, compare_variants

VARIANTS = ["hybrid", "es", "hybrid-fixed-sigma", "hybrid-dynamic", "hybrid-chaotic"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", choices=BUDGETS, default="quick", help="default quick; smoke checks the pipeline")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=harness.RESULTS_DIR / "es_vs_hybrid",
                        help="results directory (default benchmarks/results/es_vs_hybrid)")
    args = parser.parse_args()
    compare_variants(VARIANTS, args.seeds, args.budget, args.out, workers=args.workers)
    harness.say((args.out / "report.md").read_text())


if __name__ == "__main__":
    main()
