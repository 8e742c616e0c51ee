"""Which dynamic-update rule, and which alpha: the measurement behind the defaults.

    python benchmarks/update_rules.py                 # 5 seeds, quick budget, 2 workers: about 6 minutes
    python benchmarks/update_rules.py --out /tmp/u    # elsewhere

Algorithm 1's rule (``update_steps`` = 2 raw steps of ``update_lr`` alpha, each followed by
a mutation with probability 0.5) at alpha 5, 20 (the default) and 60, against the earlier
normalised single step and against no update, with CE as a reference row; every run keeps
its validated loss, and every row is scored on the same held-out tasks per seed
(:func:`deap_mln.mln.variants.compare_variants`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import harness

from deap_mln.mln import variants

# Alpha variants exist only for this measurement. They are added at import time so that the
# spawned job processes, which import this script as their main module, know them too.
variants.VARIANTS["hybrid-lr5"] = {**variants.VARIANTS["hybrid"], "update_lr": 5.0}
variants.VARIANTS["hybrid-lr60"] = {**variants.VARIANTS["hybrid"], "update_lr": 60.0}
ROWS = ["hybrid", "hybrid-no-update", "hybrid-normalised-update", "hybrid-lr5", "hybrid-lr60"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", choices=variants.BUDGETS, default="quick")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=harness.RESULTS_DIR / "update_rules")
    args = parser.parse_args(argv)
    variants.compare_variants(ROWS, args.seeds, args.budget, args.out, workers=args.workers, references=("ce",))
    harness.say((args.out / "report.md").read_text())


if __name__ == "__main__":
    main()
