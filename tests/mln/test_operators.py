import math

import numpy as np
import pytest
from deap import tools

from deap_mln.mln.individual import make_individual
from deap_mln.mln.operators import cx_one_point, mutate_log_normal, roulette_weights, select_roulette, select_uniform


def _ind(values, sigma=0.1, fitness=None):
    return make_individual(np.asarray(values, dtype=np.float32), sigma, fitness)


def test_deap_cx_one_point_loses_material_on_numpy_which_ours_does_not(rng):
    # The pitfall this operator exists for: DEAP swaps numpy views, so material is lost.
    p1, p2 = np.arange(10, dtype=np.float32), -np.arange(10, dtype=np.float32) - 1
    a, b = _ind(p1), _ind(p2)
    tools.cxOnePoint(a, b)
    assert not np.array_equal(np.sort(np.concatenate([a, b])), np.sort(np.concatenate([p1, p2])))
    a, b = _ind(p1), _ind(p2)
    cx_one_point(a, b, rng)
    np.testing.assert_array_equal(np.sort(np.concatenate([a, b])), np.sort(np.concatenate([p1, p2])))


def test_crossover_keeps_both_parents_material_at_every_position(rng):
    p1, p2 = rng.standard_normal(50).astype(np.float32), rng.standard_normal(50).astype(np.float32)
    for _ in range(20):
        a, b = _ind(p1, 0.1), _ind(p2, 0.4)
        cx_one_point(a, b, rng)
        # position by position the children hold exactly the parents' two genes
        assert np.array_equal(np.sort(np.stack([a, b]), 0), np.sort(np.stack([p1, p2]), 0))
        cut = int(np.argmax(a != p1)) if not np.array_equal(a, p1) else 50
        assert 1 <= cut <= 49
        np.testing.assert_array_equal(a[:cut], p1[:cut])
        np.testing.assert_array_equal(a[cut:], p2[cut:])
        np.testing.assert_array_equal(b[cut:], p1[cut:])
        assert a.strategy == b.strategy == pytest.approx(math.sqrt(0.1 * 0.4))


def test_crossover_cut_is_uniform_over_inner_points(rng):
    cuts = []
    for _ in range(2000):
        a, b = _ind(np.zeros(5)), _ind(np.ones(5))
        cx_one_point(a, b, rng)
        cuts.append(int(np.argmax(a == 1)))
    counts = np.bincount(cuts, minlength=5)
    assert counts[0] == 0 and all(400 < c < 600 for c in counts[1:])


def test_mutation_scales_sigma_log_normally_and_perturbs_with_it(rng):
    tau, log_ratios = 0.3, []
    for _ in range(3000):
        ind = _ind(np.zeros(200), sigma=0.5)
        mutate_log_normal(ind, rng, tau=tau, sigma_floor=1e-6)
        log_ratios.append(math.log(ind.strategy / 0.5))
        if len(log_ratios) <= 50:  # the genome noise has the new sigma as its standard deviation
            assert np.std(ind) == pytest.approx(ind.strategy, rel=0.25)
    assert np.mean(log_ratios) == pytest.approx(0.0, abs=0.03)
    assert np.std(log_ratios) == pytest.approx(tau, rel=0.06)


def test_mutation_respects_the_sigma_floor(rng):
    ind = _ind(np.zeros(10), sigma=1e-3)
    for _ in range(200):
        mutate_log_normal(ind, rng, tau=2.0, sigma_floor=1e-3)
        assert ind.strategy >= 1e-3
    assert ind.strategy == 1e-3 or np.any(ind != 0)


def test_mutation_returns_a_tuple_and_changes_in_place(rng):
    ind = _ind(np.zeros(10), sigma=0.1)
    out = mutate_log_normal(ind, rng, tau=0.1, sigma_floor=1e-5)
    assert isinstance(out, tuple) and out[0] is ind and np.any(ind != 0)
    assert ind.dtype == np.float32


def test_roulette_weights_are_positive_for_negative_fitness():
    w = roulette_weights(np.array([-0.5, -0.1, -0.01, -0.3]))
    assert np.all(w > 0) and w.sum() == pytest.approx(1.0)
    assert np.argsort(w).tolist() == [0, 3, 1, 2]
    np.testing.assert_allclose(roulette_weights(np.array([-2.0, -2.0, -2.0])), 1 / 3)


def test_roulette_returns_k_and_favours_the_better_under_negative_fitness(rng):
    population = [_ind([i], fitness=f) for i, f in enumerate([-0.9, -0.5, -0.2, -0.05])]
    chosen = select_roulette(population, 4000, rng)
    assert len(chosen) == 4000
    counts = np.bincount([int(c[0]) for c in chosen], minlength=4)
    assert counts[0] > 0  # the worst keeps a chance
    assert counts[0] < counts[1] < counts[2] < counts[3]


def test_uniform_selection_ignores_fitness(rng):
    population = [_ind([i], fitness=f) for i, f in enumerate([-0.9, -0.5, -0.2, -0.05])]
    counts = np.bincount([int(c[0]) for c in select_uniform(population, 4000, rng)], minlength=4)
    assert all(900 < c < 1100 for c in counts)


def test_individuals_clone_and_pickle_with_their_attributes():
    import copy
    import pickle

    ind = _ind(np.arange(5), sigma=0.3, fitness=-0.2)
    # (unpickling re-creates DEAP creator classes, so compare names, not class identity)
    for clone in (copy.deepcopy(ind), pickle.loads(pickle.dumps(ind))):
        assert type(clone).__name__ == "Individual" and clone.dtype == np.float32
        np.testing.assert_array_equal(clone, ind)
        assert clone.strategy == 0.3 and clone.fitness.values == (-0.2,)
        clone[0] = 99
        assert ind[0] == 0
