"""Compiled losses: an evolved MLN turned into a 2-D table with exact derivatives.

In Eq. 4 the MLN only ever sees ``[p_true, p_false, 1, 0]``, so a trained MLN is a
function g(p_true, p_false) of two variables on the triangle p_true + p_false <= 1.
:func:`tabulate` evaluates g, dg/dp_true, dg/dp_false and d2g/dp_true dp_false (all by
autograd, in float64) at the nodes of a ``resolution`` x ``resolution`` grid over the unit
square (the full square: cells that straddle the hypotenuse need nodes just outside the
triangle, where the network is still defined). :class:`CompiledMLNLoss` then replaces the
175,718-parameter network by interpolation in that table.

Interpolation: bicubic Hermite. On each cell the loss is the bicubic polynomial that matches
the value, both first derivatives and the mixed derivative at the four corners. Its gradient
is the polynomial's own derivative, so

* the gradient comes from the exact derivative tables (at the nodes it *is* the network's
  gradient), not from differences of values;
* forward and backward are consistent (``torch.autograd.gradcheck`` passes on
  :class:`HermiteTable`), and the interpolant is C1 across cells.

Measured on an evolved MLN (docs/deploy.md; a random paper-size one behaved alike), Hermite halves the
maximum value error of bilinear values + bilinear derivative tables at every resolution and
lowers the typical (mean, 99th percentile) gradient error by about 30%. Neither scheme
can make the *maximum* gradient error vanish: a PReLU network is piecewise linear before its
Softplus, so its gradient jumps across kink lines and any continuous interpolant is off by up
to half a jump in the cells a kink crosses. :func:`compile_error` reports these numbers.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from deap_mln.mln.network import MLNLoss, eq4_inputs
from deap_mln.reduction import check_reduction, reduce_losses
from deap_mln.saved_losses import TABLE_FORMAT, read_record, write_record

FORMAT = TABLE_FORMAT
INTERPOLATION = "bicubic-hermite"
DEFAULT_RESOLUTION = 257  # nodes per axis; max value error < 1e-3 of the loss's range (docs/deploy.md)
TABLE_KEYS = ("values", "d_true", "d_false", "d_true_false")
TABLE_DTYPES = (torch.float32, torch.float64)
_CHUNK = 16_384  # grid points per autograd pass while tabulating

# p(t) = [1, t, t^2, t^3] @ _HERMITE @ [f(0), f(1), f'(0), f'(1)]
_HERMITE = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [-3.0, 3.0, -2.0, -1.0], [2.0, -2.0, 1.0, 1.0]],
                        dtype=torch.float64)

PairFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mln_pair_function(mln: nn.Module) -> PairFunction:
    """g(p_true, p_false) = MLN([p_true, p_false, 1, 0]) (Eq. 4's term), in float64 on a copy."""
    net = copy.deepcopy(mln.mln if isinstance(mln, MLNLoss) else mln).double().eval()
    return lambda p_true, p_false: net(eq4_inputs(p_true, p_false))


def value_and_gradient(fn: PairFunction, p_true: torch.Tensor, p_false: torch.Tensor, *, mixed: bool = False,
                       chunk: int = _CHUNK) -> tuple[torch.Tensor, ...]:
    """g, dg/dp_true, dg/dp_false (and d2g/dp_true dp_false if ``mixed``) at 1-D points, by autograd.

    Each output depends only on its own inputs, so the gradient of the sum is pointwise.
    """
    outs: list[list[torch.Tensor]] = [[] for _ in range(4 if mixed else 3)]
    for start in range(0, p_true.numel(), chunk):
        a = p_true[start:start + chunk].detach().clone().requires_grad_()
        b = p_false[start:start + chunk].detach().clone().requires_grad_()
        with torch.enable_grad():
            v = fn(a, b)
            ga, gb = torch.autograd.grad(v.sum(), (a, b), create_graph=mixed)
            parts = [v, ga, gb]
            if mixed:
                # d/dp_false of dg/dp_true; zero where the graph does not reach (a PReLU net's
                # mixed derivative comes only from the Softplus curvature)
                (gab,) = torch.autograd.grad(ga.sum(), b, allow_unused=True)
                parts.append(torch.zeros_like(b) if gab is None else gab)
        for out, part in zip(outs, parts):
            out.append(part.detach())
    return tuple(torch.cat(o) for o in outs)


def tabulate(fn: PairFunction, resolution: int = DEFAULT_RESOLUTION) -> dict[str, torch.Tensor]:
    """Values and exact derivatives of g at the nodes (i, j) = (p_true, p_false) = (i, j) / (R - 1).

    Returns float64 tables of shape (R, R) named as in :data:`TABLE_KEYS`.
    """
    resolution = _check_resolution(resolution)
    axis = torch.linspace(0.0, 1.0, resolution, dtype=torch.float64)
    p_true, p_false = (t.reshape(-1) for t in torch.meshgrid(axis, axis, indexing="ij"))
    parts = value_and_gradient(fn, p_true, p_false, mixed=True)
    return {key: part.view(resolution, resolution) for key, part in zip(TABLE_KEYS, parts)}


def hermite_coefficients(tables: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-cell bicubic Hermite coefficients, shape ((R-1)^2, 16), float64.

    Cell (i, j) covers [i, i+1] x [j, j+1] / (R-1); with local coordinates u, v in [0, 1]
    the interpolant is sum_ab C[cell, 4a + b] u^a v^b.
    """
    f = tables["values"].double()
    resolution = f.shape[0]
    h = 1.0 / (resolution - 1)
    fu, fv, fuv = tables["d_true"].double() * h, tables["d_false"].double() * h, tables["d_true_false"].double() * h * h

    def corners(t: torch.Tensor) -> tuple[torch.Tensor, ...]:  # t at (i, j), (i, j+1), (i+1, j), (i+1, j+1)
        return t[:-1, :-1], t[:-1, 1:], t[1:, :-1], t[1:, 1:]

    (f00, f01, f10, f11), (u00, u01, u10, u11) = corners(f), corners(fu)
    (v00, v01, v10, v11), (w00, w01, w10, w11) = corners(fv), corners(fuv)
    g = torch.stack([torch.stack(row, -1) for row in (
        (f00, f01, v00, v01), (f10, f11, v10, v11), (u00, u01, w00, w01), (u10, u11, w10, w11))], -2)
    coeffs = _HERMITE @ g @ _HERMITE.T  # (R-1, R-1, 4, 4)
    return coeffs.reshape(-1, 16)


def interpolation_kernel(coeffs: torch.Tensor) -> torch.Tensor:
    """Per-cell coefficients of the interpolant and of its two partial derivatives, shape
    ((R-1)^2, 4, 4, 3): ``K[cell, b, a, o]`` multiplies u^a v^b in output o (0: g, 1: dg/dp_true,
    2: dg/dp_false), for the Hermite coefficients of :func:`hermite_coefficients`. (This axis
    order keeps the slices that Horner's scheme reads contiguous.)"""
    cells = coeffs.shape[0]
    last = math.isqrt(cells)
    c = coeffs.view(cells, 4, 4)
    power = torch.arange(1, 4, dtype=coeffs.dtype)
    kernel = coeffs.new_zeros(cells, 3, 4, 4)
    kernel[:, 0] = c
    kernel[:, 1, :3, :] = c[:, 1:, :] * power.view(1, 3, 1) * last  # d/du, and du/dp_true = R - 1
    kernel[:, 2, :, :3] = c[:, :, 1:] * power.view(1, 1, 3) * last
    return kernel.permute(0, 3, 2, 1).contiguous()


def _locate(p: torch.Tensor, last: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell index (as float) along one axis and the local coordinate in [0, 1] of probabilities ``p``."""
    x = p * last
    # a diverged prediction's NaN must reach the loss, not become a garbage index
    i = x.nan_to_num(0.0).floor_().clamp_(0, last - 1)
    return i, x - i


def _horner(kernel: torch.Tensor, cell: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """sum_ab K[cell, :, a, b] u^a v^b for ``cell``, ``u``, ``v`` broadcastable to one shape S: shape (*S, 3)."""
    k = kernel.index_select(0, cell.reshape(-1)).view(-1, 4, 4, 3)  # (n, b, a, o)
    v, u = v.expand(cell.shape).reshape(-1, 1, 1), u.expand(cell.shape).reshape(-1, 1)
    r = torch.addcmul(k[:, 2], k[:, 3], v)
    r = torch.addcmul(k[:, 1], r, v)
    r = torch.addcmul(k[:, 0], r, v)  # (n, a, o): polynomials in u
    s = torch.addcmul(r[:, 2], r[:, 3], u)
    s = torch.addcmul(r[:, 1], s, u)
    return torch.addcmul(r[:, 0], s, u).view(*cell.shape, 3)


def interpolate(kernel: torch.Tensor, resolution: int, p_true: torch.Tensor, p_false: torch.Tensor) -> torch.Tensor:
    """[g, dg/dp_true, dg/dp_false] of the Hermite interpolant at points of one shape S: shape (*S, 3)."""
    last = resolution - 1
    i, u = _locate(p_true, last)
    j, v = _locate(p_false, last)
    return _horner(kernel, (i * last + j).long(), u, v)


class HermiteTable(torch.autograd.Function):
    """g(p_true, p_false) from an :func:`interpolation_kernel`; the backward pass uses the
    interpolant's exact partial derivatives, computed in the same pass as the value."""

    @staticmethod
    def forward(ctx, p_true: torch.Tensor, p_false: torch.Tensor, kernel: torch.Tensor, resolution: int) -> torch.Tensor:
        out = interpolate(kernel, resolution, p_true, p_false)
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.save_for_backward(out[..., 1], out[..., 2])
        return out[..., 0]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        d_true, d_false = ctx.saved_tensors
        return grad * d_true, grad * d_false, None, None


class TableEq4(torch.autograd.Function):
    """Eq. 4 from logits in one pass: per-sample sum over false classes i of g(p_true, p_i),
    p = softmax(logits), and its gradient with respect to the logits.

    Forward interpolates value and both partial derivatives at the N x K pairs (the true
    class's own pair is masked out), so backward is two products: dL/dp (the derivative
    tables) and the softmax Jacobian, dL/dz = p * (dL/dp - <p, dL/dp>).
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, kernel: torch.Tensor, resolution: int) -> torch.Tensor:
        last = resolution - 1
        p = torch.softmax(logits, dim=1)
        index = target.view(-1, 1)
        i, u = _locate(p.gather(1, index), last)  # (N, 1)
        j, v = _locate(p, last)  # (N, K)
        terms = _horner(kernel, (i * last + j).long(), u, v)  # (N, K, 3)
        terms.mul_(torch.ones_like(p).scatter_(1, index, 0.0).unsqueeze(2))  # drop the pair (true, true)
        if ctx.needs_input_grad[0]:
            d_p = terms[..., 2].scatter(1, index, terms[..., 1].sum(1, keepdim=True))  # dL/dp, (N, K)
            ctx.save_for_backward(p, d_p)
        return terms[..., 0].sum(1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        p, d_p = ctx.saved_tensors
        g = d_p * grad.unsqueeze(1)
        return p * (g - (p * g).sum(1, keepdim=True)), None, None, None


class CompiledMLNLoss(nn.Module):
    """Drop-in replacement of :class:`deap_mln.mln.MLNLoss` computed from a table.

    ``loss(logits (N, K), target (N,))`` sums g(p_true, p_false_i) over the K-1 false
    classes of each sample (Eq. 4), p = softmax(logits); ``reduction`` in
    {"mean", "sum", "none"}. Build one with :meth:`from_mln` or load an exported table
    with :func:`deap_mln.saved_losses.load_saved_loss`.
    """

    # buffers (registered in __init__): the nodal tables and the interpolation kernel derived from them
    values: torch.Tensor
    d_true: torch.Tensor
    d_false: torch.Tensor
    d_true_false: torch.Tensor
    kernel: torch.Tensor

    def __init__(self, tables: dict[str, torch.Tensor], reduction: str = "mean", metadata: dict | None = None,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        check_tables(tables)
        self.reduction = check_reduction(reduction)
        self.metadata = dict(metadata or {})
        self.resolution = int(tables["values"].shape[0])
        for key in TABLE_KEYS:
            self.register_buffer(key, tables[key].detach().to(dtype).clone())
        # Derived from the stored (dtype) tables, so a module read back from its file is identical;
        # 12.6 MB at the default resolution in float32: not in the state dict, rebuilt on loading one.
        self.register_buffer("kernel", interpolation_kernel(hermite_coefficients(self.tables())).to(dtype),
                             persistent=False)
        self.register_load_state_dict_post_hook(lambda module, _: module._rebuild_kernel())

    def _rebuild_kernel(self) -> None:
        check_tables(self.tables(), self.resolution, "loaded state")
        kernel = interpolation_kernel(hermite_coefficients({k: t.cpu() for k, t in self.tables().items()}))
        self.kernel = kernel.to(device=self.kernel.device, dtype=self.kernel.dtype)

    @classmethod
    def from_mln(cls, mln: nn.Module, resolution: int = DEFAULT_RESOLUTION, reduction: str = "mean",
                 metadata: dict | None = None, dtype: torch.dtype = torch.float32) -> CompiledMLNLoss:
        """Compile a :class:`~deap_mln.mln.MetaLossNetwork` (or an ``MLNLoss``) at ``resolution`` nodes per axis."""
        return cls(tabulate(mln_pair_function(mln), resolution), reduction, metadata, dtype)

    def tables(self) -> dict[str, torch.Tensor]:
        """The nodal tables (values and derivatives), as stored in a table file."""
        return {key: getattr(self, key) for key in TABLE_KEYS}

    def pair_loss(self, p_true: torch.Tensor, p_false: torch.Tensor) -> torch.Tensor:
        """g(p_true, p_false) for tensors of one shape, differentiable in both."""
        kernel = self.kernel if self.kernel.dtype == p_true.dtype else self.kernel.to(p_true.dtype)
        return HermiteTable.apply(p_true, p_false, kernel, self.resolution)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 2 or logits.shape[1] < 2:
            raise ValueError(f"logits must have shape (N, K) with K >= 2, got {tuple(logits.shape)}")
        kernel = self.kernel if self.kernel.dtype == logits.dtype else self.kernel.to(logits.dtype)
        per_sample = TableEq4.apply(logits, target, kernel, self.resolution)
        return reduce_losses(per_sample, self.reduction)

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, interpolation={INTERPOLATION}, reduction={self.reduction!r}"

    def to_record(self, metadata: dict | None = None) -> dict:
        """The weights-only record of this table (format :data:`FORMAT`)."""
        return {"format": FORMAT, "resolution": self.resolution, "interpolation": INTERPOLATION,
                "grid": "p_true = i/(R-1) (rows), p_false = j/(R-1) (columns), full unit square",
                **{key: t.detach().cpu().clone() for key, t in self.tables().items()},
                "metadata": {**self.metadata, **(metadata or {})}}


# ----------------------------------------------------------------------------------------------
# files


def _check_resolution(resolution) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2, got {resolution!r}")
    return resolution


def check_tables(tables: dict, resolution: int | None = None, source: str = "table") -> None:
    """Raise ``ValueError`` unless ``tables`` holds four finite float (R, R) tensors."""
    for key in TABLE_KEYS:
        if key not in tables:
            raise ValueError(f"{source}: missing table {key!r}")
        t = tables[key]
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{source}: {key} is a {type(t).__name__}, not a tensor")
        if t.dtype not in TABLE_DTYPES:
            raise ValueError(f"{source}: {key} has dtype {t.dtype}; expected float32 or float64")
        r = resolution if resolution is not None else tables["values"].shape[0] if tables["values"].dim() else -1
        if t.dim() != 2 or t.shape[0] != t.shape[1] or t.shape[0] != r or r < 2:
            stated = f" (stated resolution {resolution})" if resolution is not None else ""
            raise ValueError(f"{source}: {key} has shape {tuple(t.shape)}; expected ({r}, {r}){stated}")
        if not torch.isfinite(t).all():
            raise ValueError(f"{source}: {key} holds NaN or infinite values")


def check_table_record(record: dict, source: str = "record") -> dict:
    """Raise ``ValueError`` unless ``record`` is a complete, self-consistent table record."""
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{source}: format {found!r}, expected {FORMAT!r}")
    for key in ("resolution", "interpolation", "metadata"):
        if key not in record:
            raise ValueError(f"{source}: missing key {key!r}")
    try:
        resolution = _check_resolution(record["resolution"])
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    if record["interpolation"] != INTERPOLATION:
        raise ValueError(f"{source}: interpolation {record['interpolation']!r}; this version reads {INTERPOLATION!r}")
    if not isinstance(record["metadata"], dict):
        raise ValueError(f"{source}: metadata must be a dict")
    check_tables(record, resolution, source)
    return record


def loss_from_record(record: dict, reduction: str = "mean") -> CompiledMLNLoss:
    """The :class:`CompiledMLNLoss` of a table record (the loader of :data:`FORMAT`)."""
    check_table_record(record)
    dtype = record["values"].dtype
    return CompiledMLNLoss({k: record[k] for k in TABLE_KEYS}, reduction, record["metadata"], dtype)


def save_compiled(path: str | Path, compiled: CompiledMLNLoss, metadata: dict | None = None) -> None:
    """Write a compiled loss as a weights-only table file (atomically)."""
    write_record(path, compiled.to_record(metadata))


def load_compiled(path: str | Path, reduction: str = "mean") -> CompiledMLNLoss:
    """Read a table file; executes no pickled code; ``ValueError`` names what is wrong."""
    record = read_record(path)
    check_table_record(record, str(path))
    return loss_from_record(record, reduction)


# ----------------------------------------------------------------------------------------------
# accuracy


def probe_points(count: int = 200_000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random float64 points of the domain: ``count`` uniform in the triangle p_true + p_false <= 1
    plus ``count // 4`` on its hypotenuse p_false = 1 - p_true (the binary case)."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(count, generator=gen, dtype=torch.float64)
    b = torch.rand(count, generator=gen, dtype=torch.float64)
    flip = a + b > 1
    a[flip], b[flip] = 1 - a[flip], 1 - b[flip]
    q = torch.rand(count // 4, generator=gen, dtype=torch.float64)
    return torch.cat([a, q]), torch.cat([b, 1 - q])


def compile_error(mln: nn.Module, compiled: CompiledMLNLoss, probes: int = 200_000, seed: int = 0) -> dict:
    """How far ``compiled`` is from the network on :func:`probe_points`.

    Returns plain floats: ``value_range`` (max - min of g over the probes and the table nodes
    inside the triangle), ``max_value_error``, ``mean_value_error``, ``relative_value_error``
    (max / range), ``gradient_scale`` (largest |partial derivative| of the network on the
    probes), ``max_gradient_error``, ``relative_gradient_error`` (max / scale),
    ``p99_relative_gradient_error`` and ``mean_relative_gradient_error`` (per probe, the larger
    of the two partial derivatives' errors, divided by the scale).
    """
    p_true, p_false = probe_points(probes, seed)
    exact = value_and_gradient(mln_pair_function(mln), p_true, p_false)
    approx = interpolate(compiled.kernel.double(), compiled.resolution, p_true, p_false).unbind(-1)
    value_error = (approx[0] - exact[0]).abs()
    grad_error = torch.maximum((approx[1] - exact[1]).abs(), (approx[2] - exact[2]).abs())
    axis = torch.linspace(0.0, 1.0, compiled.resolution, dtype=torch.float64)
    inside = (axis[:, None] + axis[None, :]) <= 1 + 1e-12
    nodes = compiled.values.double()[inside]
    value_range = float(max(exact[0].max(), nodes.max()) - min(exact[0].min(), nodes.min()))
    scale = float(torch.maximum(exact[1].abs().max(), exact[2].abs().max()))

    def ratio(x) -> float:
        return float(x) / value_range if value_range > 0 else math.inf

    def gratio(x) -> float:
        return float(x) / scale if scale > 0 else math.inf

    return dict(resolution=compiled.resolution, probes=int(p_true.numel()), value_range=value_range,
                max_value_error=float(value_error.max()), mean_value_error=float(value_error.mean()),
                relative_value_error=ratio(value_error.max()), gradient_scale=scale,
                max_gradient_error=float(grad_error.max()), relative_gradient_error=gratio(grad_error.max()),
                p99_relative_gradient_error=gratio(torch.quantile(grad_error.float(), 0.99)),
                mean_relative_gradient_error=gratio(grad_error.mean()))
