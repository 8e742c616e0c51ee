"""Meta-testing: train classifiers with evolved and baseline losses, compare test accuracy.

For each loss and each seed, :func:`train_and_evaluate` trains a fresh classifier on a data
set's training split and records its test accuracy over training. A seed fixes the initial
weights and the mini-batch order, and is the same for every loss, so the losses are
compared on equal terms and the comparison over seeds is paired.

Defaults follow the Adaptive-MLN paper's meta-test: Adam, learning rate 1e-3 for the
baselines and 1e-4 for evolved (MLN) losses, batch 500, 1,000 steps on synthetic tasks.
:func:`deap_mln.metatest.run.meta_test` runs a whole comparison and writes the files of
:func:`deap_mln.metatest.report.write_report`.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from deap_mln.data.datasets import ClassificationData
from deap_mln.metatest.baselines import LossSpec
from deap_mln.metatest.models import MODELS, build_model
from deap_mln.seeding import seed_sequence, torch_generator

OPTIMIZERS = ("adam", "sgd")
BASELINE_LR, MLN_LR, BATCH_SIZE = 1e-3, 1e-4, 500  # the paper's meta-test settings
# Steps per data set: the paper's 1,000 on synthetic tasks; for the others, what trains
# the default small models close to convergence in minutes on a 2-core CPU (docs/meta_test.md).
DEFAULT_STEPS = {"synthetic-linear": 1000, "synthetic-nonlinear": 1000, "digits": 500, "mnist1d": 1000,
                 "mnist": 500, "fashion-mnist": 1000, "cifar10": 2000}
CURVE_POINTS = 20  # default evaluations over training, besides step 0


@dataclass(frozen=True)
class MetaTestSettings:
    """How each classifier is trained; the same for every loss except the learning rate."""

    model: str
    steps: int
    batch_size: int = BATCH_SIZE
    optimizer: str = "adam"
    lr: float = BASELINE_LR          # for ce, mse, focal
    mln_lr: float = MLN_LR           # for Meta-Loss Networks (saved MLN or compiled-table files)
    eval_every: int = 50             # test accuracy every this many steps (and at the end)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose from {', '.join(MODELS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
        if min(self.steps, self.batch_size, self.eval_every) < 1:
            raise ValueError("steps, batch size and eval_every must be positive")
        if not (self.lr > 0 and self.mln_lr > 0):
            raise ValueError("learning rates must be positive")


@dataclass
class RunRecord:
    """One trained classifier: test accuracy at each evaluated step."""

    loss: str
    seed: int
    steps: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    diverged: bool = False  # the loss became NaN or infinite; training stopped there
    seconds: float = 0.0

    @property
    def final_accuracy(self) -> float:
        return self.accuracy[-1]


def run_seed(seed: int) -> int:
    """The torch seed of run ``seed`` (model initialisation, dropout)."""
    return int(seed_sequence(seed, "meta-test-model").generate_state(1)[0])


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: str = "cpu", chunk: int = 1000) -> float:
    """Fraction of ``x`` whose arg-max logit is the label ``y`` (model in eval mode)."""
    model.eval()
    correct = 0
    for i in range(0, len(y), chunk):
        correct += int((model(x[i:i + chunk].to(device)).argmax(dim=1) == y[i:i + chunk].to(device)).sum())
    return correct / len(y)


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """Adam (paper's meta-test) or plain SGD."""
    return torch.optim.Adam(params, lr=lr) if name == "adam" else torch.optim.SGD(params, lr=lr)


def train_and_evaluate(data: ClassificationData, loss: LossSpec, seed: int, settings: MetaTestSettings) -> RunRecord:
    """Train a fresh ``settings.model`` on ``data`` with ``loss`` for ``settings.steps`` steps.

    Batches are drawn without replacement from a permutation per epoch (the last, partial
    batch of an epoch is dropped). The initial weights come from ``run_seed(seed)`` and the
    batch order from ``torch_generator(seed, "meta-test-batches")``, neither from the loss.
    """
    start = time.perf_counter()
    device = settings.device
    torch.manual_seed(run_seed(seed))
    model = build_model(settings.model, data.input_shape, data.num_classes).to(device)
    criterion = loss.module.to(device)
    for p in criterion.parameters():  # an evolved loss is fixed: no gradients for its weights
        p.requires_grad_(False)
    optimizer = make_optimizer(settings.optimizer, model.parameters(), settings.mln_lr if loss.mln else settings.lr)
    x, y = data.x_train.to(device), data.y_train.to(device)
    n = len(y)
    batch = min(settings.batch_size, n)
    batches = torch_generator(seed, "meta-test-batches")
    order, position = torch.empty(0, dtype=torch.int64), n
    record = RunRecord(loss.label, seed, [0], [evaluate_accuracy(model, data.x_test, data.y_test, device)])
    for step in range(1, settings.steps + 1):
        if position + batch > n:
            order, position = torch.randperm(n, generator=batches).to(device), 0
        idx = order[position:position + batch]
        position += batch
        model.train()
        value = criterion(model(x[idx]), y[idx])
        if not torch.isfinite(value):
            record.diverged = True
            break
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        if step % settings.eval_every == 0 or step == settings.steps:
            record.steps.append(step)
            record.accuracy.append(evaluate_accuracy(model, data.x_test, data.y_test, device))
    if record.diverged:  # keep the curve's length: the weights stay where training stopped
        final = evaluate_accuracy(model, data.x_test, data.y_test, device)
        for step in evaluation_steps(settings.steps, settings.eval_every):
            if step > record.steps[-1]:
                record.steps.append(step)
                record.accuracy.append(final)
    record.seconds = time.perf_counter() - start
    return record


def evaluation_steps(steps: int, eval_every: int) -> list[int]:
    """The steps at which test accuracy is recorded: 0, every ``eval_every``, and the last."""
    marks = list(range(0, steps + 1, eval_every))
    return marks if marks[-1] == steps else marks + [steps]


def run_meta_test(losses: Sequence[LossSpec], data: ClassificationData, settings: MetaTestSettings,
                  seeds: Sequence[int], progress: Callable[[str], None] | None = None) -> list[RunRecord]:
    """Every loss x every seed, loss by loss; returns the runs in that order."""
    records = []
    for loss in losses:
        for seed in seeds:
            record = train_and_evaluate(data, loss, seed, settings)
            records.append(record)
            if progress:
                flag = "  (diverged)" if record.diverged else ""
                progress(f"{loss.label:>12}  seed {seed}: test accuracy {record.final_accuracy:.4f}  "
                         f"({record.seconds:.1f} s){flag}")
    return records
