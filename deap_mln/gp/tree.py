"""Symbolic losses: DEAP expression trees over the one-hot label y and the softmax p.

A tree is a per-class expression f(y_k, p_k); the loss of a batch is

    L = 1/N sum_n sum_k f(y_nk, p_nk),    p = softmax(logits), y = onehot(target),

so every class is treated alike. The primitive set (:data:`PSET`) holds +, -, *, negation,
sin, cos and protected division, log, square root and exponential (:data:`EPS`,
:data:`EXP_MAX`), the terminals y and p, the constants 1 and 2 and an ephemeral constant
(uniform in [-2, 2], two decimals). Every primitive is a torch function, and
:func:`compile_tree` builds a batched, differentiable torch function from a tree's nodes
(no Python source is generated or evaluated).

Known losses in this language (:data:`KNOWN_LOSSES`), used as tests and initial seeds:

- cross-entropy: f = -y log p.
- Baikal (Gonzalez & Miikkulainen 2020, "Improved training speed, accuracy, and data
  utilization through loss function optimization", CEC 2020, found by GLO):
  L = -1/n sum_i (log(x_i) - y_i / x_i) over the n classes, so f = -(log p - y / p).
  Our sum over classes is n times their class mean.
- NGL, "Next Generation Loss" (Akhmedova & Koerber 2024, arXiv:2404.12948):
  mean over batch and classes of exp(alpha - p (1 + y)) - cos(cos(sin(p))), alpha = 2.4092,
  on softmax outputs (as in the authors' ``NGL_torch.py``); again ours is K times their mean.
- squared error: f = (p - y)^2 (the ``mse`` baseline of :mod:`deap_mln.metatest.baselines`).

:func:`check_tree` is the functional check of efficiency-based GP: it rejects trees without
both y and p, with non-finite values or gradients on a probe batch, constant in p, or that do
not give a correct confident prediction a lower loss than a wrong one.
"""
from __future__ import annotations

import math
import operator
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from deap import base, gp
from torch import nn
from torch.nn import functional as F

from deap_mln.reduction import check_reduction, reduce_losses
from deap_mln.saved_losses import GP_FORMAT

FORMAT = GP_FORMAT
EPS = 1e-12       # protected log, sqrt and division never see |x| below this
EXP_MAX = 30.0    # protected exp clamps its argument here (exp(30) ~ 1e13)
COMMUTATIVE = frozenset({"add", "mul"})


# --------------------------------------------------------------------------- primitives

