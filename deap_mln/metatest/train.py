"""Meta-testing: train classifiers with evolved and baseline losses, compare test accuracy.

For each loss and each seed, :func:`train_and_evaluate` trains a fresh classifier on a data
set's training split and records its test accuracy over training. A seed fixes the initial
weights and the mini-batch order, and is the same for every loss, so the losses are
compared on equal terms and the comparison over seeds is paired.

Batch 500 and 1,000 steps on synthetic tasks follow the Adaptive-MLN paper's meta-test
(Adam). The learning rate of each loss depends on the protocol (:data:`PROTOCOLS`):

- ``tuned`` (default): :func:`tune_learning_rate` picks each loss's own rate on a validation
  split of the training data (:func:`validation_split`) from a log-spaced grid that is
  extended until its best rate is bracketed by worse ones, within :data:`LR_BOUNDS`
  (:func:`search_learning_rate`); a search that ends at an edge is flagged. Adam is
  invariant to the scale of a loss's gradient, so comparing losses at one rate (or at the
  paper's two) mostly compares how well that rate suits each loss.
- ``equal``: every loss at one rate.
- ``paper``: 1e-3 for the baselines and 1e-4 for evolved (MLN) losses, as in the paper.

Under ``tuned``, the reference ``ls-tuned`` chooses its label-smoothing epsilon together with its
rate on the same validation split and seeds (:func:`tune_label_smoothing`).

:func:`deap_mln.metatest.run.meta_test` runs a whole comparison and writes the files of
:func:`deap_mln.metatest.report.write_report`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import torch

from deap_mln.data.datasets import ClassificationData
from deap_mln.metatest.baselines import LS_TUNED, LS_TUNED_EPSILONS, LossSpec, label_smoothing_spec
from deap_mln.seeding import generator
from deap_mln.training.trainer import (  # noqa: F401  (re-exported: the meta-test's trainer)
    DEFAULT_STEPS,
    OPTIMIZERS,
    RunRecord,
    TrainingSpec,
    evaluate_accuracy,
    evaluation_steps,
    make_optimizer,
    run_seed,
    train_classifier,
)

PROTOCOLS = ("tuned", "equal", "paper")
# The tuned protocol (docs/meta_test.md): starting grids on the ladder 1, 3, 10, 30, ... (about half a
# decade a step), centred on the usual rate of each optimiser (Adam 1e-3, SGD 0.1)
LR_GRIDS: dict[str, tuple[float, ...]] = {"adam": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2), "sgd": (1e-2, 3e-2, 0.1, 0.3, 1.0)}
LR_BOUNDS = (1e-6, 1e3)    # the search never tries a rate outside these rungs: a safety limit, not a budget
FLAT_RUNGS = 3             # rungs added in a row that score exactly the best's score end a search (flat, flagged)
VALIDATION_FRACTION = 0.2  # of the training examples, held out to score the rates
TUNING_SEEDS = 2           # runs per rate; their mean validation accuracy decides
TUNING_FIRST_SEED = 1_000_000  # tuning runs use seeds 1,000,000, ...: not the report's seeds, the same for every loss
BASELINE_LR, MLN_LR, BATCH_SIZE = 1e-3, 1e-4, 500  # the paper's meta-test settings
CURVE_POINTS = 20  # default evaluations over training, besides step 0
WARM_UP_STEPS = 20  # untimed steps per loss before its timed runs (run_meta_test)


@dataclass(frozen=True)
class MetaTestSettings(TrainingSpec):
    """How each classifier is trained (:class:`~deap_mln.training.trainer.TrainingSpec`, the same
    for every loss except the learning rate), and when its test accuracy is recorded."""

    lr: float = BASELINE_LR          # for ce, mse, focal (all losses under the equal protocol)
    mln_lr: float = MLN_LR           # for Meta-Loss Networks (saved MLN or compiled-table files)
    eval_every: int = 50             # test accuracy every this many steps (and at the end)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.eval_every < 1:
            raise ValueError("eval_every must be positive")
        if not self.mln_lr > 0:
            raise ValueError("learning rates must be positive")


def paper_learning_rate(loss: LossSpec, settings: MetaTestSettings) -> float:
    """The paper protocol's rate: ``settings.mln_lr`` for a Meta-Loss Network, else ``settings.lr``."""
    return settings.mln_lr if loss.mln else settings.lr


