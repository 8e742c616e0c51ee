"""``deap-mln plot``: views of an evolved loss over the probabilities it sees.

An MLN loss (a run's ``best_loss.pt``, an exported weights file, or a compiled table) is a
function g(p_true, p_false) on the triangle p_true + p_false <= 1 (Eq. 4's term). Three
figures:

* ``landscape.png``: g over the triangle as a heat map; its hypotenuse p_false = 1 - p_true
  is the binary case;
* ``landscape_slices.png``: g along the hypotenuse (raw, and rescaled to [0, 1] next to
  cross-entropy, MSE and focal loss) and at fixed p_false against the same baselines;
* ``landscape_gradient.png``: dg/dp_true over the triangle, and the binary loss's derivative
  against the baselines'.

Any other saved loss (e.g. a GP formula) is loaded with
:func:`deap_mln.saved_losses.load_saved_loss` and evaluated on 2-class logits:
``loss_formula.png`` shows its curve and derivative over p_true for the binary case, titled
with its ``formula`` (or ``expression``) when the record has one.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from deap_mln.deploy.compiled import FORMAT as TABLE_FORMAT
from deap_mln.deploy.compiled import interpolate, loss_from_record, mln_pair_function, value_and_gradient
from deap_mln.io import BEST_LOSS_FILE
from deap_mln.metatest.baselines import FOCAL_GAMMA
from deap_mln.mln.network import LOSS_FILE_FORMAT, check_mln_record, genome_to_module
from deap_mln.plotting import pyplot, save_figure
from deap_mln.saved_losses import load_saved_loss, read_record

FIXED_P_FALSE = (0.0, 0.2, 0.5)
Q_MIN = 0.01  # baselines are rescaled over p_true in [Q_MIN, ...]: CE is infinite at 0

# (p_true, p_false) -> (g, dg/dp_true, dg/dp_false), float64 tensors of one shape
Landscape = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]


def mln_landscape(record: dict) -> Landscape:
    """The exact network of a saved-MLN record, differentiated by autograd."""
    fn = mln_pair_function(genome_to_module(record["genome"].numpy(), record["hidden"]))
    return lambda p_true, p_false: value_and_gradient(fn, p_true.reshape(-1), p_false.reshape(-1))


def table_landscape(record: dict) -> Landscape:
    """The interpolant of a compiled-table record."""
    compiled = loss_from_record(record)
    kernel = compiled.kernel.double()
    return lambda p_true, p_false: interpolate(kernel, compiled.resolution, p_true, p_false).unbind(-1)


def baselines(p_true: np.ndarray, p_false: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """CE, MSE and focal loss as functions of p_true; with ``p_false`` None the binary case
    (MSE = 2 (1 - q)^2, as :mod:`deap_mln.metatest.baselines` computes it for two classes), else MSE's
    two terms of the true and this false class, (1 - p_true)^2 + p_false^2."""
    with np.errstate(divide="ignore"):
        ce = -np.log(p_true)
    mse = 2 * (1 - p_true) ** 2 if p_false is None else (1 - p_true) ** 2 + p_false ** 2
    return {"cross-entropy": ce, "MSE": mse, "focal (gamma 2)": (1 - p_true) ** FOCAL_GAMMA * ce}


def baseline_slopes(q: np.ndarray) -> dict[str, np.ndarray]:
    """d/dq of the binary baselines."""
    focal = -FOCAL_GAMMA * (1 - q) ** (FOCAL_GAMMA - 1) * -np.log(q) - (1 - q) ** FOCAL_GAMMA / q
    return {"cross-entropy": -1 / q, "MSE": -4 * (1 - q), "focal (gamma 2)": focal}


def rescale(v: np.ndarray) -> np.ndarray:
    span = np.nanmax(v) - np.nanmin(v)
    return (v - np.nanmin(v)) / span if span > 0 else v * 0


def _by_max(v: np.ndarray) -> np.ndarray:
    top = np.nanmax(np.abs(v))
    return v / top if top > 0 else v


def triangle_grid(fn: Landscape, points: int) -> dict[str, np.ndarray]:
    """g and dg/dp_true on a points x points grid; NaN outside the triangle. Indexed [p_false, p_true]."""
    axis = torch.linspace(0.0, 1.0, points, dtype=torch.float64)
    pf, pt = torch.meshgrid(axis, axis, indexing="ij")
    inside = (pt + pf <= 1 + 1e-12).reshape(-1)
    value, d_true = (torch.full((points * points,), float("nan"), dtype=torch.float64) for _ in range(2))
    v, dt, _ = fn(pt.reshape(-1)[inside], pf.reshape(-1)[inside])
    value[inside], d_true[inside] = v.reshape(-1), dt.reshape(-1)
    return dict(axis=axis.numpy(), value=value.view(points, points).numpy(), d_true=d_true.view(points, points).numpy())


def _triangle_axes(ax) -> None:
    ax.plot([0, 1], [1, 0], color="k", lw=0.8)
    ax.annotate("binary case: p_false = 1 - p_true", (0.5, 0.5), xytext=(0.52, 0.56), fontsize=8, rotation=-45)
    ax.set_xlabel("p_true")
    ax.set_ylabel("p_false")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")


def plot_landscape(grid: dict, path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.8))
    im = ax.imshow(grid["value"], origin="lower", extent=(0, 1, 0, 1), cmap="viridis", interpolation="nearest")
    axis = grid["axis"]
    ax.contour(axis, axis, grid["value"], levels=12, colors="white", linewidths=0.5, alpha=0.6)
    fig.colorbar(im, ax=ax, label="g(p_true, p_false)")
    _triangle_axes(ax)
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)


def plot_slices(fn: Landscape, path: Path, title: str, points: int = 401) -> None:
    q = np.linspace(0.0, 1.0, points)
    qt = torch.as_tensor(q)
    binary = fn(qt, 1 - qt)[0].numpy()
    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    raw, norm, fixed = axes[0]
    raw.plot(q, binary, color="C0")
    raw.set_title("binary case: g(q, 1 - q)")
    raw.set_ylabel("loss")
    keep = q >= Q_MIN
    norm.plot(q[keep], rescale(binary[keep]), color="C0", lw=2, label="evolved")
    for (name, v), color in zip(baselines(q[keep]).items(), ("C3", "C2", "C1")):
        norm.plot(q[keep], rescale(v), color=color, label=name)
    norm.set_title("binary case, each rescaled to [0, 1]")
    norm.set_ylabel("rescaled loss")
    norm.legend(fontsize=8)
    for k, pf in enumerate(FIXED_P_FALSE):
        pt = np.linspace(0.0, 1.0 - pf, points)
        v = fn(torch.as_tensor(pt), torch.full((points,), pf, dtype=torch.float64))[0].numpy()
        fixed.plot(pt, v, color=f"C{k}", label=f"p_false = {pf:g}")
        ax = axes[1][k]
        keep = pt >= Q_MIN
        ax.plot(pt[keep], rescale(v[keep]), color="C0", lw=2, label="evolved g(p_true, p_false)")
        for (name, b), color in zip(baselines(pt[keep], np.full(keep.sum(), pf)).items(), ("C3", "C2", "C1")):
            ax.plot(pt[keep], rescale(b), color=color, label=name if name != "MSE" else "MSE, true + this class")
        ax.set_title(f"p_false = {pf:g}, rescaled to [0, 1]")
        ax.set_ylabel("rescaled loss")
        if k == 0:
            ax.legend(fontsize=8)
    fixed.set_title("g(p_true, p_false) at fixed p_false")
    fixed.set_ylabel("loss")
    fixed.legend(fontsize=8)
    for ax in axes.flat:
        ax.set_xlabel("p_true")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path, dpi=110)


def plot_gradient(grid: dict, fn: Landscape, path: Path, title: str, points: int = 401) -> None:
    from matplotlib.colors import TwoSlopeNorm

    plt = pyplot()
    fig, (heat, curve) = plt.subplots(1, 2, figsize=(12, 4.8))
    d = grid["d_true"]
    top = float(np.nanmax(np.abs(d))) or 1.0
    im = heat.imshow(d, origin="lower", extent=(0, 1, 0, 1), cmap="RdBu_r", interpolation="nearest",
                     norm=TwoSlopeNorm(0.0, -top, top))
    fig.colorbar(im, ax=heat, label="dg / dp_true")
    _triangle_axes(heat)
    heat.set_title("dg/dp_true over the triangle (blue: loss falls as p_true rises)", fontsize=9)
    q = np.linspace(Q_MIN, 1.0, points)
    qt = torch.as_tensor(q)
    _, d_true, d_false = fn(qt, 1 - qt)
    slope = (d_true - d_false).numpy()  # d/dq g(q, 1 - q)
    curve.plot(q, _by_max(slope), color="C0", lw=2, label="evolved")
    for (name, s), color in zip(baseline_slopes(q).items(), ("C3", "C2", "C1")):
        curve.plot(q, _by_max(s), color=color, label=name)
    curve.axhline(0, color="k", lw=0.6)
    curve.set_xlabel("p_true (binary case)")
    curve.set_ylabel("d loss / d p_true, divided by its largest |value|")
    curve.set_title(f"binary case: derivative (evolved: largest |value| {np.nanmax(np.abs(slope)):.3g})", fontsize=9)
    curve.grid(alpha=0.3)
    curve.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path, dpi=110)


def binary_curve(module: torch.nn.Module, points: int = 399) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Any ``loss(logits, target)`` module on 2-class logits whose softmax gives p_true = q:
    q, the loss, and d loss / d q (None when the loss is not differentiable)."""
    q = torch.linspace(0.002, 0.998, points, dtype=torch.float32).requires_grad_()
    logits = torch.stack([torch.log(q), torch.log1p(-q)], 1)
    target = torch.zeros(points, dtype=torch.long)
    with torch.enable_grad():
        values = module(logits, target)
        if values.shape != (points,):  # a module that ignores reduction="none": one point at a time
            values = torch.stack([module(logits[i:i + 1], target[i:i + 1]).reshape(()) for i in range(points)])
        slope = None
        if values.requires_grad:
            (slope,) = torch.autograd.grad(values.sum(), q, allow_unused=True)
    return (q.detach().numpy(), values.detach().numpy(),
            None if slope is None else slope.numpy())


