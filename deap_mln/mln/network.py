"""Meta-Loss Network (MLN): the network, its DEAP genome, and its use as a loss.

The MLN of the Adaptive-MLN paper maps four inputs to a non-negative loss value:
4 -> 32 -> 64 -> 128 -> 256 -> 512 -> 1, PReLU between layers, Softplus at the end
(175,718 parameters). Eq. 4 applies it to a K-class prediction as
    loss = sum over false classes i of MLN([p_true, p_false_i, 1, 0]).

The genome is the flat float32 vector of the module's parameters in
``module.parameters()`` order; :func:`genome_to_module` and :func:`module_to_genome`
convert without loss. :func:`batched_mln_forward` evaluates many genomes at once
without building modules, for the population-wide inner loop.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deap_mln.reduction import check_reduction, reduce_losses
from deap_mln.saved_losses import MLN_FORMAT, read_record, write_record

PAPER_HIDDEN: tuple[int, ...] = (32, 64, 128, 256, 512)
MLN_INPUTS = 4
LOSS_FILE_FORMAT = MLN_FORMAT  # the format tag of saved MLNs


class MetaLossNetwork(nn.Module):
    """MLP 4 -> hidden... -> 1 with PReLU activations and a Softplus output.

    Weights get Glorot (Xavier) uniform initialisation and biases zero; each PReLU has
    one slope (initial 0.25), so the paper's sizes give 175,718 parameters.
    """

    def __init__(self, hidden: Sequence[int] = PAPER_HIDDEN):
        super().__init__()
        self.hidden = tuple(int(h) for h in hidden)
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden sizes must be positive integers, got {hidden!r}")
        layers: list[nn.Module] = []
        width = MLN_INPUTS
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.PReLU()]
            width = h
        layers += [nn.Linear(width, 1), nn.Softplus()]
        self.net = nn.Sequential(*layers)
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Loss values for inputs of shape (..., 4); returns shape (...)."""
        return self.net(x).squeeze(-1)


@dataclass(frozen=True)
class LayerSlices:
    """Where one layer's weight, bias and (optional) PReLU slope lie in the genome."""

    weight: slice
    weight_shape: tuple[int, int]
    bias: slice
    slope: int | None  # index of the PReLU slope; None for the output layer


def genome_layout(hidden: Sequence[int] = PAPER_HIDDEN) -> list[LayerSlices]:
    """The genome's layout, in the same order as ``MetaLossNetwork.parameters()``."""
    layout, offset, width = [], 0, MLN_INPUTS
    sizes = list(hidden) + [1]
    for i, out in enumerate(sizes):
        w = slice(offset, offset + out * width)
        offset = w.stop
        b = slice(offset, offset + out)
        offset = b.stop
        slope = None
        if i < len(hidden):
            slope, offset = offset, offset + 1
        layout.append(LayerSlices(w, (out, width), b, slope))
        width = out
    return layout


def genome_size(hidden: Sequence[int] = PAPER_HIDDEN) -> int:
    """Number of parameters of an MLN with these hidden sizes (175,718 for the paper's)."""
    last = genome_layout(hidden)[-1]
    return last.bias.stop


def module_to_genome(module: MetaLossNetwork) -> np.ndarray:
    """Flat float32 copy of the module's parameters (the DEAP genome)."""
    return torch.nn.utils.parameters_to_vector(module.parameters()).detach().cpu().numpy().astype(np.float32, copy=True)


def genome_to_module(genome: np.ndarray, hidden: Sequence[int] = PAPER_HIDDEN) -> MetaLossNetwork:
    """Build an MLN whose parameters are exactly ``genome`` (float32)."""
    module = MetaLossNetwork(hidden)
    vector = torch.as_tensor(np.asarray(genome, dtype=np.float32)).clone()
    if vector.numel() != genome_size(hidden):
        raise ValueError(
            f"genome has {vector.numel()} values but an MLN with hidden sizes {tuple(hidden)} "
            f"has {genome_size(hidden)} parameters"
        )
    torch.nn.utils.vector_to_parameters(vector, module.parameters())
    return module


