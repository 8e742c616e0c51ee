"""Run configuration: one dataclass, two presets, JSON in and out.

Every field is used by the run and checked by :meth:`EvolutionConfig.validate`;
``docs/configuration.md`` describes each one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deap_mln.configs import JSONConfig, require
from deap_mln.data.brief_training import MEASURES, OPTIMIZERS
from deap_mln.data.source import check_source
from deap_mln.data.synthetic import MAX_CLASSES
from deap_mln.mln.network import PAPER_HIDDEN
from deap_mln.training.splits import MEASURED_FITNESS, FaithfulFields

ALGORITHMS = ("hybrid", "es")
FITNESS_KINDS = ("meta-mse", "ranking")
MUTATIONS = ("log-normal", "chaotic")
EDL_ERRORS = ("brier", "one-minus-p-true")
EVALUATION_PATHS = ("fast", "exact")
TASK_KINDS = ("linear", "nonlinear")
UPDATE_RULES = ("algorithm-1", "normalised")
INITIAL_POPULATIONS = ("random", "known")


@dataclass
class EvolutionConfig(FaithfulFields, JSONConfig):
    """Everything that determines an evolution run's numbers (not how many workers ran it)."""

    # search (Algorithm 1 of the Adaptive-MLN paper)
    algorithm: str = "hybrid"          # hybrid: roulette + one-point crossover + mutation; es: mutation only
    seed: int = 0
    mu: int = 25                       # parents kept each generation
    lambda_: int = 25                  # offspring made each generation
    generations: int = 100
    crossover_prob: float = 1.0        # chance a pair of hybrid offspring is crossed (ignored by es)
    mutation: str = "log-normal"       # log-normal: Eq. 3's Gaussian noise; chaotic: EDL's logistic-map noise
    chaos_r: float = 4.0               # logistic-map parameter of the chaotic mutation
    initial_sigma: float = 0.01        # mutation strength of every initial individual
    initial_population: str = "random"  # random: Glorot networks; known: distilled from CE, LS, Baikal, NGL (warm_start.py)
    tau: float = 0.2                   # learning rate of log-normal self-adaptation (Eq. 3)
    sigma_floor: float = 1e-5          # sigma never drops below this
    convergence_epsilon: float = 1e-5  # stop when the best fitness improves less than this ...
    patience: int = 20                 # ... for this many generations (0: never stop early)
    dynamic_update: bool = True        # meta-gradient refinement of every offspring (Algorithm 1, lines 12-21)
    update_rule: str = "algorithm-1"   # algorithm-1: T_inner steps, each then a mutation at rate lambda_mut; or normalised
    update_steps: int = 2              # T_inner: meta-gradient steps per offspring (algorithm-1)
    update_lr: float = 20.0            # alpha of M <- M - alpha grad L_meta (algorithm-1)
    update_mutation_rate: float = 0.5  # lambda_mut: chance of a mutation after each step (algorithm-1)
    update_step: float = 0.5           # length of the single step (normalised)
    update_truncation: int = 10        # inner SGD steps unrolled for the meta-gradient
    update_path: str = "fast"          # fast: through the fitness's table of g'; exact: the MLN at every unrolled step
    # meta-loss network and what its fitness measures
    hidden: tuple[int, ...] = PAPER_HIDDEN
    fitness: str = "meta-mse"          # meta-mse: Eq. 1 on synthetic tasks; ranking: EDL's ranking consistency
    # EDL ranking fitness (fitness="ranking"): synthetic predictions, no classifier training
    edl_classes: int = 10              # classes of the synthetic probability vectors
    edl_samples: int = 2048            # predictions drawn per generation
    edl_pairs: int = 20_000            # prediction pairs compared per generation
    edl_regimes: tuple[float, ...] = (0.4, 0.3, 0.15, 0.15)  # weights: confident-correct, boundary, confident-wrong, near-uniform
    edl_tie_tolerance: float = 1e-3    # pairs whose errors differ by less are not compared
    edl_error: str = "brier"           # error measure the loss must rank like: brier or one-minus-p-true
    # synthetic meta-tasks
    task_kind: str = "linear"          # linear: perceptron ground truth; nonlinear: three-layer perceptron
    classes: int = 2                   # K of every task: 2 the paper's binary tasks; 3-10 K-class tasks (Eq. 4)
    input_dim: int = 5
    mixture_components: int = 50
    pool_size: int = 500_000
    train_size: int = 50_000
    val_size: int = 10_000
    tasks_per_eval: int = 2            # tasks per generation, shared by its individuals (2: benchmarks/results/algorithm1.md)
    validation_tasks: int = 4          # fixed tasks that choose the loss a run keeps (0: keep the best single measurement)
    validation_top: int = 3            # survivors validated each generation (each genome once)
    test_tasks: int = 8                # fixed tasks that score the kept loss once, at the end (0: none)
    # meta-tasks from a data set (tasks_source other than synthetic): resampled splits of its training part
    tasks_source: str = "synthetic"    # synthetic, or a data source: digits, mnist1d, mnist, csv:PATH, npz:PATH, ...
    data_label: str = ""               # a CSV source's label column ("": the last)
    task_fitness: str = "accuracy"     # accuracy, or cross-entropy: exp(-validation CE), ordered as -CE
    task_steps: int = 200              # steps of each classifier's brief training (batches of inner_batch)
    task_optimizer: str = "adam"       # adam or sgd, at task_lr
    task_lr: float = 1e-3              # the meta-test's Adam rate for CE
    task_hidden: int = 32              # hidden ReLU units of the classifier (0: logistic regression)
    # inner loop (meta-training)
    inner_lr: float = 0.1
    inner_batch: int = 100
    inner_epochs: int = 10
    # evaluation
    evaluation: str = "fast"           # fast: tabulated loss; exact: the MLN at every step
    grid_size: int = 513               # points of the fast path's table over p_true in [0, 1] (binary tasks)
    pair_grid_size: int = 33           # nodes per axis of the fast path's 2-D table over (p_true, p_false) (K > 2)
    chunk_size: int = 25               # individuals trained together; fixed here so results never depend on workers
    checkpoint_every: int = 5          # generations between checkpoints (0: only at the end)

    def validate(self) -> EvolutionConfig:
        """Raise ValueError naming the first field that is out of range."""
        require(self.algorithm in ALGORITHMS, f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        require(self.evaluation in EVALUATION_PATHS, f"evaluation must be one of {EVALUATION_PATHS}, got {self.evaluation!r}")
        require(self.fitness in FITNESS_KINDS, f"fitness must be one of {FITNESS_KINDS}, got {self.fitness!r}")
        require(self.mutation in MUTATIONS, f"mutation must be one of {MUTATIONS}, got {self.mutation!r}")
        require(0 < self.chaos_r <= 4, f"chaos_r must be in (0, 4], got {self.chaos_r}")
        require(self.edl_classes >= 2, f"edl_classes must be at least 2, got {self.edl_classes}")
        require(self.edl_samples >= 2 and self.edl_pairs >= 1, "edl_samples must be >= 2 and edl_pairs >= 1")
        require(len(self.edl_regimes) == 4 and min(self.edl_regimes) >= 0 and sum(self.edl_regimes) > 0,
             f"edl_regimes must be 4 non-negative weights with a positive sum, got {self.edl_regimes}")
        require(self.edl_error in EDL_ERRORS, f"edl_error must be one of {EDL_ERRORS}, got {self.edl_error!r}")
        require(self.edl_tie_tolerance >= 0, f"edl_tie_tolerance must be non-negative, got {self.edl_tie_tolerance}")
        require(self.task_kind in TASK_KINDS, f"task_kind must be one of {TASK_KINDS}, got {self.task_kind!r}")
        require(2 <= self.classes <= MAX_CLASSES, f"classes must be in [2, {MAX_CLASSES}], got {self.classes}")
        require(self.classes == 2 or self.fitness == "meta-mse",
                f"classes applies to the meta-mse fitness's tasks; the ranking fitness uses edl_classes "
                f"(got classes {self.classes})")
        for name in ("mu", "lambda_", "input_dim", "mixture_components", "pool_size", "train_size",
                     "val_size", "tasks_per_eval", "inner_batch", "inner_epochs", "chunk_size"):
            require(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("generations", "patience", "checkpoint_every", "validation_tasks", "test_tasks"):
            require(getattr(self, name) >= 0, f"{name} must be non-negative, got {getattr(self, name)}")
        if self.tasks_source != "synthetic":
            check_source(self.tasks_source)
        self.validate_training(self.tasks_source)
        require(self.halving_rungs == 0, "successive halving scores a cohort, but (mu + lambda) compares survivors and "
                "offspring scored in other generations; use it with evolve-taylor, whose CMA-ES ranks each generation alone")
        require(self.fitness_training == "brief" or self.tasks_source != "synthetic",
                "fitness_training 'faithful' trains the user's spec on a data source; give tasks_source (--data)")
        require(self.tasks_source == "synthetic" or self.fitness == "meta-mse",
                f"tasks_source applies to the trained-classifier fitness; fitness='ranking' trains none "
                f"(got tasks_source {self.tasks_source!r})")
        require(not (self.dynamic_update and self.fitness_training == "faithful"),
                "dynamic_update unrolls the brief fitness's training; turn it off (--no-dynamic-update) "
                "with fitness_training 'faithful'")
        require(self.task_fitness in MEASURES, f"task_fitness must be one of {MEASURES}, got {self.task_fitness!r}")
        require(self.task_optimizer in OPTIMIZERS,
                f"task_optimizer must be one of {OPTIMIZERS}, got {self.task_optimizer!r}")
        require(self.task_steps >= 1, f"task_steps must be at least 1, got {self.task_steps}")
        require(self.task_lr > 0, f"task_lr must be positive, got {self.task_lr}")
        require(self.task_hidden >= 0, f"task_hidden must be non-negative, got {self.task_hidden}")
        require(self.validation_top >= 1, f"validation_top must be at least 1, got {self.validation_top}")
        require(self.validation_top <= self.mu, f"validation_top ({self.validation_top}) must not exceed mu ({self.mu})")
        require(0.0 <= self.crossover_prob <= 1.0, f"crossover_prob must be in [0, 1], got {self.crossover_prob}")
        require(self.initial_sigma > 0, f"initial_sigma must be positive, got {self.initial_sigma}")
        require(self.initial_population in INITIAL_POPULATIONS,
                f"initial_population must be one of {INITIAL_POPULATIONS}, got {self.initial_population!r}")
        require(self.tau >= 0, f"tau must be non-negative, got {self.tau}")
        require(0 < self.sigma_floor <= self.initial_sigma,
             f"sigma_floor must be in (0, initial_sigma], got {self.sigma_floor}")
        require(not self.dynamic_update or self.fitness == "meta-mse",
             "dynamic_update differentiates the meta-MSE fitness; it cannot be used with fitness='ranking'")
        require(self.update_rule in UPDATE_RULES, f"update_rule must be one of {UPDATE_RULES}, got {self.update_rule!r}")
        require(self.update_path in EVALUATION_PATHS, f"update_path must be one of {EVALUATION_PATHS}, got {self.update_path!r}")
        require(self.update_steps >= 1, f"update_steps must be at least 1, got {self.update_steps}")
        require(self.update_lr > 0, f"update_lr must be positive, got {self.update_lr}")
        require(0.0 <= self.update_mutation_rate <= 1.0,
                f"update_mutation_rate must be in [0, 1], got {self.update_mutation_rate}")
        require(self.update_step > 0, f"update_step must be positive, got {self.update_step}")
        require(self.update_truncation >= 1, f"update_truncation must be at least 1, got {self.update_truncation}")
        require(self.convergence_epsilon >= 0, f"convergence_epsilon must be non-negative, got {self.convergence_epsilon}")
        require(len(self.hidden) >= 1 and all(int(h) >= 1 for h in self.hidden),
             f"hidden must be a non-empty list of positive sizes, got {self.hidden}")
        require(self.train_size + self.val_size <= self.pool_size,
             f"train_size + val_size ({self.train_size + self.val_size}) must not exceed pool_size ({self.pool_size})")
        require(self.inner_batch <= self.train_size,
             f"inner_batch ({self.inner_batch}) must not exceed train_size ({self.train_size})")
        require(self.inner_lr > 0, f"inner_lr must be positive, got {self.inner_lr}")
        require(self.grid_size >= 3, f"grid_size must be at least 3, got {self.grid_size}")
        require(self.pair_grid_size >= 3, f"pair_grid_size must be at least 3, got {self.pair_grid_size}")
        return self

    @property
    def validate_top(self) -> int:
        """Survivors validated per generation: ``validation_top``, or 0 without validation tasks."""
        return self.validation_top if self.validation_tasks else 0

    @property
    def inner_steps(self) -> int:
        """SGD steps of one inner training: epochs x batches per epoch (last partial batch dropped)."""
        return self.inner_epochs * (self.train_size // self.inner_batch)


# A few minutes on a 2-core laptop: same algorithm and MLN, smaller tasks, fewer generations.
_QUICK: dict[str, Any] = dict(generations=30, pool_size=20_000, train_size=2_000, val_size=2_000,
                              tasks_per_eval=4, patience=0)

PRESETS: dict[str, dict[str, Any]] = {
    # The paper's sizes (Adaptive-MLN, Sec. 4): population 25 + 25, 100 generations,
    # pool 500,000, tasks of 50,000 / 10,000 points, SGD lr 0.1, batch 100, 10 epochs.
    "paper": {},
    "quick": _QUICK,
    # The quick sizes on 10-class tasks: Eq. 4 over 9 false classes through the fast 2-D table,
    # losses that fail the K-class check rejected (docs/method.md, "K-class meta-tasks").
    "kclass": {**_QUICK, "classes": 10},
    # EDL: distribution-free pretraining of a small loss network by ranking consistency,
    # ES with chaotic mutation; no classifier training, no real data.
    "edl": dict(algorithm="es", fitness="ranking", mutation="chaotic", hidden=(16, 16), mu=10, lambda_=20,
                generations=60, initial_sigma=0.05, patience=0, chunk_size=30, dynamic_update=False),
}


def preset(name: str, **overrides: Any) -> EvolutionConfig:
    """The named preset with field overrides applied, validated. ``algorithm="es"`` and a
    ``tasks_source`` other than synthetic also turn the dynamic update off unless
    ``dynamic_update`` is given: ES is the paper's baseline, and on a data source the update did
    not improve the kept loss at equal trainings (``benchmarks/results/data_update``,
    docs/method.md). A ``tasks_source`` other than synthetic also starts from the networks
    distilled from known losses unless ``initial_population`` is given (measured:
    ``benchmarks/results/warm_start``, docs/method.md), and scores candidates by the faithful
    fitness (:data:`~deap_mln.training.splits.MEASURED_FITNESS`, measured:
    ``benchmarks/results/fidelity``) unless a ``task_*`` field or the dynamic update asks for the
    brief training."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    values = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
    if values.get("algorithm") == "es" and "dynamic_update" not in overrides:
        values["dynamic_update"] = False  # the ES baseline is the method without Algorithm 1's update
    if values.get("tasks_source", "synthetic") != "synthetic" and overrides.get("dynamic_update") is None:
        values["dynamic_update"] = False  # measured: no gain on digits for its trainings (data_update)
    if values.get("tasks_source", "synthetic") != "synthetic":
        brief = ("task_steps", "task_optimizer", "task_lr", "task_hidden", "task_fitness", "dynamic_update")
        if not any(overrides.get(field) for field in brief):  # those tune (or unroll) the brief training
            values = {**MEASURED_FITNESS, **values}  # the fidelity benchmark's default (docs/own_training.md)
        values.setdefault("initial_population", "known")  # better than a random start on digits (warm_start.md)
    return EvolutionConfig.from_dict(values)
