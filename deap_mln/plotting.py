"""matplotlib for figures written to files, imported on first use.

Every figure of the toolkit is drawn through :func:`pyplot`: it selects the file-only Agg
backend (no display is needed on a server or a SCOOP worker) and defers matplotlib's import
(~0.4 s) until a figure is actually drawn, which keeps ``deap-mln --help`` and worker
start-up light.
"""
from __future__ import annotations

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
