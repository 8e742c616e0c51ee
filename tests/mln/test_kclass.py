"""K-class meta-tasks: tasks, Eq. 1 on probability vectors, the exact and fast Eq. 4 paths, K = 2 unchanged."""
import dataclasses

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from deap_mln.cli.evolve import config_from_args
from deap_mln.cli.main import build_parser
from deap_mln.data.synthetic import generation_tasks, make_task
from deap_mln.mln.check import population_passes
from deap_mln.mln.config import preset
from deap_mln.mln.dynamic_update import meta_gradient
from deap_mln.mln.fitness import FAILED_MLN_FITNESS, population_fitness, reference_fitness
from deap_mln.mln.inner import probability_mse, train_population, validation_mse
from deap_mln.mln.kclass_loss import ExactKClassMLNLoss, TabulatedKClassMLNLoss, false_classes, kclass_logit_gradient
from deap_mln.mln.network import MLNLoss, batched_mln_forward, eq4_inputs, genome_to_module, glorot_genome
from deap_mln.mln.pair_table import tabulate_pair_mln
from tests.conftest import tiny_config

SIZES = dict(pool_size=3_000, train_size=500, val_size=300)

# population_fitness of four Glorot genomes (numpy seed 12345) on tiny_config()'s generation-0 tasks,
# measured before K-class tasks existed: K = 2 must keep these numbers.
BINARY_FAST = [-0.07953570783138275, -0.07764830999076366, -0.08899208530783653, -0.0846954695880413]
BINARY_EXACT = [-0.07953452505171299, -0.0776498094201088, -0.08899090811610222, -0.08469194360077381]


def genomes_for(config, n, seed=12345):
    rng = np.random.default_rng(seed)
    return np.stack([glorot_genome(config.hidden, rng) for _ in range(n)])


def passing(config, n, seed=3):
    """``n`` Glorot genomes that pass the K-class check (about a third of draws do)."""
    drawn = genomes_for(config, 10 * n, seed)
    return drawn[population_passes(drawn, config.hidden, config.classes)][:n]


def test_two_classes_keep_the_binary_fitness_bit_for_bit():
    config = tiny_config(classes=2)
    assert config == tiny_config()
    genomes, tasks = genomes_for(config, 4), generation_tasks(config, 0)
    assert all(task.classes == 2 and task.p_val.dim() == 1 for task in tasks)
    np.testing.assert_allclose(population_fitness(genomes, config, tasks), BINARY_FAST, rtol=1e-6)
    exact = population_fitness(genomes, dataclasses.replace(config, evaluation="exact"), tasks)
    np.testing.assert_allclose(exact, BINARY_EXACT, rtol=1e-6)


def test_the_k_class_mse_is_the_binary_mse_for_two_classes():
    gen = torch.Generator().manual_seed(0)
    p, p_gt = torch.rand(3, 50, generator=gen), torch.rand(50, generator=gen)
    vectors = probability_mse(torch.stack([1 - p, p], -1), torch.stack([1 - p_gt, p_gt], -1))
    torch.testing.assert_close(vectors, probability_mse(p, p_gt))
    one_hot = torch.eye(4)
    assert probability_mse(one_hot[[1]].unsqueeze(0), one_hot[[2]]).item() == 1.0  # the worst case, for any K


@pytest.mark.parametrize("kind, shapes", [("linear", [(7, 5)]), ("nonlinear", [(32, 5), (32, 32), (7, 32)])])
def test_k_class_tasks_have_k_classes_and_probability_vectors(kind, shapes):
    task = make_task(0, 0, 0, kind=kind, classes=7, **SIZES)
    assert task.classes == 7 == task.ground_truth.classes
    assert [w.shape for w in task.ground_truth.weights] == shapes
    assert task.p_val.shape == (300, 7)
    torch.testing.assert_close(task.p_val.sum(1), torch.ones(300))
    p_train = task.ground_truth.probability(task.x_train.double().numpy())
    np.testing.assert_array_equal(task.y_train.numpy(), p_train.argmax(1))  # labelled by the most probable class
    assert set(task.y_train.tolist()) <= set(range(7)) and len(set(task.y_train.tolist())) >= 5
    again = make_task(0, 0, 0, kind=kind, classes=7, **SIZES)
    assert torch.equal(task.p_val, again.p_val) and torch.equal(task.y_train, again.y_train)
    with pytest.raises(ValueError, match="classes must be in"):
        make_task(0, 0, 0, classes=11, **SIZES)