def train_and_evaluate(data: ClassificationData, loss: LossSpec, seed: int, settings: MetaTestSettings,
                       lr: float | None = None) -> RunRecord:
    """Train a fresh ``settings.model`` on ``data`` with ``loss`` for ``settings.steps`` steps at
    ``lr`` (:func:`paper_learning_rate` when None), test accuracy every ``settings.eval_every``
    steps: :func:`deap_mln.training.trainer.train_classifier`, the trainer the faithful fitness uses."""
    return train_classifier(data, loss.module, seed, settings, lr=paper_learning_rate(loss, settings) if lr is None else lr,
                            eval_every=settings.eval_every, label=loss.label)


def warm_up(data: ClassificationData, loss: LossSpec, settings: MetaTestSettings, steps: int = WARM_UP_STEPS) -> None:
    """A few untimed training steps with ``loss`` on a throwaway model and the first training
    batch, and one evaluation of it on that batch: the one-off costs (allocations, the
    optimiser's lazy initialisation) land here, not in a timed run.
    Touches neither the test split nor any seeded stream a run uses (each run reseeds)."""
    model = settings.build(data.input_shape, data.num_classes).to(settings.device)
    criterion = loss.module.to(settings.device)
    for p in criterion.parameters():  # as in a run: the loss's own weights stay fixed
        p.requires_grad_(False)
    x = data.x_train[:settings.batch_size].to(settings.device)
    y = data.y_train[:settings.batch_size].to(settings.device)
    optimizer = make_optimizer(settings.optimizer, model.parameters(), settings.lr, settings.momentum)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        value = criterion(model(x), y)
        if value.requires_grad:  # a GP tree without p does not depend on the model
            value.backward()
        optimizer.step()  # an optimiser's first step imports and initialises lazily
    evaluate_accuracy(model, x, y, settings.device)


def run_meta_test(losses: Sequence[LossSpec], data: ClassificationData, settings: MetaTestSettings,
                  seeds: Sequence[int], progress: Callable[[str], None] | None = None,
                  rates: Mapping[str, float] | None = None) -> list[RunRecord]:
    """Every loss x every seed, loss by loss; returns the runs in that order. ``rates`` maps
    a loss's label to its learning rate (default: :func:`paper_learning_rate`).

    Each loss is first warmed up (:func:`warm_up`), so that its first timed run does not pay
    the process's and the loss's one-off costs (about 2x a run's time on digits)."""
    records = []
    for loss in losses:
        warm_up(data, loss, settings)
        for seed in seeds:
            record = train_and_evaluate(data, loss, seed, settings, rates[loss.label] if rates else None)
            records.append(record)
            if progress:
                flag = "  (diverged)" if record.diverged else ""
                progress(f"{loss.label:>12}  seed {seed}: test accuracy {record.final_accuracy:.4f}  "
                         f"({record.seconds:.1f} s){flag}")
    return records


# ----------------------------------------------------------------------------------------------
# the tuned protocol: a learning rate per loss, chosen on held-out training data


def validation_split(data: ClassificationData, data_seed: int, fraction: float = VALIDATION_FRACTION) -> ClassificationData:
    """The training examples of ``data`` split into training and validation parts (as its
    ``*_train`` and ``*_test`` fields); the test split is not in it. The permutation comes
    from ``generator(data_seed, "meta-test-validation")``."""
    n = len(data.y_train)
    held_out = round(fraction * n)
    if not 0 < held_out < n:
        raise ValueError(f"a validation fraction of {fraction:g} of {n} training examples leaves an empty part")
    order = torch.as_tensor(generator(data_seed, "meta-test-validation").permutation(n))
    validation, train = order[:held_out], order[held_out:]
    return ClassificationData(f"{data.name} (validation split)", data.x_train[train], data.y_train[train],
                              data.x_train[validation], data.y_train[validation], data.num_classes,
                              f"{n - held_out} / {held_out} of the {n} training examples (permutation of data seed "
                              f"{data_seed}); the test split is not used")


