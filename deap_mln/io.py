"""Files of a run: atomic writes, CSV rows and the names every run directory uses.

Every file a run writes goes through :func:`atomic_write`: it is written under a temporary
name and renamed, so an interruption never leaves a half-written file, and a reader sees the
old version or the new one.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

# The names of a run directory's files, shared by every wing (MLN, EDL, GP, TaylorGLO) and by the
# commands that read a run (show, export, plot, bench).
CONFIG_FILE = "config.json"
LOGBOOK_FILE = "logbook.csv"
BEST_LOSS_FILE = "best_loss.pt"
FITNESS_PLOT = "fitness.png"
MLN_CHECKPOINT_FILE = "checkpoint.npz"   # arrays and JSON (numpy's npz)
GP_CHECKPOINT_FILE = "checkpoint.json"   # prefix expressions and JSON
TAYLOR_CHECKPOINT_FILE = "checkpoint.json"  # CMA-ES state and JSON
LOSS_SHAPE_PLOT = "loss_shape.png"       # MLN runs
EVALUATIONS_FILE = "evaluations.csv"     # GP runs: every classifier trained
FORMULA_FILE = "best_formula.txt"        # GP runs
RESULT_FILE = "result.json"              # a finished job of `deap-mln bench`
SCORES_FILE = "scores.json"              # MLN runs: validation and test scores of the kept loss
DATA_FILE = "data.json"                  # GP and TaylorGLO runs: the data source, its class names, what the search read


@contextlib.contextmanager
def atomic_write(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an error it is
    renamed to ``path``, otherwise removed. ``suffix`` lets writers that append their own
    extension (``numpy.savez`` adds ``.npz``) name the temporary file themselves."""
    path = Path(path)
    tmp = path.with_name(path.name + suffix)
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    write_text(path, json.dumps(data, indent=2) + "\n")


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write dict rows as CSV (header from the first row's keys), atomically."""
    if not rows:
        raise ValueError(f"no rows to write to {path}")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0].keys()))
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """The JSON in ``path``; a missing file or invalid JSON is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text file") from None