def test_k_class_logit_gradient_is_the_softmax_chain_rule():
    """kclass_logit_gradient of an analytic g equals autograd through mean_n sum_i g(p_t, p_i)."""
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 9, 5, generator=gen, dtype=torch.float64) * 2
    target = torch.randint(5, (9,), generator=gen)
    false = false_classes(target, 5)
    assert all(t not in row for t, row in zip(target.tolist(), false.tolist()))
    z = logits.clone().requires_grad_()
    p = torch.softmax(z, -1)
    a = p.gather(2, target.view(1, -1, 1).expand(2, -1, 4))
    b = p.gather(2, false.unsqueeze(0).expand(2, -1, -1))
    (a * a * b + torch.sin(3 * b)).sum(2).mean(1).sum().backward()
    with torch.no_grad():
        ours = kclass_logit_gradient(p, target, false, 2 * a * b, a * a + 3 * torch.cos(3 * b))
    torch.testing.assert_close(ours, z.grad, rtol=1e-12, atol=1e-14)


def test_exact_k_class_loss_is_mln_loss_per_member():
    config = tiny_config(classes=6)
    genomes = torch.as_tensor(genomes_for(config, 3))
    gen = torch.Generator().manual_seed(2)
    logits, target = torch.randn(3, 11, 6, generator=gen) * 2, torch.randint(6, (11,), generator=gen)
    exact = ExactKClassMLNLoss(genomes, config.hidden)
    values, grads = exact(logits, target), exact.logit_gradient(logits, target)
    for m in range(3):
        z = logits[m].clone().requires_grad_()
        value = MLNLoss(genome_to_module(genomes[m].numpy(), config.hidden))(z, target)
        (grad,) = torch.autograd.grad(value, z)
        torch.testing.assert_close(values[m], value.detach(), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(grads[m], grad, rtol=1e-5, atol=1e-8)


def test_pair_table_holds_the_mln_and_its_exact_derivatives_at_the_nodes():
    config = tiny_config()
    genomes = torch.as_tensor(genomes_for(config, 2)).double()
    tables = tabulate_pair_mln(genomes, config.hidden, 9)
    i, j = torch.tensor([0, 2, 5, 3, 0]), torch.tensor([0, 6, 3, 5, 8])  # nodes on or inside the band i + j <= 10
    a, b = (i / 8).double().expand(2, -1).clone().requires_grad_(), (j / 8).double().expand(2, -1).clone().requires_grad_()
    values = batched_mln_forward(genomes, eq4_inputs(a, b), config.hidden)
    d_a, d_b = torch.autograd.grad(values.sum(), (a, b))
    torch.testing.assert_close(tables[:, 0, i, j], values.detach())
    torch.testing.assert_close(tables[:, 1, i, j], d_a)
    torch.testing.assert_close(tables[:, 2, i, j], d_b)
    assert (tables[:, :, 8, 8] == 0).all()  # beyond the triangle's band: never read, never evaluated


def test_fast_k_class_logit_gradient_matches_autograd_through_the_exact_mln():
    config = tiny_config(classes=10)
    genomes = torch.as_tensor(genomes_for(config, 4))
    gen = torch.Generator().manual_seed(3)
    logits, target = torch.randn(4, 40, 10, generator=gen) * 2, torch.randint(10, (40,), generator=gen)
    exact = ExactKClassMLNLoss(genomes, config.hidden)
    fast = TabulatedKClassMLNLoss(genomes, config.hidden, 257)
    scale = exact.logit_gradient(logits, target).abs().max()
    torch.testing.assert_close(fast.logit_gradient(logits, target), exact.logit_gradient(logits, target),
                               rtol=0, atol=0.05 * scale)  # a PReLU net's gradient jumps at kinks
    torch.testing.assert_close(fast(logits, target), exact(logits, target), rtol=1e-4, atol=0)
    coarse = TabulatedKClassMLNLoss(genomes, config.hidden, 9)
    error = lambda loss: (loss.logit_gradient(logits, target) - exact.logit_gradient(logits, target)).abs().mean()
    assert error(fast) < error(coarse) / 3  # finer tables read the derivatives more exactly


def test_fast_and_exact_k_class_fitness_agree_on_random_mlns():
    config = tiny_config(classes=5, chunk_size=10)
    genomes, tasks = passing(config, 10), generation_tasks(config, 0)
    fast = population_fitness(genomes, config, tasks)
    exact = population_fitness(genomes, dataclasses.replace(config, evaluation="exact"), tasks)
    assert np.all(exact > FAILED_MLN_FITNESS) and exact.max() - exact.min() > 1e-3
    assert spearmanr(fast, exact).statistic >= 0.99
    assert np.abs(fast - exact).max() < 1e-3


@pytest.mark.parametrize("kind", ["linear", "nonlinear"])
def test_batched_exact_k_class_path_matches_the_straightforward_reference(kind):
    config = tiny_config(classes=4, task_kind=kind, evaluation="exact", inner_epochs=2)
    genomes, tasks = passing(config, 2), generation_tasks(config, 1)
    assert all(task.classes == 4 for task in tasks)
    np.testing.assert_allclose(population_fitness(genomes, config, tasks),
                               [reference_fitness(g, config, tasks) for g in genomes], rtol=1e-4, atol=1e-6)


def test_k_class_training_learns_the_ground_truth():
    """A CE-shaped population loss fits a 4-class task much better than no training does."""
    config = tiny_config(classes=4, inner_epochs=20)
    task = generation_tasks(config, 0)[0]

    class CrossEntropy:
        def logit_gradient(self, logits, target):
            return (torch.softmax(logits, -1) - torch.nn.functional.one_hot(target, 4)) / logits.shape[1]

    trained = train_population(CrossEntropy(), task, 1, lr=0.5, epochs=20)
    untrained = train_population(CrossEntropy(), task, 1, lr=0.5, epochs=0)
    assert validation_mse(trained, task).item() < 0.5 * validation_mse(untrained, task).item()


def test_fast_k_class_meta_gradient_follows_the_exact_one():
    config = tiny_config(classes=5)
    genomes, task = passing(config, 3), generation_tasks(config, 0)[0]
    exact = meta_gradient(genomes, task, config, 4, "exact").astype(np.float64)
    fast = meta_gradient(genomes, task, config, 4, "fast").astype(np.float64)
    cosine = (exact * fast).sum(1) / np.linalg.norm(exact, axis=1) / np.linalg.norm(fast, axis=1)
    assert np.all(cosine > 0.999), cosine


def test_classes_are_validated_and_reach_the_config_from_the_command_line():
    with pytest.raises(ValueError, match=r"classes must be in \[2, 10\], got 11"):
        tiny_config(classes=11)
    with pytest.raises(ValueError, match="classes must be in"):
        tiny_config(classes=1)
    with pytest.raises(ValueError, match="ranking fitness uses edl_classes"):
        preset("edl", classes=3)
    assert preset("kclass").classes == 10 and preset("kclass").train_size == preset("quick").train_size
    parse = lambda *argv: config_from_args(build_parser().parse_args(list(argv)))
    assert parse("evolve", "--out", "x", "--classes", "4").classes == 4
    edl = parse("pretrain-edl", "--out", "x", "--classes", "100")  # --classes keeps its EDL meaning there
    assert edl.edl_classes == 100 and edl.classes == 2
    assert parse("evolve", "--out", "x", "--preset", "kclass", "--pair-grid-size", "17").pair_grid_size == 17
