"""Genetic programming of symbolic losses: efficiency-based GP and the standard GP it improves on.

Both loops draw from the same toolbox (:func:`build_gp_toolbox`): subtree mutation
(``gp.mutUniform`` with ``gp.genHalfAndHalf``, i.e. genFull or genGrow) with probability
``subtree_prob``, otherwise one-point mutation (``gp.mutNodeReplacement``); one-point
crossover (``gp.cxOnePoint``); tournament selection; bloat control by ``gp.staticLimit`` on
tree height. Fitness comes from a :class:`~deap_mln.gp_fitness.FitnessCache`, so a tree whose
canonical expression was seen before is never trained again.

Randomness: DEAP's gp operators draw from Python's global ``random``. :func:`python_random`
seeds it from the run seed (``seed_sequence(seed, "gp-variation")``) for the whole search
and restores the caller's state afterwards; with the seeded, cached fitness this makes a run
a function of its config.
"""
from __future__ import annotations

import dataclasses
import json
import operator
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from deap import algorithms, base, gp, tools

from .gp import KNOWN_LOSSES, PSET, LossTree, canonical_string, check_tree, parse_expression
from .gp_fitness import GP_DATASETS, FitnessCache, TrainingSettings, single_thread
from .seeding import seed_sequence

GP_ALGORITHMS = ("efficiency", "standard")


