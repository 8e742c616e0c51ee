"""The user's training (the spec) and the faithful fitness: flags shared by every search command."""
from __future__ import annotations

import argparse

from deap_mln.cli.argtypes import non_negative_int, positive_float, positive_int
from deap_mln.training.fitness import RATE_CHOICES
from deap_mln.training.models import MODELS
from deap_mln.training.splits import TRAININGS
from deap_mln.training.trainer import OPTIMIZERS

# flag dest -> config field (FaithfulFields); every one but fitness_training implies the faithful fitness
TRAINING_FLAGS = {"fitness_training": "fitness_training", "model": "model", "optimizer": "optimizer",
                  "momentum": "momentum", "spec_steps": "spec_steps", "spec_batch_size": "spec_batch_size",
                  "spec_lr": "spec_lr", "fraction": "fraction", "fitness_splits": "fitness_splits", "rates": "rates",
                  "halving_rungs": "halving_rungs"}


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """--fitness-training and the spec's flags; ``--device`` too."""
    group = parser.add_argument_group("the faithful fitness: your training, shortened (docs/own_training.md)")
    group.add_argument("--fitness-training", choices=TRAININGS,
                       help="faithful (the spec below for a fraction of its steps; the presets' default on real "
                            "data, chosen by benchmarks/results/fidelity) or brief (the wing's brief MLP training; "
                            "the default when a brief-training flag such as --steps is given)")
    group.add_argument("--model", choices=MODELS, help="the spec's model (default mlp3)")
    group.add_argument("--optimizer", choices=OPTIMIZERS, help="adam (default) or sgd with --momentum")
    group.add_argument("--momentum", type=float, help="SGD's momentum (default 0.9)")
    group.add_argument("--spec-steps", type=non_negative_int, help="the spec's steps (default: the data's meta-test steps)")
    group.add_argument("--spec-batch-size", type=positive_int, help="the spec's batch size (default 500)")
    group.add_argument("--spec-lr", type=positive_float, help="the spec's learning rate (default: adam 1e-3, sgd 0.1)")
    group.add_argument("--fraction", type=positive_float, help="of the spec's steps a candidate trains (default 0.1)")
    group.add_argument("--fitness-splits", type=positive_int, help="train / validation splits per candidate (default 1)")
    group.add_argument("--rates", choices=RATE_CHOICES, help="each candidate's rate: fixed (default), search or normalised")
    group.add_argument("--halving-rungs", type=non_negative_int,
                       help="evolve-taylor: successive halving over each generation, this many rungs (default 0: off)")
    add_device_argument(group)


def add_device_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--device", help="where classifiers train: cpu (default), cuda, cuda:N or mps")


def training_overrides(args: argparse.Namespace) -> dict:
    """The config fields the flags set; a spec flag without --fitness-training means faithful."""
    fields = {field: getattr(args, flag) for flag, field in TRAINING_FLAGS.items() if getattr(args, flag) is not None}
    if args.device is not None:
        fields["device"] = args.device
    if fields.keys() - {"fitness_training", "device"} and "fitness_training" not in fields:
        fields["fitness_training"] = "faithful"
    return fields


TRAINING_FLAG_NAMES = (*TRAINING_FLAGS, "device")
