"""ES against hybrid operators and the ablations of Algorithm 1, with CE, MSE and focal as reference rows.

    python benchmarks/es_vs_hybrid.py                 # all variants, 10 seeds, quick budget
    python benchmarks/es_vs_hybrid.py --budget paper --workers 14 --out benchmarks/results/es_vs_hybrid_paper
    python benchmarks/es_vs_hybrid.py --seeds 3       # fewer seeds
    python benchmarks/es_vs_hybrid.py --workers 2     # jobs in parallel processes
    python benchmarks/es_vs_hybrid.py --budget smoke --seeds 1 --out /tmp/es_vs_hybrid   # smoke check, seconds

Calls :func:`deap_mln.mln.variants.compare_variants`, as ``deap-mln bench --variants hybrid
es hybrid-no-update hybrid-normalised-update hybrid-fixed-sigma --seeds 10 --budget quick --out
benchmarks/results/es_vs_hybrid`` does. Writes bench.json, report.md, convergence.png and
final_fitness.png there, plus one run directory per (variant, seed) under runs/ (those are
not committed). An interrupted run resumes: finished jobs are skipped.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import harness

from deap_mln.mln.variants import BUDGETS, compare_variants

VARIANTS = ["hybrid", "es", "hybrid-no-update", "hybrid-normalised-update", "hybrid-fixed-sigma"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", choices=BUDGETS, default="quick", help="default quick; smoke checks the pipeline")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=VARIANTS, help="the first is the reference")
    parser.add_argument("--out", type=Path, default=harness.RESULTS_DIR / "es_vs_hybrid",
                        help="results directory (default benchmarks/results/es_vs_hybrid)")
    args = parser.parse_args()
    compare_variants(args.variants, args.seeds, args.budget, args.out, workers=args.workers)
    harness.say((args.out / "report.md").read_text())


if __name__ == "__main__":
    main()