def neighbour_rate(rate: float, up: bool) -> float:
    """The next rate above (``up``) or below ``rate`` on the ladder ..., 1e-4, 3e-4, 1e-3, 3e-3, ...
    (a rate off the ladder is first moved to its nearest rung)."""
    rung = round(2 * math.log10(rate)) + (1 if up else -1)  # rung k is 10^(k/2), written 1 or 3 x 10^e
    return float(f"{3 if rung % 2 else 1}e{rung // 2}")


STOPS = ("bracketed", "bound", "flat")  # why a rate search ended; all but the first leave the best at an edge


@dataclass(frozen=True)
class LearningRateSearch:
    """The rates tried (ascending), their scores (mean validation accuracy) and the rate chosen."""

    rates: list[float]
    scores: list[float]
    best: float
    extensions: int   # rates added beyond the starting grid
    at_edge: bool     # the best is still the smallest or largest rate tried: not bracketed (``stop`` says why)
    stop: str         # one of STOPS

    def edge_reason(self) -> str:
        """Why the search ended at an edge, in words ("" when bracketed)."""
        if not self.at_edge:
            return ""
        side = "smallest" if self.best == self.rates[0] else "largest"
        why = {"bound": "the next rate beyond it lies outside the search's bounds",
               "flat": f"the last {FLAT_RUNGS} rates added scored exactly the same"}.get(self.stop, self.stop)
        return f"{self.best:g} is the {side} learning rate tried ({why})"

    def to_dict(self) -> dict:
        return dict(chosen=self.best, grid=self.rates,
                    validation_accuracy=[None if math.isnan(s) else round(s, 6) for s in self.scores],
                    extensions=self.extensions, at_edge=self.at_edge, stop=self.stop)


def _rank(score: float) -> float:
    """A score as the search compares it: NaN (a diverged run) is worse than any number."""
    return -math.inf if math.isnan(score) else score


def search_learning_rate(score: Callable[[float], float], grid: Sequence[float] = LR_GRIDS["adam"],
                         bounds: tuple[float, float] = LR_BOUNDS, flat_rungs: int = FLAT_RUNGS) -> LearningRateSearch:
    """Score every rate of ``grid``, then add rungs of the ladder (:func:`neighbour_rate`) beyond
    the best rate, one at a time, until the best is bracketed.

    *Worse* is a strictly lower score; NaN (a diverged run) is worse than any number and equal
    to NaN. The best is the highest score, ties going to the smaller rate. It is *bracketed*
    when a rate was tried on each side of it: the one below is worse (an equal one would be
    the best), the one above is worse or equal. An equal score above counts as a bracket only
    because the score below is strictly worse: the score has risen to a level that the larger
    rate does not improve, and the best is the smallest rate that reaches it.

    While the best is the smallest (largest) rate tried, the next rung below (above) it is
    scored. The search stops unbracketed (``at_edge``) when that rung lies outside ``bounds``
    (``stop="bound"``), or when the last ``flat_rungs`` rungs added all scored exactly the
    best's score (``stop="flat"``: the score does not depend on the rate there, as for a loss
    that learns nothing; it happens going down, where ties go). Every rate the search tried
    when its extensions were capped at 3 it still tries first, in the same order, so a search
    that was bracketed then chooses the same rate now.
    """
    if len(set(grid)) < 3 or min(grid) <= 0:
        raise ValueError(f"a learning-rate grid needs at least 3 distinct positive rates, got {list(grid)}")
    low, high = bounds
    if not 0 < low < high:
        raise ValueError(f"learning-rate bounds must be 0 < low < high, got {bounds}")
    if flat_rungs < 1:
        raise ValueError(f"flat_rungs must be at least 1, got {flat_rungs}")
    scores = {rate: score(rate) for rate in sorted(set(grid))}
    extensions = flat = 0
    while True:
        rates = sorted(scores)
        best = max(rates, key=lambda rate: _rank(scores[rate]))  # max keeps the first, smallest, of equal scores
        if best not in (rates[0], rates[-1]):
            stop = "bracketed"
            break
        if flat == flat_rungs:
            stop = "flat"
            break
        beyond = neighbour_rate(best, up=best == rates[-1])  # always beyond the edge: never a rate tried
        if not low <= beyond <= high:
            stop = "bound"
            break
        scores[beyond] = score(beyond)
        extensions += 1
        flat = flat + 1 if _rank(scores[beyond]) == _rank(scores[best]) else 0
    return LearningRateSearch(rates, [scores[rate] for rate in rates], best, extensions, stop != "bracketed", stop)


