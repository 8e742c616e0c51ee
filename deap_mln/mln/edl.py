"""Distribution-free loss pretraining (Evolutionary Dynamic Loss, EDL).

A loss network is scored without training any classifier and without real data: on
synthetic predictions, a good loss must order predictions as an error measure does
(*ranking consistency*): a more erroneous prediction must receive a larger loss.

The loss network is an MLN applied by Eq. 4 (sum over false classes of
MLN([p_true, p_false_i, 1, 0])), so the pretrained loss is an ordinary saved MLN that
``MLNLoss`` and ``deap-mln meta-test`` use for any number of classes.

Fitness, exactly:
    draw N predictions (probability vectors with a label) from the regime mixture;
    error e = the Brier score ||p - onehot(y)||^2 (``edl_error="brier"``, default) or
              1 - p_true (``"one-minus-p-true"``); loss L = Eq. 4 loss of the candidate;
    draw M pairs (a, b) uniformly with replacement; drop pairs with |e_a - e_b| <= tol;
    fitness = mean over kept pairs of  1 if sign(L_a - L_b) == sign(e_a - e_b),
                                       0.5 if L_a == L_b, else 0.
So 1 means the loss is a strictly increasing function of the error on the sample, 0.5 is
chance, 0 a loss that rewards errors. A non-finite loss value fails the individual.

Why Brier by default: ranking by 1 - p_true only asks for a loss decreasing in p_true,
which a random network often is already (the best of 10 random initial networks scored 0.998
here with that error measure). The Brier score
also depends on how the wrong mass is spread over the false classes, so the loss must
use p_false as well; Eq. 4's form can represent it exactly,
    ||p - y||^2 = sum over false i of [(1 - p_true)^2 / (K - 1) + p_false_i^2].
"""
from __future__ import annotations

import numpy as np
import torch

from deap_mln.mln.config import EvolutionConfig
from deap_mln.mln.network import batched_mln_forward, eq4_inputs
from deap_mln.seeding import generator

REGIMES = ("confident-correct", "boundary", "confident-wrong", "near-uniform")


def sample_predictions(n: int, num_classes: int, weights, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n probability vectors over ``num_classes`` with labels, from the regime mixture.

    Regimes (in the order of ``weights``):
      confident-correct  the true class's logit is raised by U(2, 6);
      boundary           the true class and one other are raised together by U(2, 5),
                         with a N(0, 0.5) difference between them: p_true near the top rival's;
      confident-wrong    one wrong class's logit is raised by U(2, 6);
      near-uniform       all logits within N(0, 0.1).
    Other logits are N(0, 0.5). Returns (probs (n, K) float32, labels (n,), regime (n,)).
    """
    w = np.asarray(weights, dtype=np.float64)
    regime = rng.choice(len(REGIMES), size=n, p=w / w.sum())
    labels = rng.integers(num_classes, size=n)
    rival = (labels + rng.integers(1, num_classes, size=n)) % num_classes  # a wrong class
    logits = rng.normal(0.0, 0.5, size=(n, num_classes))
    rows = np.arange(n)
    lift = rng.uniform(2.0, 6.0, size=n)
    cc, bd, cw, nu = (regime == i for i in range(4))
    logits[rows[cc], labels[cc]] += lift[cc]
    logits[rows[cw], rival[cw]] += lift[cw]
    shared = rng.uniform(2.0, 5.0, size=n)
    logits[rows[bd], labels[bd]] += shared[bd] + rng.normal(0.0, 0.5, size=bd.sum())
    logits[rows[bd], rival[bd]] += shared[bd]
    logits[nu] = rng.normal(0.0, 0.1, size=(nu.sum(), num_classes))
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    return probs.astype(np.float32), labels, regime


def eq4_population_losses(genomes: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor, hidden) -> torch.Tensor:
    """Eq. 4 loss of every sample under every genome: (P, N)."""
    n, k = probs.shape
    p_true = probs.gather(1, labels.view(-1, 1))
    false_mask = torch.ones_like(probs, dtype=torch.bool).scatter_(1, labels.view(-1, 1), False)
    p_false = probs[false_mask].view(n, k - 1)
    inputs = eq4_inputs(p_true.expand(n, k - 1), p_false).reshape(1, n * (k - 1), 4)
    values = batched_mln_forward(genomes, inputs.expand(genomes.shape[0], -1, -1), hidden)
    return values.view(genomes.shape[0], n, k - 1).sum(dim=2)


def ranking_consistency(losses: np.ndarray, errors: np.ndarray, pairs: np.ndarray, tie_tolerance: float) -> np.ndarray:
    """Fraction of concordant pairs per row of ``losses`` (P, N); see the module docstring.

    ``pairs`` is (2, M) sample indices. Rows with a non-finite loss give NaN.
    """
    a, b = pairs
    keep = np.abs(errors[a] - errors[b]) > tie_tolerance
    a, b = a[keep], b[keep]
    if a.size == 0:
        raise ValueError("no pair of predictions differs in error by more than the tie tolerance")
    error_order = np.sign(errors[a] - errors[b])
    loss_order = np.sign(losses[:, a] - losses[:, b])
    score = np.where(loss_order == error_order, 1.0, np.where(loss_order == 0, 0.5, 0.0)).mean(axis=1)
    return np.where(np.isfinite(losses).all(axis=1), score, np.nan)


def generation_sample(config: EvolutionConfig, generation: int | str):
    """The predictions and pairs every individual of ``generation`` is scored on; a name
    (``"validation"``, ``"test"``) gives a fixed sample of its own."""
    rng = generator(config.seed, "edl", generation)
    probs, labels, _ = sample_predictions(config.edl_samples, config.edl_classes, config.edl_regimes, rng)
    pairs = rng.integers(config.edl_samples, size=(2, config.edl_pairs))
    return probs, labels, pairs


def prediction_errors(probs: np.ndarray, labels: np.ndarray, measure: str) -> np.ndarray:
    """Error of each prediction: Brier score or 1 - p_true (float64)."""
    p = probs.astype(np.float64)
    p_true = p[np.arange(len(labels)), labels]
    if measure == "one-minus-p-true":
        return 1.0 - p_true
    if measure == "brier":
        return (p ** 2).sum(axis=1) - 2.0 * p_true + 1.0
    raise ValueError(f"unknown error measure {measure!r}")


def ranking_fitness(genomes: np.ndarray, config: EvolutionConfig, generation: int | str) -> np.ndarray:
    """EDL fitness of each row of ``genomes`` (P, D); NaN marks a failed (non-finite) loss."""
    probs, labels, pairs = generation_sample(config, generation)
    with torch.no_grad():
        losses = eq4_population_losses(torch.as_tensor(np.ascontiguousarray(genomes, dtype=np.float32)),
                                       torch.as_tensor(probs), torch.as_tensor(labels), config.hidden)
    errors = prediction_errors(probs, labels, config.edl_error)
    return ranking_consistency(losses.double().numpy(), errors, pairs, config.edl_tie_tolerance)
