"""One door for every saved loss: MLN weights, GP formulas, compiled tables, TaylorGLO polynomials.

A saved loss is a weights-only torch file holding a dict with a ``format`` tag. Reading
it executes no pickled code (``torch.load(weights_only=True)``). :func:`load_saved_loss`
dispatches on the tag to the module that knows the format, so ``deap-mln meta-test
--loss FILE`` and user code accept any kind of evolved loss.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from deap_mln.io import atomic_write

MLN_FORMAT = "deap_mln.loss/1"            # an MLN's genome and hidden sizes
TABLE_FORMAT = "deap_mln.table_loss/1"     # an MLN compiled to a bicubic Hermite table
GP_FORMAT = "deap_mln.gp_loss/1"           # a symbolic loss's prefix expression
TAYLOR_FORMAT = "deap_mln.taylor_loss/1"   # a TaylorGLO polynomial's 8 parameters
# Formats of a Meta-Loss Network, exact or compiled (meta-tests train them at the MLN learning rate).
MLN_FORMATS = (MLN_FORMAT, TABLE_FORMAT)

# format tag -> "module:function" taking (record, reduction) and returning an nn.Module loss.
# Files store only the tag, never a module path, so moving a loader means changing it here only.
FORMATS: dict[str, str] = {
    MLN_FORMAT: "deap_mln.mln.network:loss_from_record",
    TABLE_FORMAT: "deap_mln.deploy.compiled:loss_from_record",
    GP_FORMAT: "deap_mln.gp.tree:loss_from_record",
    TAYLOR_FORMAT: "deap_mln.taylor.loss:loss_from_record",
}


def read_record(path: str | Path) -> dict:
    """The dict stored in a saved-loss file, checked to carry a known ``format`` tag."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved loss at {path}")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        # torch's message spans many lines (and suggests weights_only=False, which we never do): keep the first
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(f"{path} is not a readable deap_mln loss file ({exc.__class__.__name__}: {first_line})") from exc
    if not isinstance(record, dict) or record.get("format") not in FORMATS:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{path} is not a deap_mln loss file (format {found!r}; known: {', '.join(FORMATS)})")
    return record


def write_record(path: str | Path, record: dict) -> None:
    """Save ``record`` (tensors and plain values only) atomically: temporary file, then rename."""
    path = Path(path)
    if record.get("format") not in FORMATS:
        raise ValueError(f"unknown loss format {record.get('format')!r}")
    with atomic_write(path) as tmp:
        torch.save(record, tmp)


def loss_from_record(record: dict, reduction: str = "mean", source: str = "record") -> nn.Module:
    """The ``loss(logits, targets)`` module of a saved-loss record (as :func:`read_record` returns it)."""
    module_name, function = FORMATS[record["format"]].split(":")
    try:
        return getattr(importlib.import_module(module_name), function)(record, reduction)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(f"{source}: damaged {record['format']} record ({exc})") from exc


def load_saved_loss(path: str | Path, reduction: str = "mean") -> nn.Module:
    """Load any saved deap_mln loss as a ``loss(logits, targets)`` module."""
    return loss_from_record(read_record(path), reduction, str(path))
