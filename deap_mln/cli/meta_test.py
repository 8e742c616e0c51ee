"""``deap-mln meta-test``: compare evolved losses with cross-entropy, MSE, focal loss and label smoothing."""
from __future__ import annotations

import argparse
from pathlib import Path

from deap_mln.cli.argtypes import UsageError, positive_float, positive_int
from deap_mln.cli.data_flags import add_data_arguments
from deap_mln.cli.training_flags import add_device_argument
from deap_mln.metatest.baselines import ALIASES, BASELINES, LABEL_SMOOTHING, LS_TUNED, LS_TUNED_EPSILONS
from deap_mln.metatest.train import (
    BASELINE_LR,
    BATCH_SIZE,
    CURVE_POINTS,
    DEFAULT_STEPS,
    LR_GRIDS,
    MLN_LR,
    OPTIMIZERS,
    PROTOCOLS,
    TUNING_SEEDS,
)
from deap_mln.training.models import MODELS
from deap_mln.training.trainer import SGD_MOMENTUM


def register(sub: argparse._SubParsersAction) -> None:
    mt = sub.add_parser("meta-test", help="compare evolved losses with cross-entropy and other reference losses",
                        description="Train classifiers with each loss over several seeds; report test accuracy "
                                    "(table, CSV, markdown, curves.png) and a paired test of each loss against CE.")
    mt.add_argument("--loss", nargs="+", required=True, metavar="LOSS",
                    help=f"{', '.join(BASELINES)} ({', '.join(f'{a} = {b}' for a, b in ALIASES.items())}: "
                         f"CE with label smoothing {LABEL_SMOOTHING:g}; ls:EPS at another epsilon; {LS_TUNED}: "
                         f"epsilon chosen from {'/'.join(f'{e:g}' for e in LS_TUNED_EPSILONS)} with its rate, "
                         "tuned protocol only), or a saved evolved loss file "
                         "(a run's best_loss.pt: MLN, compiled table, GP or TaylorGLO)")
    mt.add_argument("--model", choices=MODELS, default="mlp3", help="classifier (default mlp3)")
    add_data_arguments(mt, "--dataset", required=True)
    mt.add_argument("--seeds", type=positive_int, default=5, help="runs per loss, seeds first-seed.. (default 5)")
    mt.add_argument("--first-seed", type=int, default=0)
    mt.add_argument("--steps", type=positive_int,
                    help="optimiser steps per run (default per dataset: "
                         + ", ".join(f"{k} {v}" for k, v in DEFAULT_STEPS.items()) + ")")
    mt.add_argument("--batch-size", type=positive_int, default=BATCH_SIZE, help=f"default {BATCH_SIZE}")
    mt.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="default adam")
    mt.add_argument("--momentum", type=float, default=SGD_MOMENTUM, help=f"SGD's momentum (default {SGD_MOMENTUM:g})")
    mt.add_argument("--protocol", choices=PROTOCOLS, default="tuned",
                    help="learning rates: tuned (default; each loss's own, chosen on a validation split of the "
                         "training data from the grid " + "/".join(f"{r:g}" for r in LR_GRIDS["adam"])
                         + " for adam, extended at its edges), equal (every loss at --lr), or paper "
                           "(--mln-lr for MLN files, --lr for the rest)")
    mt.add_argument("--lr", type=positive_float,
                    help=f"equal and paper protocols: the rate (paper: of all but MLN files); default {BASELINE_LR:g}")
    mt.add_argument("--mln-lr", type=positive_float,
                    help=f"paper protocol: the rate of MLN loss files (default {MLN_LR:g}); GP formula files use --lr")
    mt.add_argument("--tuning-seeds", type=positive_int,
                    help=f"tuned protocol: runs per learning rate (default {TUNING_SEEDS})")
    mt.add_argument("--exact-mln", action="store_true",
                    help="train saved MLN losses through the network itself (default: through its compiled table)")
    mt.add_argument("--eval-every", type=positive_int,
                    help=f"record test accuracy every this many steps (default steps/{CURVE_POINTS})")
    mt.add_argument("--data-dir", type=Path,
                    help="root of torchvision data (default ./data; for mnist, ../shared/data/mnist when ./data has none)")
    mt.add_argument("--download", action="store_true", help="let torchvision download mnist/fashion-mnist/cifar10")
    mt.add_argument("--data-seed", type=int, default=0, help="fixes the synthetic task and the data splits (default 0)")
    mt.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's own choice)")
    add_device_argument(mt)
    mt.add_argument("--out", type=Path, required=True, help="folder for the table, CSVs and curves.png")
    mt.add_argument("--quiet", action="store_true", help="no progress lines")
    mt.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from deap_mln.metatest.run import meta_test

    unused = [flag for flag, value, used_by in (("--lr", args.lr, ("equal", "paper")), ("--mln-lr", args.mln_lr, ("paper",)),
                                                ("--tuning-seeds", args.tuning_seeds, ("tuned",)))
              if value is not None and args.protocol not in used_by]
    if unused:
        raise UsageError(f"meta-test: {' and '.join(unused)} {'has' if len(unused) == 1 else 'have'} no effect "
                         f"under --protocol {args.protocol}")
    say = None if args.quiet else (lambda line: print(line, flush=True))
    result = meta_test(args.loss, args.data, args.out, label=args.label, momentum=args.momentum, model=args.model,
                       seeds=args.seeds,
                       first_seed=args.first_seed, steps=args.steps, batch_size=args.batch_size,
                       optimizer=args.optimizer, protocol=args.protocol, lr=args.lr or BASELINE_LR,
                       mln_lr=args.mln_lr or MLN_LR, tuning_seeds=args.tuning_seeds or TUNING_SEEDS,
                       mln_path="exact" if args.exact_mln else "table", eval_every=args.eval_every,
                       data_dir=args.data_dir, download=args.download, data_seed=args.data_seed,
                       threads=args.threads, device=args.device or "cpu", progress=say)
    print(result.table)
    for line in result.warnings:
        print(line)
    if say:
        say(f"{len(result.records)} runs in {result.seconds:.1f} s; files in {result.out_dir}")
    return 0
