"""Measurements behind docs/reproduction.md (Adaptive-MLN claims on this machine).

    python benchmarks/reproduction.py                  # everything, resumes what exists
    python benchmarks/reproduction.py --meta-seeds 3
    python benchmarks/reproduction.py --generations 1 --meta-seeds 1 --meta-steps 20 --out /tmp/repro  # smoke check

1. Fig. 5: one quick-preset evolution on linear tasks (single-layer perceptrons) and one on
   nonlinear tasks (three-layer perceptrons), seed 0; their convergence on one figure.
2. Table 2: each evolved loss against cross-entropy and MSE with
   :func:`deap_mln.metatest.run.meta_test` (what ``deap-mln meta-test`` runs):
   synthetic-linear (perceptron), synthetic-nonlinear (mlp3), digits (mlp3) and real MNIST
   images (LeNet-5 on the fixed 8,000 / 2,000 split of the official test set). Each evolved
   loss is trained at the paper's MLN learning rate (1e-4) and again at CE's (1e-3, with CE
   alongside for a paired test), because the verdict depends on it.
Table 3 and the ablation come from benchmarks/es_vs_hybrid.py.
Outputs: benchmarks/results/reproduction/ (run directories are not committed). An evolution
that was interrupted is resumed from its checkpoint; finished steps are skipped.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import harness

from deap_mln.io import BEST_LOSS_FILE, LOGBOOK_FILE, MLN_CHECKPOINT_FILE
from deap_mln.metatest.run import meta_test
from deap_mln.metatest.train import BASELINE_LR, MLN_LR
from deap_mln.mln.config import preset
from deap_mln.mln.run import evolve, resume
from deap_mln.plotting import pyplot

EVOLUTIONS = {"linear": {}, "nonlinear": {"task_kind": "nonlinear"}}  # overrides of the quick preset
META_TESTS = [  # (dataset, model, which evolved loss)
    ("synthetic-linear", "perceptron", "linear"),
    ("synthetic-nonlinear", "mlp3", "nonlinear"),
    ("digits", "mlp3", "linear"),
    ("mnist", "lenet", "linear"),
]
# folder suffix -> (losses besides the evolved one, MLN learning rate: the paper's, or CE's)
LEARNING_RATES = {"": (["ce", "mse"], MLN_LR), "_mln-lr-1e-3": (["ce"], BASELINE_LR)}


def plot_convergence(out: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, kind in enumerate(EVOLUTIONS):
        rows = [{k: float(v) for k, v in row.items()}
                for row in harness.read_csv_rows(out / f"evolve-{kind}" / LOGBOOK_FILE)]
        gen = [r["gen"] for r in rows]
        ax.plot(gen, [r["best"] for r in rows], color=f"C{i}", label=f"{kind} tasks: best")
        ax.plot(gen, [r["mean"] for r in rows], color=f"C{i}", ls="--", label=f"{kind} tasks: mean")
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness (-MSE vs ground truth)")
    ax.set_title("Fig. 5 analogue: single- vs three-layer perceptron tasks (quick preset, seed 0)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fig5_convergence.png", dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meta-seeds", type=int, default=5)
    parser.add_argument("--generations", type=int, help="override the quick preset's generations (smoke runs)")
    parser.add_argument("--meta-steps", type=int, help="override each data set's meta-test steps (smoke runs)")
    parser.add_argument("--out", type=Path, default=harness.RESULTS_DIR / "reproduction",
                        help="results directory (default benchmarks/results/reproduction)")
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for kind, overrides in EVOLUTIONS.items():
        run = out / f"evolve-{kind}"
        if (run / BEST_LOSS_FILE).is_file():
            continue
        if (run / MLN_CHECKPOINT_FILE).is_file():
            result = resume(run, progress=None)
        else:
            result = evolve(preset("quick", seed=0, generations=args.generations, **overrides), run, progress=None)
        harness.say(f"evolve {kind}: best fitness {result.best_fitness:.5f} in {result.seconds:.0f} s")
    plot_convergence(out)
    for dataset, model, kind in META_TESTS:
        loss = str(out / f"evolve-{kind}" / BEST_LOSS_FILE)
        for suffix, (others, mln_lr) in LEARNING_RATES.items():
            target = out / f"meta_test_{dataset}{suffix}"
            if (target / "summary.csv").is_file():
                continue
            result = meta_test([loss, *others], dataset, target, model=model, seeds=args.meta_seeds,
                               steps=args.meta_steps, protocol="paper", mln_lr=mln_lr, mln_path="exact", threads=1)
            harness.say(f"meta-test {dataset}/{model}{suffix}: {len(result.records)} runs in {result.seconds:.0f} s")


if __name__ == "__main__":
    main()
