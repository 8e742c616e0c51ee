"""EDL pretraining: chaotic against Gaussian mutation, then the pretrained loss against CE.

    python benchmarks/edl_mutation.py                 # 10 seeds, edl budget, then meta-tests
    python benchmarks/edl_mutation.py --seeds 3 --meta-seeds 3

Part 1 is ``deap-mln bench --variants es-chaotic es --seeds 10 --budget edl``: the EDL
search (ES with chaotic mutation) against the same ES with Gaussian (log-normal) mutation,
same budget and seeds; generations to the threshold, held-out ranking fitness, Mann-Whitney
U and A12. Part 2 meta-tests the loss of the chaotic run with the best held-out fitness
against cross-entropy on digits (mlp3) and on a synthetic task (perceptron), with
``deap-mln meta-test``. Results go to benchmarks/results/edl_mutation/.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from deap_mln.mln.variants import compare_variants
from deap_mln.cli import main as cli

META_TESTS = {"digits": ("mlp3", "digits"), "synthetic": ("perceptron", "synthetic-linear")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--meta-seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "edl_mutation")
    args = parser.parse_args()
    report = compare_variants(["es-chaotic", "es"], args.seeds, "edl", args.out, workers=args.workers)
    print((args.out / "report.md").read_text())

    chaotic = [r for r in report["results"] if r["variant"] == "es-chaotic"]
    best = max(chaotic, key=lambda r: r["held_out_fitness"])
    loss_file = args.out / "runs" / f"es-chaotic-seed{best['seed']}" / "best_loss.pt"
    summary = {"loss": str(loss_file.relative_to(args.out)), "held_out_fitness": best["held_out_fitness"]}
    for name, (model, dataset) in META_TESTS.items():
        out = args.out / f"meta_test_{name}"
        code = cli(["meta-test", "--loss", str(loss_file), "ce", "--model", model, "--dataset", dataset,
                    "--seeds", str(args.meta_seeds), "--threads", "1", "--quiet", "--out", str(out)])
        summary[name] = {"exit_code": code, "report": str(out.relative_to(args.out))}
    (args.out / "meta_test.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
