"""The MLN warm start: per-pair forms of known losses, distilled networks, the known population."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from deap_mln.cli.evolve import config_from_args
from deap_mln.cli.main import build_parser
from deap_mln.metatest.baselines import baseline_loss
from deap_mln.mln.check import population_passes
from deap_mln.mln.config import preset
from deap_mln.mln.network import PAPER_HIDDEN, MLNLoss, genome_to_module
from deap_mln.mln.toolbox import build_toolbox, eq4_classes
from deap_mln.mln.warm_start import (
    P_FLOOR,
    TARGETS,
    PairFormLoss,
    distil_genome,
    distillation_points,
    pair_loss,
)
from tests.conftest import tiny_config

SEED = 3


def _logits(classes: int, scale: float, n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    return torch.randn(n, classes, generator=g) * scale, torch.randint(classes, (n,), generator=g)


@pytest.mark.parametrize("classes", [2, 3, 10])
@pytest.mark.parametrize("target", TARGETS)
def test_pair_form_summed_over_false_classes_is_the_loss(target, classes):
    logits, y = _logits(classes, 0.5)
    assert torch.softmax(logits, 1).min() >= P_FLOOR  # where the pair form is exact
    torch.testing.assert_close(PairFormLoss(target)(logits.double(), y), baseline_loss(target)(logits.double(), y))


def test_pair_form_is_finite_and_keeps_decreasing_below_the_floor():
    p_true = torch.tensor([0.0, P_FLOOR / 2, P_FLOOR, 0.5])
    for target in TARGETS:
        values = pair_loss(target, p_true, torch.full_like(p_true, 0.1), 10)
        assert torch.isfinite(values).all() and (values.diff() < 0).all(), target


def test_distillation_points_lie_where_eq4_looks():
    p_true, p_false = distillation_points(10, 3000, np.random.default_rng(0))
    assert (p_true >= 0).all() and (p_false >= 0).all() and (p_true + p_false <= 1 + 1e-6).all()
    assert ((p_true == 0) & (p_false == 0)).any()  # the K-class table's corner node is fitted too
    p_true, p_false = distillation_points(2, 1000, np.random.default_rng(0))
    torch.testing.assert_close(p_true + p_false, torch.ones(1000))


def _distilled(target: str, classes: int) -> torch.nn.Module:
    return genome_to_module(distil_genome(target, PAPER_HIDDEN, classes, SEED), PAPER_HIDDEN)


@pytest.mark.parametrize("classes", [2, 10])
@pytest.mark.parametrize("target", TARGETS)
def test_distilled_network_ranks_pairs_and_trains_like_its_target(target, classes):
    """At the quick (paper) sizes: the network orders random (p_t, p_f) points as the target does,
    and as a loss its gradient on random logits points where the target's does."""
    mln = _distilled(target, classes)
    rng = np.random.default_rng(7)
    simplex = torch.as_tensor(rng.dirichlet(np.ones(3), 2000)[:, :2], dtype=torch.float32)
    p_true = simplex[:, 0]
    p_false = 1 - p_true if classes == 2 else simplex[:, 1]
    with torch.no_grad():
        values = mln(torch.stack([p_true, p_false, torch.ones_like(p_true), torch.zeros_like(p_true)], -1))
    assert spearmanr(values, pair_loss(target, p_true, p_false, classes)).statistic > 0.95

    logits, y = _logits(classes, 1.0)
    grads = []
    for loss in (MLNLoss(mln), baseline_loss(target)):
        z = logits.clone().requires_grad_()
        loss(z, y).backward()
        grads.append(z.grad.flatten())
    assert torch.nn.functional.cosine_similarity(*grads, dim=0) > 0.9


def test_distilled_networks_pass_the_kclass_check():
    """Else a 10-class run would reject its own seeds untrained."""
    genomes = np.stack([distil_genome(t, PAPER_HIDDEN, 10, SEED) for t in TARGETS])
    assert population_passes(genomes, PAPER_HIDDEN, 10).all()


def test_distillation_is_reproducible_and_depends_on_the_seed():
    a = distil_genome("ngl", (8, 8), 3, 0)
    a[0] = 99.0  # a caller's copy: the cache keeps its own
    np.testing.assert_array_equal(distil_genome("ngl", (8, 8), 3, 0)[1:], a[1:])
    assert distil_genome("ngl", (8, 8), 3, 0)[0] != 99.0
    assert not np.array_equal(distil_genome("ngl", (8, 8), 3, 1), distil_genome("ngl", (8, 8), 3, 0))


def test_known_population_holds_the_distilled_networks_then_mutated_copies():
    config = tiny_config(initial_population="known", mu=7, seed=5)
    population = build_toolbox(config, np.random.default_rng(0)).population(n=config.mu)
    assert len(population) == 7
    for k, individual in enumerate(population):
        distilled = distil_genome(TARGETS[k % 4], config.hidden, 2, config.seed)
        if k < 4:  # each loss's first copy as distilled, at the initial sigma
            np.testing.assert_array_equal(individual, distilled)
            assert individual.strategy == config.initial_sigma
        else:      # later copies: once through the run's mutation (Eq. 3)
            assert individual.strategy != config.initial_sigma
            noise = np.asarray(individual - distilled, dtype=np.float64)
            assert abs(noise.std() / individual.strategy - 1) < 0.25
        assert not individual.fitness.valid


def test_known_population_is_reproducible_with_the_seed():
    def population(seed: int) -> list:
        config = tiny_config(initial_population="known", seed=seed)
        return build_toolbox(config, np.random.default_rng(seed)).population(n=config.mu)

    first, again, other = population(1), population(1), population(2)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
        assert a.strategy == b.strategy
    assert not np.array_equal(first[0], other[0])


def test_random_population_is_the_default_and_unknown_kinds_are_refused():
    config = tiny_config()
    assert config.initial_population == "random"
    population = build_toolbox(config, np.random.default_rng(0)).population(n=4)
    assert not np.array_equal(population[0], distil_genome("ce", config.hidden, 2, config.seed))
    with pytest.raises(ValueError, match="initial_population"):
        tiny_config(initial_population="warm")


def test_a_preset_with_a_data_source_starts_from_the_known_losses():
    """The default follows the measurement (benchmarks/results/warm_start): known with a data
    source, random on the paper's synthetic tasks, and what is asked for in either case."""
    assert preset("quick", tasks_source="digits").initial_population == "known"
    assert preset("quick", tasks_source="digits", initial_population="random").initial_population == "random"
    assert preset("quick").initial_population == "random"
    assert preset("kclass", initial_population="known").initial_population == "known"


def test_eq4_classes_follows_the_fitness_and_the_data():
    assert eq4_classes(tiny_config()) == 2
    assert eq4_classes(tiny_config(classes=5)) == 5
    assert eq4_classes(tiny_config(fitness="ranking", dynamic_update=False, edl_classes=4)) == 4
    assert eq4_classes(tiny_config(tasks_source="digits", dynamic_update=False, train_size=400, val_size=200)) == 10


def test_cli_flag_sets_the_field(tmp_path):
    args = build_parser().parse_args(["evolve", "--out", str(tmp_path / "run"), "--initial-population", "known"])
    assert config_from_args(args).initial_population == "known"
