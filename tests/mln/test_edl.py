import numpy as np
import pytest
import torch

from deap_mln.cli import main
from deap_mln.mln.config import preset
from deap_mln.mln.edl import REGIMES, prediction_errors, ranking_consistency, ranking_fitness, sample_predictions
from deap_mln.mln.individual import make_individual
from deap_mln.mln.network import MetaLossNetwork, load_loss, module_to_genome
from deap_mln.mln.operators import advance_chaos, logistic_map, mutate_chaotic
from tests.mln.test_run import fitness_columns, straight_and_resumed


def test_logistic_map_stays_in_the_open_interval_and_never_sticks(rng):
    state = advance_chaos(None, 1000, rng)
    for _ in range(2000):
        state = advance_chaos(state, 1000, rng)
        assert np.all((state > 0) & (state < 1))
    # states that land on 0, 1 or the fixed point 3/4 are re-drawn instead of staying there
    trapped = np.array([0.0, 1.0, 0.75, 0.5])  # 0.5 -> 1 -> 0 in two steps
    for _ in range(3):
        trapped = advance_chaos(trapped, 4, rng)
        assert np.all((trapped > 1e-9) & (trapped < 1 - 1e-9)) and not np.any(trapped == 0.75)
    # chaotic for r = 4: the arcsine invariant law has mean 1/2 and variance 1/8
    assert state.mean() == pytest.approx(0.5, abs=0.03) and state.var() == pytest.approx(0.125, abs=0.01)
    assert logistic_map(np.array([0.3]), 4.0)[0] == pytest.approx(0.84)


def test_chaotic_mutation_gives_zero_mean_noise_scaled_by_sigma_and_separates_clones(rng):
    import copy

    parent = make_individual(np.zeros(5000, dtype=np.float32), 0.2)
    mutate_chaotic(parent, rng, tau=0.0, sigma_floor=1e-6)
    a, b = copy.deepcopy(parent), copy.deepcopy(parent)
    moves = []
    for child in (a, b):
        before = np.array(child)
        mutate_chaotic(child, rng, tau=0.0, sigma_floor=1e-6)
        moves.append(np.asarray(child, dtype=np.float64) - before)
        assert child.strategy == 0.2 and child.chaos.shape == (5000,)
    for move in moves:
        assert abs(move.mean()) < 1e-3 and move.std() == pytest.approx(0.2, rel=1e-3)
    assert abs(np.corrcoef(moves[0], moves[1])[0, 1]) < 0.1  # clones are not moved alike


def test_regimes_shape_the_predictions(rng):
    probs, labels, regime = sample_predictions(4000, 10, (1, 1, 1, 1), rng)
    assert probs.shape == (4000, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
    p_true = probs[np.arange(4000), labels]
    mean_by_regime = [p_true[regime == i].mean() for i in range(len(REGIMES))]
    confident, boundary, wrong, uniform = mean_by_regime
    assert confident > 0.6 and wrong < 0.05 and 0.2 < boundary < 0.6 and uniform == pytest.approx(0.1, abs=0.02)
    _, _, only_wrong = sample_predictions(100, 10, (0, 0, 1, 0), rng)
    assert np.all(only_wrong == 2)


def test_brier_error_equals_the_squared_distance_to_the_one_hot_label(rng):
    probs, labels, _ = sample_predictions(50, 4, (1, 1, 1, 1), rng)
    onehot = np.eye(4)[labels]
    np.testing.assert_allclose(prediction_errors(probs, labels, "brier"), ((probs - onehot) ** 2).sum(1), atol=1e-6)


def test_ranking_is_one_for_an_increasing_function_of_the_error_and_half_for_random(rng):
    errors = rng.random(3000)
    pairs = rng.integers(3000, size=(2, 20000))
    losses = np.stack([np.exp(errors), errors ** 3, -errors, rng.random(3000)])
    score = ranking_consistency(losses, errors, pairs, 1e-3)
    assert score[0] == 1.0 and score[1] == 1.0 and score[2] == 0.0
    assert score[3] == pytest.approx(0.5, abs=0.02)
    ties = ranking_consistency(np.zeros((1, 3000)), errors, pairs, 1e-3)
    assert ties[0] == 0.5
    broken = ranking_consistency(np.array([[np.nan] * 3000]), errors, pairs, 1e-3)
    assert np.isnan(broken[0])


def test_a_network_decreasing_in_p_true_ranks_perfectly_by_one_minus_p_true():
    config = preset("edl", hidden=(1,), edl_error="one-minus-p-true")
    mln = MetaLossNetwork((1,))
    with torch.no_grad():
        mln.net[0].weight.copy_(torch.tensor([[-3.0, 0.0, 0.0, 0.0]]))
        mln.net[0].bias.fill_(1.0)
        mln.net[1].weight.fill_(0.5)
        mln.net[2].weight.fill_(1.0)
        mln.net[2].bias.zero_()
    genome = module_to_genome(mln)
    assert ranking_fitness(genome[None], config, generation=0)[0] == 1.0
    # the same network ignores how the wrong mass is spread, so it cannot rank by Brier perfectly
    assert ranking_fitness(genome[None], preset("edl", hidden=(1,)), generation=0)[0] < 0.99


@pytest.mark.slow
def test_pretrain_edl_improves_and_its_loss_trains_a_ten_class_classifier(tmp_path):
    out = tmp_path / "edl"
    assert main(["pretrain-edl", "--out", str(out), "--generations", "15", "--quiet"]) == 0
    rows = (out / "logbook.csv").read_text().splitlines()[1:]
    best = [float(r.split(",")[3]) for r in rows]
    assert best[-1] > best[0]
    loss = load_loss(out / "best_loss.pt")
    torch.manual_seed(0)
    x = torch.randn(600, 20)
    y = (x[:, :10].argmax(1))
    model = torch.nn.Linear(20, 10)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = (model(x).argmax(1) == y).float().mean()
    for _ in range(300):
        optimiser.zero_grad()
        loss(model(x), y).backward()
        optimiser.step()
    after = (model(x).argmax(1) == y).float().mean()
    assert after > 0.8 and after > before + 0.5


def test_chaotic_runs_resume_exactly(tmp_path):
    config = preset("edl", generations=4, checkpoint_every=1, edl_samples=256, edl_pairs=2000)
    straight, resumed = straight_and_resumed(config, tmp_path)
    for x, y in zip(straight.state.population, resumed.state.population):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(getattr(x, "chaos", None), getattr(y, "chaos", None))
    assert fitness_columns(tmp_path / "straight" / "logbook.csv") == fitness_columns(tmp_path / "resumed" / "logbook.csv")