def tune_learning_rate(tuning_data: ClassificationData, loss: LossSpec, settings: MetaTestSettings,
                       seeds: Sequence[int], grid: Sequence[float] | None = None,
                       bounds: tuple[float, float] = LR_BOUNDS) -> LearningRateSearch:
    """The rate at which ``loss`` gives the best mean final accuracy on ``tuning_data``'s held-out
    part over ``seeds`` (:func:`search_learning_rate`; ``grid`` defaults to :data:`LR_GRIDS`).

    ``tuning_data`` is :func:`validation_split` of the meta-test's data: its ``x_test`` are
    validation examples, never test examples. Each run is as long as a meta-test run.
    """
    once = replace(settings, eval_every=settings.steps)  # only the final accuracy counts

    def mean_validation_accuracy(rate: float) -> float:
        runs = [train_and_evaluate(tuning_data, loss, seed, once, lr=rate) for seed in seeds]
        return sum(run.final_accuracy for run in runs) / len(runs)

    return search_learning_rate(mean_validation_accuracy, grid or LR_GRIDS[settings.optimizer], bounds)


@dataclass(frozen=True)
class LabelSmoothingSearch:
    """``ls-tuned``'s choice: for each epsilon tried, its rate search (:func:`tune_learning_rate`);
    the epsilon chosen and its search, whose best rate is the pair's rate."""

    epsilons: list[float]
    searches: list[LearningRateSearch]
    epsilon: float
    search: LearningRateSearch

    def spec(self) -> LossSpec:
        """The chosen loss, labelled ``ls-tuned``."""
        return label_smoothing_spec(self.epsilon, LS_TUNED)

    def to_dict(self) -> dict:
        return dict(chosen_epsilon=self.epsilon, chosen_lr=self.search.best, epsilons=self.epsilons,
                    per_epsilon={f"{e:g}": s.to_dict() for e, s in zip(self.epsilons, self.searches)})


def best_score(search: LearningRateSearch) -> float:
    """The mean validation accuracy of a search's chosen rate."""
    return search.scores[search.rates.index(search.best)]


def tune_label_smoothing(tuning_data: ClassificationData, settings: MetaTestSettings, seeds: Sequence[int],
                         grid: Sequence[float] | None = None, epsilons: Sequence[float] = LS_TUNED_EPSILONS,
                         bounds: tuple[float, float] = LR_BOUNDS) -> LabelSmoothingSearch:
    """``ls-tuned``: label smoothing's epsilon and rate chosen together. For each epsilon, the
    tuned protocol's bracketing rate search (:func:`tune_learning_rate`, same validation split,
    seeds and grid); the pair chosen is the best epsilon's best rate, by mean validation accuracy
    (NaN worst), ties going to the smaller epsilon (and, within an epsilon, to the smaller rate)."""
    ordered = sorted(set(epsilons))
    if not ordered:
        raise ValueError("ls-tuned needs at least one epsilon")
    searches = [tune_learning_rate(tuning_data, label_smoothing_spec(e), settings, seeds, grid, bounds) for e in ordered]
    chosen = max(range(len(ordered)), key=lambda i: _rank(best_score(searches[i])))  # the first, smallest, of ties
    return LabelSmoothingSearch(ordered, searches, ordered[chosen], searches[chosen])
