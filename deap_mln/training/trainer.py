"""One trainer for the meta-test and the faithful fitness: a model, an optimizer, a loss, steps.

A :class:`TrainingSpec` names what the user trains (the model, Adam or SGD with momentum, batch
size, steps, learning rate, device). :class:`ClassifierTraining` trains one fresh model by it
with a candidate loss and can stop and go on (successive halving continues the survivors);
:func:`train_classifier` runs a whole training and records test accuracy along the way, as the
meta-test reports it.

Reproducibility: run ``seed`` fixes the initial weights (``run_seed(seed)``) and the batch
order (``torch_generator(seed, "meta-test-batches")``), never the loss or the rate, so every
loss trained with one seed sees the same model and the same batches. Batches are drawn
without replacement from a permutation per epoch; the last, partial batch is dropped.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from deap_mln.data.datasets import ClassificationData
from deap_mln.seeding import seed_sequence, torch_generator
from deap_mln.training.models import MODELS, build_model

OPTIMIZERS = ("adam", "sgd")
# Steps per data set: the paper's 1,000 on synthetic tasks; for the others, what trains the
# default small models close to convergence in minutes on a 2-core CPU (docs/meta_test.md).
DEFAULT_STEPS = {"synthetic-linear": 1000, "synthetic-nonlinear": 1000, "digits": 500, "mnist1d": 1000,
                 "mnist": 500, "fashion-mnist": 1000, "cifar10": 2000}
FILE_STEPS = 500   # a csv:, npz: or array source
USUAL_RATES = {"adam": 1e-3, "sgd": 0.1}  # a spec's rate when none is given: the centres of the meta-test's grids
SGD_MOMENTUM = 0.9  # the usual recipe (TaylorGLO's and EvoMAL's experiments); 0 gives plain SGD

# a model of the library's zoo by name, or any function (input_shape, num_classes) -> nn.Module
ModelBuilder = Callable[[Sequence[int], int], nn.Module]


@dataclass(frozen=True)
class TrainingSpec:
    """What the user trains: the same for every loss except, in a tuned comparison, the rate."""

    model: str | ModelBuilder = "mlp3"
    steps: int = 500
    batch_size: int = 500
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = SGD_MOMENTUM   # SGD's momentum (Adam ignores it)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if isinstance(self.model, str) and self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose from {', '.join(MODELS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
        if min(self.steps, self.batch_size) < 1:
            raise ValueError("steps and batch size must be positive")
        if not self.lr > 0:
            raise ValueError("learning rates must be positive")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        check_device(self.device)

    @property
    def model_name(self) -> str:
        return self.model if isinstance(self.model, str) else getattr(self.model, "__name__", "custom")

    def build(self, input_shape: Sequence[int], num_classes: int) -> nn.Module:
        if isinstance(self.model, str):
            return build_model(self.model, input_shape, num_classes)
        return self.model(input_shape, num_classes)


def default_steps(source: str) -> int:
    """The meta-test's steps for data ``source`` (:data:`DEFAULT_STEPS`, else :data:`FILE_STEPS`)."""
    return DEFAULT_STEPS.get(source, FILE_STEPS)


def check_device(device: str) -> None:
    """A one-line ValueError for a device torch cannot use here (``cuda`` without CUDA)."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device}: CUDA is not available here (torch {torch.__version__}); use --device cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device mps: not available here; use --device cpu")
    if not (device == "cpu" or device.startswith("cuda") or device == "mps"):
        raise ValueError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps")


def make_optimizer(name: str, params, lr: float, momentum: float = SGD_MOMENTUM) -> torch.optim.Optimizer:
    """Adam, or SGD with ``momentum`` (0: plain SGD)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    return torch.optim.Adam(params, lr=lr) if name == "adam" else torch.optim.SGD(params, lr=lr, momentum=momentum)


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


class ClassifierTraining:
    """A fresh ``spec`` model trained on ``data``'s training part with ``criterion`` at ``lr``,
    step by step; :meth:`train` goes on from where the last call stopped."""

    def __init__(self, data: ClassificationData, criterion: nn.Module, seed: int, spec: TrainingSpec,
                 lr: float | None = None):
        self.data, self.spec, self.device = data, spec, spec.device
        torch.manual_seed(run_seed(seed))
        self.model = spec.build(data.input_shape, data.num_classes).to(self.device)
        self.criterion = criterion.to(self.device)
        for p in self.criterion.parameters():  # an evolved loss is fixed: no gradients for its weights
            p.requires_grad_(False)
        self.optimizer = make_optimizer(spec.optimizer, self.model.parameters(), spec.lr if lr is None else lr,
                                        spec.momentum)
        self.x, self.y = data.x_train.to(self.device), data.y_train.to(self.device)
        self.batch = min(spec.batch_size, len(self.y))
        self.batches = torch_generator(seed, "meta-test-batches")
        self.order, self.position = torch.empty(0, dtype=torch.int64), len(self.y)
        self.step = 0
        self.diverged = False  # the loss became NaN or infinite; training stopped there

    def train(self, steps: int, on_step: Callable[[int], None] | None = None) -> None:
        """``steps`` more optimizer steps (none once diverged); ``on_step(step)`` after each."""
        n = len(self.y)
        for _ in range(steps):
            if self.diverged:
                return
            if self.position + self.batch > n:
                self.order, self.position = torch.randperm(n, generator=self.batches).to(self.device), 0
            idx = self.order[self.position:self.position + self.batch]
            self.position += self.batch
            self.model.train()
            value = self.criterion(self.model(self.x[idx]), self.y[idx])
            if not torch.isfinite(value):
                self.diverged = True
                return
            self.optimizer.zero_grad(set_to_none=True)
            value.backward()
            self.optimizer.step()
            self.step += 1
            if on_step:
                on_step(self.step)

    def accuracy(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None) -> float:
        """Accuracy on ``x``, ``y`` (default: the data's test part)."""
        return evaluate_accuracy(self.model, self.data.x_test if x is None else x,
                                 self.data.y_test if y is None else y, self.device)


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


def evaluation_steps(steps: int, eval_every: int) -> list[int]:
    """The steps at which test accuracy is recorded: 0, every ``eval_every``, and the last."""
    marks = list(range(0, steps + 1, eval_every))
    return marks if marks[-1] == steps else marks + [steps]


def train_classifier(data: ClassificationData, criterion: nn.Module, seed: int, spec: TrainingSpec, *,
                     lr: float | None = None, eval_every: int | None = None, label: str = "") -> RunRecord:
    """Train a fresh ``spec`` model on ``data`` with ``criterion`` for ``spec.steps`` steps at
    ``lr`` (default ``spec.lr``); test accuracy at step 0, every ``eval_every`` steps (default:
    only the last) and at the end. A diverged run keeps its curve's length: the weights stay
    where training stopped."""
    start = time.perf_counter()
    every = eval_every or spec.steps
    run = ClassifierTraining(data, criterion, seed, spec, lr)
    record = RunRecord(label, seed, [0], [run.accuracy()])

    def evaluate(step: int) -> None:
        if step % every == 0 or step == spec.steps:
            record.steps.append(step)
            record.accuracy.append(run.accuracy())

    run.train(spec.steps, evaluate)
    if run.diverged:
        record.diverged = True
        final = run.accuracy()
        for step in evaluation_steps(spec.steps, every):
            if step > record.steps[-1]:
                record.steps.append(step)
                record.accuracy.append(final)
    record.seconds = time.perf_counter() - start
    return record
