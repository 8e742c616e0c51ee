"""matplotlib for figures written to files, imported on first use.

Every figure of the toolkit is drawn through :func:`pyplot`: it selects the file-only Agg
backend (no display is needed on a server or a SCOOP worker) and defers matplotlib's import
(~0.4 s) until a figure is actually drawn, which keeps ``deap-mln --help`` and worker
start-up light.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` with the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 120) -> None:
    """Lay out ``fig``, write it to ``path`` and free it (figures of long runs must not pile up)."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)


def plot_search_curves(path: str | Path, x: Sequence[float], curves: Sequence[tuple[str, Sequence[float], str]],
                       xlabel: str, title: str, ylabel: str = "validation accuracy") -> None:
    """Curves of a search against its evaluations (one ``(label, values, colour)`` per curve),
    each point marked, written to ``path``: the fitness plots of the GP and TaylorGLO runs."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values, colour in curves:
        ax.plot(x, values, label=label, color=colour, marker=".")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)
