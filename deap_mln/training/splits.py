"""How a GP or TaylorGLO search scores a candidate loss: a brief training on the fitness splits of
:mod:`deap_mln.data.fitness_splits`, or the user's own training shortened (the faithful fitness).

``fitness_training`` chooses:

- ``brief`` (today's default): an MLP with ``hidden`` units trained by Adam at ``lr`` for
  ``steps`` steps of ``batch_size`` on the fitness split, scored on its validation part
  (:func:`deap_mln.data.brief_training.train_and_score`); bit for bit what the wings always did;
- ``faithful``: the user's :class:`~deap_mln.training.trainer.TrainingSpec` (``model``,
  ``optimizer``, ``momentum``, ``spec_steps``, ``spec_batch_size``, ``spec_lr``, ``device``)
  trained for ``fraction`` of its steps on ``fitness_splits`` resampled splits of the data's
  training part, each candidate at its own rate by ``rates``
  (:func:`deap_mln.training.fitness.faithful_fitness`).

Either way the data's test part is never read by a search (only ``final`` scores, which a
benchmark asks for, train on train + validation and score on it).
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deap_mln.data.brief_training import BriefTraining, Split, module_logit_gradient, train_and_score
from deap_mln.data.datasets import ClassificationData
from deap_mln.data.fitness_splits import fitness_data_of
from deap_mln.data.source import load_source
from deap_mln.io import CONFIG_FILE, DATA_FILE, write_json
from deap_mln.parallel import DispatchOptions, resolve_backend, single_thread
from deap_mln.seeding import seed_sequence
from deap_mln.training.fitness import RATE_CHOICES, FaithfulFitness, faithful_fitness, successive_halving
from deap_mln.training.trainer import SGD_MOMENTUM, USUAL_RATES, TrainingSpec, default_steps

TRAININGS = ("brief", "faithful")
# What the presets score candidates with on real data: the setting with the best mean rank
# agreement with the tuned meta-test at a cost of at most 0.15 of one meta-test run, over the
# cells measured (benchmarks/results/fidelity/fidelity.json, docs/own_training.md). A config's own
# field default stays "brief", so a saved config without these fields loads as what it ran.
MEASURED_FITNESS: dict[str, Any] = dict(fitness_training="faithful", fraction=0.1, rates="fixed")
BRIEF_FIELDS = ("hidden", "steps", "batch_size", "lr")  # set one, and a preset keeps the brief training


@dataclass(frozen=True)
class SplitTraining:
    """How a search scores a candidate loss; the same for every candidate of a run."""

    dataset: str = "digits"
    data_seed: int = 0
    data_label: str = ""     # a CSV source's label column ("": the last)
    seed: int = 0            # the run seed: fixes initial weights and batch order
    # the brief training
    hidden: int = 32         # MLP hidden units; 0 means logistic regression
    steps: int = 100
    batch_size: int = 64
    lr: float = 0.01         # Adam
    stream: str = "gp"       # names the seed streams "<stream>-classifier" and "<stream>-batches"
    # the faithful fitness: the user's spec, shortened (None: the brief training above)
    spec: TrainingSpec | None = None
    faithful: FaithfulFitness = FaithfulFitness()
    halving_rungs: int = 0   # successive halving over a generation (TaylorGLO); 0: off


def split_accuracy(loss: nn.Module, settings: SplitTraining, final: bool = False) -> float:
    """The fitness of ``loss`` (module docstring); NaN if the loss diverged. Under the brief
    training, ``final`` trains on train + validation and scores on the test part. Torch runs on
    one thread."""
    if settings.spec is not None:
        if final:
            raise ValueError("the faithful fitness has no final score: meta-test the loss instead")
        with single_thread():
            return faithful_fitness(loss, faithful_data(settings), settings.spec, settings.faithful,
                                    seed=faithful_seed(settings), data_seed=settings.data_seed)
    data = fitness_data_of(settings)
    x, y = data.x_train, data.y_train
    if final:
        x, y = torch.cat([x, data.x_val]), torch.cat([y, data.y_val])
        split = Split(x, y, data.x_test, data.y_test, data.num_classes)
    else:
        split = Split(x, y, data.x_val, data.y_val, data.num_classes)
    training = BriefTraining(
        hidden=settings.hidden, steps=settings.steps, batch_size=settings.batch_size, lr=settings.lr,
        optimizer="adam",
        init_seed=int(seed_sequence(settings.seed, f"{settings.stream}-classifier").generate_state(1)[0]),
        batch_seed=int(seed_sequence(settings.seed, f"{settings.stream}-batches").generate_state(1)[0]))
    with single_thread():
        return float(train_and_score(module_logit_gradient(loss), split, 1, training)[0])


def faithful_data(settings: SplitTraining) -> ClassificationData:
    """The data the faithful fitness trains on: the source's training part (its test part unread)."""
    return _source(settings.dataset, settings.data_label, settings.data_seed)