def pdiv(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a / b with |b| clamped to at least EPS (its sign kept; 0 counts as positive)."""
    return a / torch.where(b >= 0, b.clamp_min(EPS), b.clamp_max(-EPS))


def plog(a: torch.Tensor) -> torch.Tensor:
    """log(max(|a|, EPS))."""
    return torch.log(a.abs().clamp_min(EPS))


def psqrt(a: torch.Tensor) -> torch.Tensor:
    """sqrt(max(|a|, EPS))."""
    return torch.sqrt(a.abs().clamp_min(EPS))


def pexp(a: torch.Tensor) -> torch.Tensor:
    """exp(min(a, EXP_MAX))."""
    return torch.exp(a.clamp_max(EXP_MAX))


def random_constant() -> float:
    """The ephemeral constant: uniform in [-2, 2], rounded to two decimals (Python ``random``)."""
    return round(random.uniform(-2.0, 2.0), 2)


def build_primitive_set() -> gp.PrimitiveSet:
    """The primitive set of symbolic losses; arguments renamed y (one-hot label) and p (softmax)."""
    pset = gp.PrimitiveSet("LOSS", 2)
    for fn, arity, name in ((operator.add, 2, "add"), (operator.sub, 2, "sub"), (operator.mul, 2, "mul"),
                            (pdiv, 2, "pdiv"), (torch.neg, 1, "neg"), (plog, 1, "plog"), (psqrt, 1, "psqrt"),
                            (pexp, 1, "pexp"), (torch.sin, 1, "sin"), (torch.cos, 1, "cos")):
        pset.addPrimitive(fn, arity, name=name)
    pset.addTerminal(1.0)
    pset.addTerminal(2.0)
    pset.addEphemeralConstant("loss_constant", random_constant)
    pset.renameArguments(ARG0="y", ARG1="p")
    return pset


PSET = build_primitive_set()  # built once: DEAP names ephemeral classes globally


class FitnessMax(base.Fitness):
    """Validation accuracy, maximised."""

    weights = (1.0,)


class LossTree(gp.PrimitiveTree):
    """A DEAP expression tree with a fitness (what ``creator.create`` would make, importable)."""

    def __init__(self, content):
        super().__init__(content)
        self.fitness = FitnessMax()


KNOWN_LOSSES: dict[str, str] = {
    "cross_entropy": "neg(mul(y, plog(p)))",
    "baikal": "neg(sub(plog(p), pdiv(y, p)))",
    "ngl": "sub(pexp(sub(2.4092, mul(p, add(1.0, y)))), cos(cos(sin(p))))",
    "squared_error": "mul(sub(p, y), sub(p, y))",
}


# --------------------------------------------------------------------------- text <-> tree

def parse_expression(text: str, pset: gp.PrimitiveSet = PSET) -> LossTree:
    """The tree of a prefix expression such as ``neg(mul(y, plog(p)))``.

    Unlike ``gp.PrimitiveTree.from_string`` nothing is passed to ``eval``: a token is a
    primitive or terminal of ``pset`` or a float literal, anything else is a ``ValueError``.
    """
    tokens = [t for t in re.split(r"[\s(),]", text) if t]
    nodes, open_slots = [], 1
    for token in tokens:
        if open_slots == 0:
            raise ValueError(f"expression {text!r} has tokens after a complete tree")
        if token in pset.mapping:
            node = pset.mapping[token]
        else:
            try:
                value = float(token)
            except ValueError:
                raise ValueError(f"expression {text!r}: unknown token {token!r}") from None
            if not math.isfinite(value):
                raise ValueError(f"expression {text!r}: constant {token!r} is not finite")
            node = gp.Terminal(value, False, object)
        nodes.append(node)
        open_slots += node.arity - 1
    if not nodes or open_slots != 0:
        raise ValueError(f"expression {text!r} is not a complete tree")
    return LossTree(nodes)


def _subtrees(tree: gp.PrimitiveTree, index: int = 0) -> tuple[gp.Primitive | gp.Terminal, list[int], int]:
    """Root node at ``index``, start indices of its children, and the end of its subtree."""
    node, children, at = tree[index], [], index + 1
    for _ in range(node.arity):
        children.append(at)
        at = tree.searchSubtree(at).stop
    return node, children, at


def canonical_string(tree: gp.PrimitiveTree, index: int = 0) -> str:
    """Prefix form with the arguments of add and mul sorted: trees that differ only in the
    order of commutative arguments (bitwise the same loss in IEEE arithmetic) share one key."""
    node, children, _ = _subtrees(tree, index)
    if node.arity == 0:
        return node.format()
    args = [canonical_string(tree, c) for c in children]
    if node.name in COMMUTATIVE:
        args.sort()
    return f"{node.name}({', '.join(args)})"


INFIX = {"add": "+", "sub": "-", "mul": "*", "pdiv": "/"}


def _infix(tree: gp.PrimitiveTree, index: int) -> tuple[str, bool]:
    """Text of the subtree at ``index`` and whether it needs parentheses as an operand."""
    node, children, _ = _subtrees(tree, index)
    if node.arity == 0:
        text = node.format()
        return text, text.startswith("-")
    args = [_infix(tree, c) for c in children]
    operands = [f"({text})" if wrap else text for text, wrap in args]
    if node.name in INFIX:
        return f"{operands[0]} {INFIX[node.name]} {operands[1]}", True
    if node.name == "neg":
        return f"-{operands[0]}", True
    return f"{node.name.removeprefix('p')}({args[0][0]})", False


def infix_formula(tree: gp.PrimitiveTree) -> str:
    """A readable formula of the per-class term, e.g. ``-(y * log(p))`` (log, sqrt, exp and /
    are the protected versions)."""
    return _infix(tree, 0)[0]


# --------------------------------------------------------------------------- compile

Term = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def compile_tree(tree: gp.PrimitiveTree, pset: gp.PrimitiveSet = PSET) -> Term:
    """A torch function ``f(y, p, log_p)`` of the per-class term, built from the tree's nodes.

    ``plog(p)`` reads ``log_p`` (from ``log_softmax``, clamped at log EPS): the same value
    as ``log(max(p, EPS))`` without underflow, so cross-entropy is exact.
    """
    log_eps = math.log(EPS)

    def build(index: int) -> Term:
        node, children, _ = _subtrees(tree, index)
        if node.arity == 0:
            if node.value == "y":
                return lambda y, p, log_p: y
            if node.value == "p":
                return lambda y, p, log_p: p
            c = float(node.value)
            return lambda y, p, log_p: p.new_full((), c)
        if node.name == "plog" and tree[index + 1].arity == 0 and tree[index + 1].value == "p":
            return lambda y, p, log_p: log_p.clamp_min(log_eps)
        op, args = pset.context[node.name], [build(c) for c in children]
        if node.arity == 1:
            (a,) = args
            return lambda y, p, log_p: op(a(y, p, log_p))
        a, b = args
        return lambda y, p, log_p: op(a(y, p, log_p), b(y, p, log_p))

    return build(0)


def per_sample_loss(term: Term, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """sum_k f(y_k, p_k) for each row of ``logits`` (N, K) with integer ``target`` (N,)."""
    log_p = torch.log_softmax(logits, dim=1)
    y = F.one_hot(target, num_classes=logits.shape[1]).to(logits.dtype)
    values = term(y, log_p.exp(), log_p)
    return torch.broadcast_to(values, logits.shape).sum(dim=1)


class GPLoss(nn.Module):
    """A symbolic loss used like ``nn.CrossEntropyLoss``: ``loss(logits (N, K), target (N,))``.

    ``reduction`` is ``mean`` (over the batch), ``sum`` or ``none`` (one value per example).
    """

    def __init__(self, expression: str | gp.PrimitiveTree, reduction: str = "mean"):
        super().__init__()
        tree = parse_expression(expression) if isinstance(expression, str) else expression
        self.expression = str(tree)
        self.formula = infix_formula(tree)
        self.reduction = check_reduction(reduction)
        self._term = compile_tree(tree)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return reduce_losses(per_sample_loss(self._term, logits, target), self.reduction)

    def extra_repr(self) -> str:
        return f"loss = mean_n sum_k [{self.formula}], reduction={self.reduction!r}"


# --------------------------------------------------------------------------- functional check

MISSING_VARIABLE, NON_FINITE, CONSTANT_IN_P, PREFERS_WRONG = "missing-variable", "non-finite", "constant-in-p", "prefers-wrong"
PROBE_CLASSES = (2, 10)   # the check runs on binary and on 10-class probes
CONFIDENT_MARGIN = 4.0    # logit margin of the confident predictions (p ~ 0.98 binary, 0.86 of 10)
MIN_GRADIENT = 1e-8       # below this everywhere on the probe, the loss counts as constant in p


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    reason: str = ""   # one of MISSING_VARIABLE, NON_FINITE, CONSTANT_IN_P, PREFERS_WRONG
    detail: str = ""

    def __bool__(self) -> bool:
        return self.ok


_PROBES: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}


def probe_batch(classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed probe logits (moderate, large and extreme scales, 96 rows) and targets."""
    if classes not in _PROBES:
        g = torch.Generator().manual_seed(7919 + classes)
        scales = torch.tensor([0.1, 1.0, 3.0, 10.0, 30.0, 60.0]).repeat_interleave(16)[:, None]
        logits = torch.randn(len(scales), classes, generator=g) * scales
        _PROBES[classes] = (logits, torch.randint(classes, (len(scales),), generator=g))
    return _PROBES[classes]


def check_tree(tree: gp.PrimitiveTree) -> CheckResult:
    """The functional check of efficiency-based GP (see the module docstring)."""
    names = {node.value for node in tree if node.arity == 0}
    missing = [v for v in ("y", "p") if v not in names]
    if missing:
        return CheckResult(False, MISSING_VARIABLE, f"no {' or '.join(missing)}")
    term = compile_tree(tree)
    for k in PROBE_CLASSES:
        base_logits, target = probe_batch(k)
        logits = base_logits.clone().requires_grad_(True)
        losses = per_sample_loss(term, logits, target)
        if not torch.isfinite(losses).all():
            return CheckResult(False, NON_FINITE, f"non-finite loss on the {k}-class probe")
        (grad,) = torch.autograd.grad(losses.sum(), logits, allow_unused=True)
        if grad is not None and not torch.isfinite(grad).all():
            return CheckResult(False, NON_FINITE, f"non-finite gradient on the {k}-class probe")
        if grad is None or grad.abs().max() < MIN_GRADIENT:
            return CheckResult(False, CONSTANT_IN_P, f"zero gradient on the {k}-class probe")
        with torch.no_grad():
            target = target[:16]
            wrong = (target + 1) % k
            right = per_sample_loss(term, CONFIDENT_MARGIN * F.one_hot(target, k).float(), target)
            bad = per_sample_loss(term, CONFIDENT_MARGIN * F.one_hot(wrong, k).float(), target)
        if not (torch.isfinite(right).all() and torch.isfinite(bad).all()):
            return CheckResult(False, NON_FINITE, f"non-finite loss on confident {k}-class predictions")
        if not (right < bad).all():
            return CheckResult(False, PREFERS_WRONG,
                               f"{k} classes: correct {right.max():.4g} is not below wrong {bad.min():.4g}")
    return CheckResult(True)


# --------------------------------------------------------------------------- saved losses

def loss_record(tree: gp.PrimitiveTree, metadata: dict | None = None) -> dict:
    """The weights-only record of a symbolic loss (for :func:`deap_mln.saved_losses.write_record`)."""
    return {"format": FORMAT, "expression": str(tree), "formula": infix_formula(tree), "metadata": dict(metadata or {})}


def loss_from_record(record: dict, reduction: str = "mean") -> GPLoss:
    """The :class:`GPLoss` of a saved record (the entry of ``FORMATS`` in saved_losses)."""
    expression = record["expression"]
    if not isinstance(expression, str):
        raise ValueError(f"expression must be a string, got {type(expression).__name__}")
    return GPLoss(expression, reduction)