def plot_formula(module: torch.nn.Module, expression: str | None, path: Path, title: str) -> None:
    q, values, slope = binary_curve(module)
    plt = pyplot()
    fig, (raw, norm) = plt.subplots(1, 2, figsize=(12, 4.6))
    raw.plot(q, values, color="C0", label="loss")
    if slope is not None:
        twin = raw.twinx()
        twin.plot(q, slope, color="C4", ls="--", label="d loss / d p_true")
        twin.set_ylabel("d loss / d p_true", color="C4")
    raw.set_xlabel("p_true (binary case)")
    raw.set_ylabel("loss")
    raw.set_title("evolved loss on 2-class predictions", fontsize=9)
    raw.grid(alpha=0.3)
    keep = q >= Q_MIN
    norm.plot(q[keep], rescale(values[keep]), color="C0", lw=2, label="evolved")
    for (name, v), color in zip(baselines(q[keep].astype(np.float64)).items(), ("C3", "C2", "C1")):
        norm.plot(q[keep], rescale(v), color=color, label=name)
    norm.set_xlabel("p_true (binary case)")
    norm.set_ylabel("rescaled loss")
    norm.set_title("each rescaled to [0, 1]", fontsize=9)
    norm.grid(alpha=0.3)
    norm.legend(fontsize=8)
    text = f"{title}\nloss = {expression}" if expression else title
    fig.suptitle(text if len(text) < 400 else text[:397] + "...", fontsize=9)
    save_figure(fig, path, dpi=110)