@functools.lru_cache(maxsize=4)
def _source(dataset: str, label: str, data_seed: int) -> ClassificationData:
    """The data of one source, read once per process (a search scores hundreds of candidates)."""
    return load_source(dataset, label=label or None, data_seed=data_seed)


def faithful_seed(settings: SplitTraining) -> int:
    """The run seed of every faithful training of a search: the same for every candidate."""
    return int(seed_sequence(settings.seed, f"{settings.stream}-faithful").generate_state(1)[0])


def split_halving(losses: Sequence[nn.Module], settings: SplitTraining) -> list[float]:
    """Successive halving of one generation's losses under the faithful fitness
    (:func:`deap_mln.training.fitness.successive_halving`): ``rung reached + validation accuracy``,
    NaN for a loss that diverged."""
    if settings.spec is None:
        raise ValueError("successive halving trains the faithful fitness's spec; this search uses the brief training")
    with single_thread():
        return successive_halving(losses, faithful_data(settings), settings.spec, settings.faithful,
                                  faithful_seed(settings), settings.halving_rungs, settings.data_seed)


def preset_fitness(overrides: dict[str, Any]) -> dict[str, Any]:
    """The fitness fields a preset adds: :data:`MEASURED_FITNESS`, unless ``overrides`` choose
    the training themselves or set a brief-training field (then the brief training they tune)."""
    if "fitness_training" in overrides or any(field in overrides for field in BRIEF_FIELDS):
        return {}
    return dict(MEASURED_FITNESS)