@dataclass
class GPConfig:
    """Everything that determines a GP run's numbers; ``docs/gp.md`` describes each field."""

    algorithm: str = "efficiency"      # efficiency-based GP, or standard GP (the baseline)
    seed: int = 0
    population: int = 20               # P
    generations: int = 15
    max_evaluations: int = 0           # stop after the generation that reaches this many trainings (0: no limit)
    tournament_size: int = 8           # efficiency: trees sampled per generation; standard: selection tournament
    top_n: int = 4                     # efficiency: best of the tournament that are mutated (N)
    subtree_prob: float = 0.5          # subtree mutation, else one-point mutation
    crossover_prob: float = 0.5        # standard: chance a pair of offspring is crossed
    mutation_prob: float = 0.2         # standard: chance an offspring is mutated
    elite: int = 1                     # standard: best trees kept from the previous population
    init_min_height: int = 1
    init_max_height: int = 3
    mutation_max_height: int = 2       # height of the subtree grown by subtree mutation
    max_height: int = 8                # gp.staticLimit on every child
    seed_known_losses: bool = True     # start from cross-entropy, Baikal, NGL and squared error
    # fitness: a classifier trained briefly with the candidate loss
    dataset: str = "digits"
    data_seed: int = 0
    hidden: int = 32
    steps: int = 100
    batch_size: int = 64
    lr: float = 0.01

    def validate(self) -> "GPConfig":
        """Raise ValueError naming the first field that is out of range."""
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(msg)

        need(self.algorithm in GP_ALGORITHMS, f"algorithm must be one of {GP_ALGORITHMS}, got {self.algorithm!r}")
        need(self.dataset in GP_DATASETS, f"dataset must be one of {GP_DATASETS}, got {self.dataset!r}")
        for name in ("population", "tournament_size", "top_n", "init_min_height", "max_height", "steps", "batch_size"):
            need(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("generations", "max_evaluations", "elite", "mutation_max_height", "hidden"):
            need(getattr(self, name) >= 0, f"{name} must be non-negative, got {getattr(self, name)}")
        for name in ("subtree_prob", "crossover_prob", "mutation_prob"):
            need(0.0 <= getattr(self, name) <= 1.0, f"{name} must be in [0, 1], got {getattr(self, name)}")
        need(self.tournament_size <= self.population,
             f"tournament_size ({self.tournament_size}) must not exceed population ({self.population})")
        need(self.top_n <= self.tournament_size, f"top_n ({self.top_n}) must not exceed tournament_size ({self.tournament_size})")
        need(self.elite < self.population, f"elite ({self.elite}) must be below population ({self.population})")
        need(self.init_min_height <= self.init_max_height <= self.max_height,
             f"need init_min_height <= init_max_height <= max_height, got {self.init_min_height}, "
             f"{self.init_max_height}, {self.max_height}")
        need(self.lr > 0, f"lr must be positive, got {self.lr}")
        return self

    def training(self) -> TrainingSettings:
        return TrainingSettings(dataset=self.dataset, data_seed=self.data_seed, seed=self.seed, hidden=self.hidden,
                                steps=self.steps, batch_size=self.batch_size, lr=self.lr)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GPConfig":
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown GP config fields: {', '.join(unknown)}")
        return cls(**data).validate()

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "GPConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))


GP_PRESETS: dict[str, dict[str, Any]] = {
    # About a minute on a 2-core CPU: 20 trees, 40 generations of (at most) 4 children, 100 training steps.
    "quick": dict(generations=40),
    # Tens of minutes: a larger population and longer training.
    "standard": dict(population=50, generations=60, tournament_size=12, top_n=8, steps=300),
}


def gp_preset(name: str, **overrides: Any) -> GPConfig:
    if name not in GP_PRESETS:
        raise ValueError(f"unknown GP preset {name!r}; choose from {', '.join(GP_PRESETS)}")
    return GPConfig(**{**GP_PRESETS[name], **overrides}).validate()


@contextmanager
def python_random(seed: int, *key: int | str) -> Iterator[None]:
    """Python's global ``random`` seeded from ``(seed, *key)`` inside; the caller's state after."""
    saved = random.getstate()
    random.seed(int(seed_sequence(seed, *key).generate_state(1, dtype="uint64")[0]))
    try:
        yield
    finally:
        random.setstate(saved)


# --------------------------------------------------------------------------- toolbox

def mutate_subtree_or_point(individual: gp.PrimitiveTree, subtree: Callable, point: Callable,
                            subtree_prob: float) -> tuple:
    """Subtree mutation with probability ``subtree_prob``, else one-point (node) mutation."""
    return subtree(individual) if random.random() < subtree_prob else point(individual)


def build_gp_toolbox(config: GPConfig, evaluate: Callable[[str], float], map_fn: Callable = map) -> base.Toolbox:
    """Operators of both GP loops; ``evaluate`` maps a canonical expression to its fitness."""
    tb = base.Toolbox()
    tb.register("expr", gp.genHalfAndHalf, pset=PSET, min_=config.init_min_height, max_=config.init_max_height)
    tb.register("individual", tools.initIterate, LossTree, tb.expr)
    tb.register("expr_mut", gp.genHalfAndHalf, min_=0, max_=config.mutation_max_height)
    tb.register("mutate", mutate_subtree_or_point, subtree_prob=config.subtree_prob,
                subtree=lambda ind: gp.mutUniform(ind, expr=tb.expr_mut, pset=PSET),
                point=lambda ind: gp.mutNodeReplacement(ind, pset=PSET))
    tb.register("mate", gp.cxOnePoint)
    limit = gp.staticLimit(key=operator.attrgetter("height"), max_value=config.max_height)
    tb.decorate("mutate", limit)
    tb.decorate("mate", limit)
    tb.register("select", tools.selTournament, tournsize=config.tournament_size)
    tb.register("check", check_tree)
    tb.register("evaluate", evaluate)
    tb.register("map", map_fn)
    return tb


def rank_key(ind: LossTree) -> tuple[float, int]:
    """Sort key, best first: higher fitness, then fewer nodes (parsimony breaks ties)."""
    return -ind.fitness.values[0], len(ind)


def best_of(individuals: Sequence[LossTree], n: int) -> list[LossTree]:
    return sorted(individuals, key=rank_key)[:n]


def initial_population(toolbox: base.Toolbox, size: int, known: bool, max_tries: int = 10_000) -> list[LossTree]:
    """``size`` distinct trees that pass the functional check: the known losses first (if
    ``known``), then random half-and-half trees. Shared by both algorithms."""
    trees = [parse_expression(e) for e in KNOWN_LOSSES.values()][:size] if known else []
    seen = {canonical_string(t) for t in trees}
    for _ in range(max_tries):
        if len(trees) >= size:
            return trees
        tree = toolbox.individual()
        key = canonical_string(tree)
        if key not in seen and toolbox.check(tree):
            seen.add(key)
            trees.append(tree)
    raise RuntimeError(f"only {len(trees)} of {size} initial trees passed the functional check in {max_tries} tries")


# --------------------------------------------------------------------------- loops

@dataclass
class GPState:
    population: list
    logbook: tools.Logbook
    cache: FitnessCache
    generation: int = 0


def record_generation(state: GPState, evals: int, rejected: int, hits_before: int) -> dict:
    """One logbook row of the survivors: fitness and size statistics and evaluation counts."""
    fits = [ind.fitness.values[0] for ind in state.population]
    best = best_of(state.population, 1)[0]
    row = dict(gen=state.generation, evals=evals, total_evals=state.cache.evaluations,
               cached=state.cache.hits - hits_before, rejected=rejected, best=max(fits),
               mean=sum(fits) / len(fits), size=sum(map(len, state.population)) / len(state.population),
               best_size=len(best), seconds=round(time.perf_counter() - state.cache.start, 3))
    state.logbook.record(**row)
    return row


def start(toolbox: base.Toolbox, cache: FitnessCache, config: GPConfig) -> GPState:
    """Generation 0: the initial population, evaluated."""
    population = initial_population(toolbox, config.population, config.seed_known_losses)
    state = GPState(population, tools.Logbook(), cache)
    evals = cache.assign(population)
    record_generation(state, evals, 0, 0)
    return state


def done(state: GPState, ngen: int, max_evaluations: int) -> bool:
    return state.generation >= ngen or 0 < max_evaluations <= state.cache.evaluations


def efficiency_gp(state: GPState, toolbox: base.Toolbox, *, population_size: int, tournament_size: int,
                  top_n: int, ngen: int, max_evaluations: int = 0,
                  on_generation: Callable[[GPState], None] | None = None) -> GPState:
    """Efficiency-based GP::

        while not done:
            tournament <- sample(population, tournament_size)
            parents    <- best top_n of tournament
            children   <- mutate(clone(parent)) for each parent    # subtree p=0.5, else one-point
            children   <- children that pass the functional check
            evaluate(children)                                     # cached by canonical expression
            population <- best population_size of population + children (duplicates once)
    """
    while not done(state, ngen, max_evaluations):
        state.generation += 1
        hits_before = state.cache.hits
        tournament = random.sample(state.population, tournament_size)
        parents = best_of(tournament, top_n)
        children = []
        for parent in parents:
            (child,) = toolbox.mutate(toolbox.clone(parent))
            del child.fitness.values
            children.append(child)
        passed = [child for child in children if toolbox.check(child)]
        evals = state.cache.assign(passed)
        pool = {canonical_string(ind): ind for ind in state.population}
        for child in passed:
            pool.setdefault(canonical_string(child), child)
        state.population = best_of(list(pool.values()), population_size)
        record_generation(state, evals, len(children) - len(passed), hits_before)
        if on_generation:
            on_generation(state)
    return state


def standard_gp(state: GPState, toolbox: base.Toolbox, *, population_size: int, crossover_prob: float,
                mutation_prob: float, elite: int, ngen: int, max_evaluations: int = 0,
                on_generation: Callable[[GPState], None] | None = None) -> GPState:
    """Standard generational GP with elitism (DEAP's eaSimple plus elites)::

        while not done:
            offspring  <- select(population, population_size)      # tournament
            offspring  <- varAnd(offspring, crossover_prob, mutation_prob)
            evaluate(offspring that changed)                       # cached; no functional check
            population <- best elite of population + best (population_size - elite) of offspring
    """
    while not done(state, ngen, max_evaluations):
        state.generation += 1
        hits_before = state.cache.hits
        offspring = algorithms.varAnd(toolbox.select(state.population, population_size), toolbox,
                                      crossover_prob, mutation_prob)
        changed = [ind for ind in offspring if not ind.fitness.valid]
        evals = state.cache.assign(changed)
        state.population = best_of(state.population, elite) + best_of(offspring, population_size - elite)
        record_generation(state, evals, 0, hits_before)
        if on_generation:
            on_generation(state)
    return state


def run_search(config: GPConfig, evaluate: Callable[[str], float], map_fn: Callable = map,
               on_generation: Callable[[GPState], None] | None = None,
               resume: dict[str, Any] | None = None) -> GPState:
    """A whole GP search of ``config`` (both algorithms start from the same initial population),
    with torch on one thread; ``resume``, a :func:`checkpoint` of an earlier run of the same
    config, continues it exactly where that checkpoint was taken."""
    config.validate()
    cache = FitnessCache(evaluate, map_fn)
    with python_random(config.seed, "gp-variation"), single_thread():
        toolbox = build_gp_toolbox(config, evaluate, map_fn)
        if resume is None:
            state = start(toolbox, cache, config)
            if on_generation:
                on_generation(state)
        else:
            state = restore(resume, cache)
        if config.algorithm == "efficiency":
            return efficiency_gp(state, toolbox, population_size=config.population,
                                 tournament_size=config.tournament_size, top_n=config.top_n,
                                 ngen=config.generations, max_evaluations=config.max_evaluations,
                                 on_generation=on_generation)
        return standard_gp(state, toolbox, population_size=config.population, crossover_prob=config.crossover_prob,
                           mutation_prob=config.mutation_prob, elite=config.elite, ngen=config.generations,
                           max_evaluations=config.max_evaluations, on_generation=on_generation)


# --------------------------------------------------------------------------- checkpoints

CHECKPOINT_FORMAT = "deap_mln.gp_checkpoint/1"


def checkpoint(state: GPState) -> dict[str, Any]:
    """Everything a search needs to go on from ``state``, as JSON-ready data: the population
    (prefix expressions and fitness, in order), logbook, fitness cache and Python's
    ``random`` state. Take it in ``on_generation``, inside the search's random context."""
    version, internal, gauss_next = random.getstate()
    cache = state.cache
    return dict(format=CHECKPOINT_FORMAT, generation=state.generation,
                population=[[str(tree), tree.fitness.values[0]] for tree in state.population],
                logbook=[dict(row) for row in state.logbook],
                cache=dict(values=cache.values, trace=[list(t) for t in cache.trace], hits=cache.hits,
                           seconds=time.perf_counter() - cache.start),
                random_state=[version, list(internal), gauss_next])


def restore(data: dict[str, Any], cache: FitnessCache) -> GPState:
    """The state a :func:`checkpoint` holds, with its fitness cache loaded into ``cache``;
    also sets Python's ``random`` to the checkpoint's state. ValueError if ``data`` is not one."""
    if data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"not a GP checkpoint (format {data.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
    try:
        population = []
        for expression, fitness in data["population"]:
            tree = parse_expression(expression)
            tree.fitness.values = (float(fitness),)
            population.append(tree)
        logbook = tools.Logbook()
        for row in data["logbook"]:
            logbook.record(**row)
        values = {str(key): float(value) for key, value in data["cache"]["values"].items()}
        trace = [(int(n), float(fit), float(sec)) for n, fit, sec in data["cache"]["trace"]]
        hits, seconds = int(data["cache"]["hits"]), float(data["cache"]["seconds"])
        version, internal, gauss_next = data["random_state"]
        random_state = (version, tuple(internal), gauss_next)
        generation = int(data["generation"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not a valid GP checkpoint ({type(exc).__name__}: {exc})") from None
    random.setstate(random_state)
    cache.values, cache.trace, cache.hits = values, trace, hits
    cache.start = time.perf_counter() - seconds
    return GPState(population, logbook, cache, generation)