def glorot_genome(hidden: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """A genome drawn like a freshly initialised MLN (Glorot weights, zero biases,
    PReLU slopes 0.25), from an explicit numpy generator."""
    genome = np.zeros(genome_size(hidden), dtype=np.float32)
    for layer in genome_layout(hidden):
        fan_out, fan_in = layer.weight_shape
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        genome[layer.weight] = rng.uniform(-bound, bound, size=fan_out * fan_in)
        if layer.slope is not None:
            genome[layer.slope] = 0.25
    return genome


def batched_mln_forward(genomes: torch.Tensor, inputs: torch.Tensor, hidden: Sequence[int]) -> torch.Tensor:
    """Evaluate P MLNs at once.

    genomes: (P, D) float tensor; inputs: (P, N, 4). Returns (P, N) loss values.
    Uses batched matmuls (``baddbmm``). A member's result can differ in the last bit with P
    (the kernel depends on the shapes), which is why ``chunk_size`` is part of the config.
    """
    h = inputs
    layout = genome_layout(hidden)
    for i, layer in enumerate(layout):
        out, width = layer.weight_shape
        w = genomes[:, layer.weight].reshape(-1, out, width)
        b = genomes[:, layer.bias].unsqueeze(1)
        h = torch.baddbmm(b, h, w.transpose(1, 2))
        if layer.slope is not None:
            a = genomes[:, layer.slope].reshape(-1, 1, 1)
            h = torch.where(h >= 0, h, a * h)
        elif i == len(layout) - 1:
            h = F.softplus(h)
    return h.squeeze(-1)


def eq4_inputs(p_true: torch.Tensor, p_false: torch.Tensor) -> torch.Tensor:
    """Stack Eq. 4's MLN inputs [p_true, p_false, 1, 0] along a new last axis."""
    ones = torch.ones_like(p_true)
    return torch.stack([p_true, p_false, ones, torch.zeros_like(p_true)], dim=-1)


class MLNLoss(nn.Module):
    """Drop-in classification loss from logits and integer targets (Eq. 4).

    Like ``nn.CrossEntropyLoss``: ``loss(logits (N, K), target (N,))`` with
    ``reduction`` in {"mean", "sum", "none"}. For each sample it sums the MLN over the
    K-1 false classes i of [p_true, p_false_i, 1, 0], where p = softmax(logits).
    A binary task is the case K = 2 (one false class).
    """

    def __init__(self, mln: MetaLossNetwork, reduction: str = "mean"):
        super().__init__()
        self.mln = mln
        self.reduction = check_reduction(reduction)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 2 or logits.shape[1] < 2:
            raise ValueError(f"logits must have shape (N, K) with K >= 2, got {tuple(logits.shape)}")
        p = torch.softmax(logits, dim=1)
        n, k = p.shape
        p_true = p.gather(1, target.view(-1, 1))  # (N, 1)
        false_mask = torch.ones_like(p, dtype=torch.bool).scatter_(1, target.view(-1, 1), False)
        p_false = p[false_mask].view(n, k - 1)
        per_sample = self.mln(eq4_inputs(p_true.expand(n, k - 1), p_false)).sum(dim=1)
        return reduce_losses(per_sample, self.reduction)


def save_loss(path: str | Path, genome: np.ndarray, hidden: Sequence[int], metadata: dict | None = None) -> None:
    """Save an evolved MLN as a weights-only file (see :mod:`deap_mln.saved_losses`)."""
    write_record(path, {
        "format": LOSS_FILE_FORMAT,
        "hidden": [int(h) for h in hidden],
        "genome": torch.as_tensor(np.asarray(genome, dtype=np.float32)).clone(),
        "metadata": dict(metadata or {}),
    })


def check_mln_record(record: dict, source: str) -> tuple[int, ...]:
    """Raise ``ValueError`` unless ``record`` is a complete saved MLN; returns its hidden sizes."""
    for key in ("hidden", "genome", "metadata"):
        if key not in record:
            raise ValueError(f"{source}: missing key {key!r}")
    try:
        hidden = tuple(int(h) for h in record["hidden"])
    except (TypeError, ValueError):
        raise ValueError(f"{source}: hidden sizes {record['hidden']!r} are not a list of integers") from None
    genome = record["genome"]
    if not isinstance(genome, torch.Tensor) or genome.dtype != torch.float32 or genome.dim() != 1:
        what = (f"{genome.dtype} tensor of shape {tuple(genome.shape)}" if isinstance(genome, torch.Tensor)
                else type(genome).__name__)
        raise ValueError(f"{source}: genome must be a 1-D float32 tensor, got a {what}")
    if not hidden or min(hidden) < 1 or genome.numel() != genome_size(hidden):
        raise ValueError(f"{source}: genome of {genome.numel()} values does not fit an MLN with hidden sizes {hidden}")
    if not torch.isfinite(genome).all():
        raise ValueError(f"{source}: genome holds NaN or infinite values")
    if not isinstance(record["metadata"], dict):
        raise ValueError(f"{source}: metadata must be a dict")
    return hidden


def load_loss_record(path: str | Path) -> dict:
    """Read and check a file written by :func:`save_loss`; executes no pickled code."""
    record = read_record(path)
    if record["format"] != LOSS_FILE_FORMAT:
        raise ValueError(f"{path} holds a {record['format']} loss, not an MLN ({LOSS_FILE_FORMAT})")
    check_mln_record(record, str(path))
    return record


def loss_from_record(record: dict, reduction: str = "mean") -> MLNLoss:
    """The :class:`MLNLoss` of a saved-MLN record (the loader of its format in saved_losses)."""
    check_mln_record(record, "MLN record")
    return MLNLoss(genome_to_module(record["genome"].numpy(), record["hidden"]), reduction=reduction)


def load_loss(path: str | Path, reduction: str = "mean") -> MLNLoss:
    """Load a saved evolved MLN as a ready-to-use :class:`MLNLoss`."""
    return loss_from_record(load_loss_record(path), reduction)
