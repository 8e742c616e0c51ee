"""EDL pretraining: chaotic against Gaussian mutation, then the pretrained loss against CE.

    python benchmarks/edl_mutation.py                 # 10 seeds, edl budget, then meta-tests
    python benchmarks/edl_mutation.py --seeds 3 --meta-seeds 3
    python benchmarks/edl_mutation.py --budget smoke --seeds 1 --meta-seeds 1 --meta-steps 20 --out /tmp/edl  # smoke

Part 1 is ``deap-mln bench --variants es-chaotic es --seeds 10 --budget edl``
(:func:`deap_mln.mln.variants.compare_variants`): the EDL search (ES with chaotic mutation)
against the same ES with Gaussian (log-normal) mutation, same budget and seeds; generations
to the threshold, held-out ranking fitness, Mann-Whitney U and A12. Part 2 meta-tests the
loss of the chaotic run with the best held-out fitness against cross-entropy on digits
(mlp3) and on a synthetic task (perceptron), with :func:`deap_mln.metatest.run.meta_test`
(what ``deap-mln meta-test`` runs). Results go to benchmarks/results/edl_mutation/.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import harness

from deap_mln.io import BEST_LOSS_FILE, write_json
from deap_mln.metatest.run import meta_test
from deap_mln.mln.variants import BUDGETS, compare_variants

META_TESTS = {"digits": ("mlp3", "digits"), "synthetic": ("perceptron", "synthetic-linear")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", choices=BUDGETS, default="edl",
                        help="budget of the searches (default edl; smoke checks the pipeline in seconds)")
    parser.add_argument("--meta-seeds", type=int, default=5)
    parser.add_argument("--meta-steps", type=int, help="override each data set's meta-test steps (smoke runs)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=harness.RESULTS_DIR / "edl_mutation",
                        help="results directory (default benchmarks/results/edl_mutation)")
    args = parser.parse_args()
    report = compare_variants(["es-chaotic", "es"], args.seeds, args.budget, args.out, workers=args.workers)
    harness.say((args.out / "report.md").read_text())

    chaotic = [r for r in report["results"] if r["variant"] == "es-chaotic"]
    best = max(chaotic, key=lambda r: r["held_out_fitness"])
    loss_file = args.out / "runs" / f"es-chaotic-seed{best['seed']}" / BEST_LOSS_FILE
    summary = {"loss": str(loss_file.relative_to(args.out)), "held_out_fitness": best["held_out_fitness"]}
    for name, (model, dataset) in META_TESTS.items():
        out = args.out / f"meta_test_{name}"
        result = meta_test([str(loss_file), "ce"], dataset, out, model=model, seeds=args.meta_seeds,
                           steps=args.meta_steps, protocol="paper", mln_path="exact", threads=1)
        harness.say(result.table)
        summary[name] = {"report": str(out.relative_to(args.out)), "seconds": round(result.seconds, 1)}
    write_json(args.out / "meta_test.json", summary)


if __name__ == "__main__":
    main()
