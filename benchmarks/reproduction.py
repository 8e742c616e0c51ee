"""Measurements behind docs/reproduction.md (Adaptive-MLN claims on this machine).

    python benchmarks/reproduction.py                  # everything, resumes what exists
    python benchmarks/reproduction.py --meta-seeds 3

1. Fig. 5: one quick-preset evolution on linear tasks (single-layer perceptrons) and one on
   nonlinear tasks (three-layer perceptrons), seed 0; their convergence on one figure.
2. Table 2: each evolved loss against cross-entropy and MSE with ``deap-mln meta-test``:
   synthetic-linear (perceptron), synthetic-nonlinear (mlp3), digits (mlp3) and real MNIST
   images (LeNet-5 on the fixed 8,000 / 2,000 split of the official test set). Each evolved
   loss is trained at the paper's MLN learning rate (1e-4) and again at CE's (1e-3, with CE
   alongside for a paired test), because the verdict depends on it.
Table 3 and the ablation come from benchmarks/es_vs_hybrid.py.
Outputs: benchmarks/results/reproduction/ (run directories are not committed).
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from deap_mln.cli import main as cli  # noqa: E402

EVOLUTIONS = {"linear": [], "nonlinear": ["--task-kind", "nonlinear"]}
META_TESTS = [  # (dataset, model, which evolved loss)
    ("synthetic-linear", "perceptron", "linear"),
    ("synthetic-nonlinear", "mlp3", "nonlinear"),
    ("digits", "mlp3", "linear"),
    ("mnist", "lenet", "linear"),
]


def read_logbook(path: Path) -> list[dict]:
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def plot_convergence(out: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, kind in enumerate(EVOLUTIONS):
        rows = read_logbook(out / f"evolve-{kind}" / "logbook.csv")
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
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "reproduction")
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for kind, flags in EVOLUTIONS.items():
        run = out / f"evolve-{kind}"
        if not (run / "best_loss.pt").is_file():
            assert cli(["evolve", "--preset", "quick", "--seed", "0", "--out", str(run), "--quiet", *flags]) == 0
    plot_convergence(out)
    for dataset, model, kind in META_TESTS:
        loss = str(out / f"evolve-{kind}" / "best_loss.pt")
        for suffix, extra in (("", ["mse"]), ("_mln-lr-1e-3", ["--mln-lr", "1e-3"])):
            target = out / f"meta_test_{dataset}{suffix}"
            if (target / "summary.csv").is_file():
                continue
            code = cli(["meta-test", "--loss", loss, "ce", *extra, "--model", model, "--dataset", dataset,
                        "--seeds", str(args.meta_seeds), "--threads", "1", "--out", str(target), "--quiet"])
            print(f"meta-test {dataset}/{model}{suffix}: exit code {code}", flush=True)


if __name__ == "__main__":
    main()
