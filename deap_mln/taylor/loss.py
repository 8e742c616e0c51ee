r"""TaylorGLO's loss: a third-order Taylor polynomial in the label and the prediction.

Gonzalez and Miikkulainen (2021), *Optimizing loss functions through multivariate Taylor
polynomial parameterization* (GECCO; arXiv:2002.00059). For K classes, one-hot label y and
softmax probabilities p, with parameters theta = (theta_0, ..., theta_7):

    L(y, p) = -1/K sum_{k=1..K} [ theta_2 (p_k - theta_1)
                                 + 1/2 theta_3 (p_k - theta_1)^2
                                 + 1/6 theta_4 (p_k - theta_1)^3
                                 + theta_5 (y_k - theta_0) (p_k - theta_1)
                                 + 1/2 theta_6 (y_k - theta_0) (p_k - theta_1)^2
                                 + 1/2 theta_7 (y_k - theta_0)^2 (p_k - theta_1) ]

(theta_0, theta_1) is the expansion point in (y, p); theta_2 .. theta_7 are the coefficients
of the terms of a bivariate third-order Taylor polynomial that contain p, each with its
Taylor factor 1 / (i! j!) (3 / 3! = 1/2 for the two mixed third-order terms). The
polynomial's other four terms, the constant, (y - theta_0), (y - theta_0)^2 and
(y - theta_0)^3, do not depend on p: their gradient with respect to the network's outputs is
zero, so they cannot change training and are dropped, leaving 2 + 6 = 8 parameters. This is
the form of the paper's Eq. (6); some re-implementations write the last term without its 1/2,
which only rescales theta_7 and searches the same family. The loss is averaged over the batch
(``reduction``).

Two parameter vectors give familiar losses, used in the tests:

* theta_0 = theta_1 = 0, theta_3 = -2, theta_5 = 2, the rest 0: L = 1/K sum_k (p_k - y_k)^2 - 1/K,
  squared error up to a constant;
* theta_0 = theta_1 = 0, theta_5 = 1, the rest 0: L = -p_true / K.

A saved TaylorGLO loss is the record ``{"format": TAYLOR_FORMAT, "parameters": float64 (8,),
"formula": the equation above, "metadata": {...}}``: plain numbers, no code.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from deap_mln.reduction import check_reduction, reduce_losses
from deap_mln.saved_losses import TAYLOR_FORMAT

FORMAT = TAYLOR_FORMAT
PARAMETERS = 8
FORM = ("L = -1/K sum_k [t2 (p-t1) + 1/2 t3 (p-t1)^2 + 1/6 t4 (p-t1)^3 + t5 (y-t0)(p-t1) "
        "+ 1/2 t6 (y-t0)(p-t1)^2 + 1/2 t7 (y-t0)^2 (p-t1)], p = softmax(logits)_k, y = onehot(target)_k")


def check_parameters(parameters: torch.Tensor) -> torch.Tensor:
    """``parameters`` as float64 with last axis 8 (one vector, or a batch of them); ValueError otherwise."""
    theta = torch.as_tensor(parameters, dtype=torch.float64)
    if theta.ndim == 0 or theta.shape[-1] != PARAMETERS:
        raise ValueError(f"a TaylorGLO loss has {PARAMETERS} parameters, got shape {tuple(theta.shape)}")
    if not torch.isfinite(theta).all():
        raise ValueError("TaylorGLO parameters must be finite")
    return theta


def taylor_terms(theta: torch.Tensor, y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The bracket of the module equation for each class: theta (..., 8) broadcast against y, p (..., K)
    (theta gets a class axis here)."""
    t = [theta[..., i, None] for i in range(PARAMETERS)]
    dp, dy = p - t[1], y - t[0]
    return (t[2] * dp + t[3] * dp ** 2 / 2 + t[4] * dp ** 3 / 6
            + t[5] * dy * dp + t[6] * dy * dp ** 2 / 2 + t[7] * dy ** 2 * dp / 2)


def per_sample_taylor_loss(theta: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L(y, p) per example: logits (..., N, K), target (N,), theta (8,) or (P, 1, 8) against (P, N, K)."""
    p = torch.softmax(logits, dim=-1)
    y = F.one_hot(target, num_classes=logits.shape[-1]).to(p.dtype)
    return -taylor_terms(theta.to(p.dtype), y, p).mean(dim=-1)


class TaylorGLOLoss(nn.Module):
    """The TaylorGLO loss of 8 parameters, used like ``nn.CrossEntropyLoss``: ``loss(logits (N, K), target (N,))``.

    ``reduction`` is ``mean`` (over the batch), ``sum`` or ``none`` (one value per example).
    """

    def __init__(self, parameters: torch.Tensor | list[float] | tuple[float, ...], reduction: str = "mean"):
        super().__init__()
        self.theta: torch.Tensor
        self.register_buffer("theta", check_parameters(torch.as_tensor(parameters)).clone())
        self.reduction = check_reduction(reduction)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return reduce_losses(per_sample_taylor_loss(self.theta, logits, target), self.reduction)

    def extra_repr(self) -> str:
        return f"theta={[round(v, 4) for v in self.theta.tolist()]}, reduction={self.reduction!r}"


def loss_record(parameters: torch.Tensor | list[float] | tuple[float, ...], metadata: dict | None = None) -> dict:
    """The saved-loss record of a parameter vector (for :func:`deap_mln.saved_losses.write_record`)."""
    theta = check_parameters(torch.as_tensor(parameters)).clone()
    return {"format": FORMAT, "parameters": theta, "formula": FORM, "metadata": dict(metadata or {})}


def loss_from_record(record: dict, reduction: str = "mean") -> TaylorGLOLoss:
    """The :class:`TaylorGLOLoss` of a saved record (the entry of ``FORMATS`` in saved_losses)."""
    try:
        return TaylorGLOLoss(record["parameters"], reduction)
    except ValueError as exc:
        raise KeyError(str(exc)) from exc