@dataclass
class FaithfulFields:
    """The config fields of the faithful fitness (every family's config has them)."""

    # brief: the wing's own brief training; faithful: the user's spec below, shortened
    fitness_training: str = "brief"
    model: str = "mlp3"            # the spec's model: perceptron, mlp3, lenet, resnet18, vgg16
    optimizer: str = "adam"        # adam, or sgd with momentum
    momentum: float = SGD_MOMENTUM
    spec_steps: int = 0            # the spec's steps (0: the data set's meta-test steps)
    spec_batch_size: int = 500
    spec_lr: float = 0.0           # the spec's rate (0: the optimizer's usual rate, Adam 1e-3, SGD 0.1)
    fraction: float = 0.1          # of the spec's steps a candidate trains
    fitness_splits: int = 1        # resampled train / validation splits of the training part
    rates: str = "fixed"           # fixed, search (best of 3 neighbouring rates) or normalised (CE's gradient scale)
    halving_rungs: int = 0         # successive halving over each generation, this many rungs (TaylorGLO); 0: off
    device: str = "cpu"            # where candidates train: cpu, cuda, cuda:N, mps

    def training_spec(self, source: str) -> TrainingSpec:
        return TrainingSpec(model=self.model, steps=self.spec_steps or default_steps(source),
                            batch_size=self.spec_batch_size, optimizer=self.optimizer,
                            lr=self.spec_lr or USUAL_RATES[self.optimizer],
                            momentum=self.momentum, device=self.device)

    def faithful(self) -> FaithfulFitness:
        return FaithfulFitness(fraction=self.fraction, splits=self.fitness_splits, rates=self.rates)

    def validate_training(self, source: str) -> None:
        """Raise ValueError for a bad faithful-fitness field (the spec is checked when it is used)."""
        if self.fitness_training not in TRAININGS:
            raise ValueError(f"fitness_training must be one of {TRAININGS}, got {self.fitness_training!r}")
        if self.rates not in RATE_CHOICES:
            raise ValueError(f"rates must be one of {RATE_CHOICES}, got {self.rates!r}")
        if self.spec_steps < 0:
            raise ValueError(f"spec_steps must be non-negative, got {self.spec_steps}")
        self.training_spec(source)  # the model, optimizer, momentum, sizes, rate and device
        self.faithful()             # fraction and splits
        if self.halving_rungs < 0:
            raise ValueError(f"halving_rungs must be non-negative, got {self.halving_rungs}")
        if self.halving_rungs and self.fitness_training != "faithful":
            raise ValueError("successive halving (halving_rungs) trains the faithful fitness's spec; "
                             "add --fitness-training faithful or a spec flag")
        if self.device != "cpu" and self.fitness_training != "faithful":
            raise ValueError(f"device {self.device}: only the faithful fitness trains on a device; the brief "
                             "training runs on the CPU (add --fitness-training faithful or a spec flag)")


@dataclass
class SplitTrainingFields(FaithfulFields):
    """The config fields of :class:`SplitTraining`, shared by the GP and TaylorGLO configs."""

    TRAINING_STREAM = "gp"   # class attribute, not a field: the wing's seed-stream name

    seed: int = 0            # the run seed
    # fitness data: digits, mnist1d, synthetic or any data source (csv:PATH, npz:PATH, mnist, ...)
    dataset: str = "digits"
    data_seed: int = 0
    data_label: str = ""     # a CSV source's label column ("": the last)
    # the brief training (fitness_training "brief")
    hidden: int = 32
    steps: int = 100
    batch_size: int = 64
    lr: float = 0.01

    def training(self) -> SplitTraining:
        faithful = self.fitness_training == "faithful"
        return SplitTraining(dataset=self.dataset, data_seed=self.data_seed, data_label=self.data_label, seed=self.seed,
                             hidden=self.hidden, steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                             stream=self.TRAINING_STREAM, spec=self.training_spec(self.dataset) if faithful else None,
                             faithful=self.faithful(), halving_rungs=self.halving_rungs)



def open_split_run(config: Any, out_dir: str | Path, backend: str | DispatchOptions, workers: int,
                   taken_hint: str = "choose another --out") -> Path:
    """Start the run directory of a search scored on these splits (GP, TaylorGLO): refuse a bad
    ``config``, a directory that already holds a run (``taken_hint`` says what to do), an
    unknown backend or missing data before anything is written; then create it and save the config."""
    out = Path(out_dir)
    config.validate()
    if (out / CONFIG_FILE).exists():
        raise FileExistsError(f"{out} already holds a run; {taken_hint}")
    resolve_backend(backend, workers)
    data = fitness_data_of(config)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / CONFIG_FILE)
    read = ("resampled train / validation splits of the training part (the spec, shortened)"
            if config.fitness_training == "faithful" else "the fitness split's train and validation parts")
    write_json(out / DATA_FILE, dict(source=config.dataset, label=config.data_label or None, description=data.source,
                                     class_names=list(data.class_names) if data.class_names else None,
                                     fitness=read, test_part="never read by the search (the meta-test's alone)"))
    return out


def class_names(config: Any) -> list[str] | None:
    """The class names of a GP or TaylorGLO run's data (a CSV's class-name labels), for its saved loss."""
    names = fitness_data_of(config).class_names
    return list(names) if names else None
