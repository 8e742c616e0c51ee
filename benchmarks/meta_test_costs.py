"""Cost per step and CE convergence of the meta-test's data sets and models (docs/meta_test.md).

    taskset -c 0,1 python benchmarks/meta_test_costs.py --threads 2 --out benchmarks/results/meta_test_costs
    python benchmarks/meta_test_costs.py --quick --out /tmp/meta_test_costs   # smoke check, about a minute

For each (data set, model): one CE run (seed 0) at a length that shows where its accuracy
settles (test accuracy every tenth of the run), and a short run with a randomly initialised
paper-size MLN (175,718 weights) as the loss, which costs what an evolved one costs.
ResNet-18 and VGG-16 get a few CE steps only: on a CPU one step takes seconds. The
3x32x32 rows use random tensors of CIFAR-10's shape (CIFAR-10 is not on this machine).
Times include the evaluations on the test split. Writes ``<out>.json`` and ``<out>.md``.
``--quick`` runs every case with a hundredth of its steps (at least one): a smoke check.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import harness
import torch

from deap_mln.data.datasets import ClassificationData, load_dataset
from deap_mln.metatest.baselines import LossSpec, resolve_loss
from deap_mln.metatest.train import MetaTestSettings, train_and_evaluate
from deap_mln.mln.network import MetaLossNetwork, MLNLoss

# (data set, model, CE steps, MLN steps); MLN steps 0: not measured
CASES = [("synthetic-linear", "perceptron", 1000, 100), ("synthetic-nonlinear", "mlp3", 1000, 100),
         ("digits", "mlp3", 1000, 100), ("mnist1d", "mlp3", 3000, 100), ("mnist", "lenet", 1500, 100),
         ("mnist", "resnet18", 10, 0), ("mnist", "vgg16", 10, 0),
         ("cifar-shaped", "lenet", 50, 0), ("cifar-shaped", "resnet18", 5, 0), ("cifar-shaped", "vgg16", 5, 0)]


def cifar_shaped() -> ClassificationData:
    g = torch.Generator().manual_seed(0)
    return ClassificationData("cifar-shaped", torch.randn(2000, 3, 32, 32, generator=g),
                              torch.randint(0, 10, (2000,), generator=g), torch.randn(500, 3, 32, 32, generator=g),
                              torch.randint(0, 10, (500,), generator=g), 10, "random tensors of CIFAR-10's shape")


def measure(data: ClassificationData, model: str, loss: LossSpec, steps: int, device: str) -> dict:
    settings = MetaTestSettings(model=model, steps=steps, eval_every=max(1, steps // 10), device=device)
    record = train_and_evaluate(data, loss, 0, settings)
    return dict(dataset=data.name, model=model, loss=loss.label, steps=steps, seconds=round(record.seconds, 2),
                ms_per_step=round(1000 * record.seconds / steps, 1),
                curve=[[s, round(a, 4)] for s, a in zip(record.steps, record.accuracy)])


def markdown(report: dict) -> str:
    lines = [f"# Meta-test costs ({report['device']}, {report['threads']} threads, torch {report['torch']})", "",
             f"{harness.machine_line(report['machine'])}. Command: `{report['command']}`.", "",
             "| data | model | loss | steps | ms/step | test accuracy at tenths of the run |",
             "|---|---|---|---:|---:|---|"]
    lines += [f"| {r['dataset']} | {r['model']} | {r['loss']} | {r['steps']} | {r['ms_per_step']} | "
              + " ".join(f"{a:.3f}" for _, a in r["curve"]) + " |" for r in report["rows"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="path prefix of the .json and .md files")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="a hundredth of each case's steps: a smoke check")
    args = parser.parse_args()
    report: dict = dict(command=harness.command_line(__file__), machine=harness.machine_info(), threads=args.threads,
                        device=args.device, torch=torch.__version__, rows=[])
    torch.set_num_threads(args.threads)
    ce, mln = resolve_loss("ce"), LossSpec("mln (random, paper size)", MLNLoss(MetaLossNetwork()), mln=True)
    rows, cache = report["rows"], {}
    for name, model, ce_steps, mln_steps in CASES:
        if name not in cache:
            cache[name] = cifar_shaped() if name == "cifar-shaped" else load_dataset(name)
        for loss, steps in ((ce, ce_steps), (mln, mln_steps)):
            if steps:
                run_steps = max(1, steps // 100) if args.quick else steps
                rows.append(measure(cache[name], model, loss, run_steps, args.device))
                harness.say(json.dumps(rows[-1]))
    json_path, md_path = harness.write_results(args.out, report, markdown(report))
    harness.say(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