def describe(record: dict) -> str:
    meta = record.get("metadata", {}) if isinstance(record.get("metadata"), dict) else {}
    parts = [str(meta[k]) for k in ("method",) if meta.get(k)]
    if meta.get("seed") is not None:
        parts.append(f"seed {meta['seed']}")
    if isinstance(meta.get("fitness"), (int, float)):
        parts.append(f"fitness {meta['fitness']:.4g}")
    if record.get("format") == TABLE_FORMAT:
        parts.append(f"compiled table {record['resolution']}x{record['resolution']}")
    return ", ".join(parts) or record.get("format", "")


def plot_loss(source: str | Path, out: str | Path | None = None, points: int = 201) -> tuple[list[Path], list[str]]:
    """Write the figures of a run directory's best loss, or of a saved loss file.

    Returns the files written and lines to print (the formula of a non-MLN loss).
    """
    source = Path(source)
    if source.is_dir():
        loss_file, default_out, prefix = source / BEST_LOSS_FILE, source, ""
        if not loss_file.is_file():
            raise ValueError(f"{source} is not a run directory (no {BEST_LOSS_FILE})")
    elif source.is_file():
        loss_file, default_out, prefix = source, source.parent, f"{source.stem}_"
    else:
        raise FileNotFoundError(f"no run directory or loss file at {source}")
    if points < 3:
        raise ValueError(f"points must be at least 3, got {points}")
    out_dir = Path(out) if out is not None else default_out
    out_dir.mkdir(parents=True, exist_ok=True)
    record = read_record(loss_file)
    title = describe(record)
    if record["format"] in (LOSS_FILE_FORMAT, TABLE_FORMAT):
        if record["format"] == LOSS_FILE_FORMAT:
            check_mln_record(record, str(loss_file))
        else:
            load_saved_loss(loss_file)  # the table's checks
        fn = mln_landscape(record) if record["format"] == LOSS_FILE_FORMAT else table_landscape(record)
        grid = triangle_grid(fn, points)
        files = [out_dir / f"{prefix}landscape{suffix}.png" for suffix in ("", "_slices", "_gradient")]
        plot_landscape(grid, files[0], f"evolved loss g(p_true, p_false) = MLN([p_true, p_false, 1, 0])\n{title}")
        plot_slices(fn, files[1], title)
        plot_gradient(grid, fn, files[2], title)
        lines = [f"loss over the triangle: min {np.nanmin(grid['value']):.4g}, max {np.nanmax(grid['value']):.4g}"]
    else:
        # GP records carry the tree as "expression" (prefix) and often "formula" (infix)
        texts = [record[k] for k in ("formula", "expression") if isinstance(record.get(k), str)]
        module = load_saved_loss(loss_file, reduction="none")
        files = [out_dir / f"{prefix}loss_formula.png"]
        plot_formula(module, texts[0] if texts else None, files[0], title)
        lines = [f"{k}: {record[k]}" for k in ("formula", "expression") if isinstance(record.get(k), str)]
        lines = lines or [f"{record['format']} loss (no expression stored)"]
    return files, lines
