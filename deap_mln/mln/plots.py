"""Figures of a run: fitness per generation and the evolved loss's shape."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from deap_mln.mln.population_loss import tabulate_binary_mln
from deap_mln.plotting import pyplot, save_figure


def plot_fitness(logbook: Sequence[dict], path: str | Path, title: str = "") -> None:
    """Best and mean fitness of the survivors per generation, with a +-1 std band."""
    gen = np.array([r["gen"] for r in logbook])
    best = np.array([r["best"] for r in logbook])
    mean = np.array([r["mean"] for r in logbook])
    std = np.array([r["std"] for r in logbook])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(gen, best, label="best", color="C0")
    ax.plot(gen, mean, label="mean", color="C1")
    ax.fill_between(gen, mean - std, mean + std, color="C1", alpha=0.2)
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness  (-MSE vs ground truth)")
    ax.set_title(title or "fitness per generation")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def binary_loss_curves(genome: np.ndarray, hidden: Sequence[int], points: int = 401) -> dict[str, np.ndarray]:
    """The evolved loss g(q) = MLN([q, 1-q, 1, 0]) and its derivative, next to CE and MSE,
    as functions of the probability q given to the true class."""
    values, slopes = tabulate_binary_mln(torch.as_tensor(np.asarray(genome, dtype=np.float32))[None], hidden, points)
    q = np.linspace(0.0, 1.0, points)
    with np.errstate(divide="ignore"):
        ce = -np.log(q)
    return dict(q=q, evolved=values[0].numpy(), evolved_slope=slopes[0].numpy(), ce=ce, mse=2 * (1 - q) ** 2)


def plot_loss_shape(genome: np.ndarray, hidden: Sequence[int], path: str | Path, title: str = "") -> None:
    """Left: raw values. Right: each loss rescaled to [0, 1] on q in [0.01, 1], to compare shapes."""
    c = binary_loss_curves(genome, hidden)
    q = c["q"]
    plt = pyplot()
    fig, (raw, norm) = plt.subplots(1, 2, figsize=(10, 4))
    raw.plot(q, c["evolved"], label="evolved MLN", color="C0")
    raw.set_xlabel("p_true")
    raw.set_ylabel("loss")
    raw.set_title("evolved loss (binary, Eq. 4)")
    raw.grid(alpha=0.3)
    keep = q >= 0.01
    labels = {"evolved": "evolved MLN", "ce": "cross-entropy", "mse": "MSE"}
    for name, color in (("evolved", "C0"), ("ce", "C3"), ("mse", "C2")):
        v = c[name][keep]
        span = v.max() - v.min()
        norm.plot(q[keep], (v - v.min()) / span if span > 0 else v * 0, label=labels[name], color=color)
    norm.set_xlabel("p_true")
    norm.set_ylabel("loss rescaled to [0, 1]")
    norm.set_title(title or "shape against CE and MSE")
    norm.grid(alpha=0.3)
    norm.legend()
    save_figure(fig, path)
