"""Export (``deap-mln export``): a run's evolved loss as a self-describing, weights-only file.

Two formats, both read back by :func:`deap_mln.saved_losses.load_saved_loss` without
executing pickled code:

* ``weights``: the loss as it was evolved (an MLN's genome, format ``deap_mln.loss/1``, or
  whatever format the run saved, e.g. a GP formula), with the run's metadata;
* ``table``: an MLN compiled to a bicubic Hermite table (:mod:`deap_mln.deploy.compiled`, format
  ``deap_mln.table_loss/1``), with the table's measured error against the network.

Metadata comes from the run's ``best_loss.pt`` (method, seed, fitness, version, ...) and its
``config.json`` (architecture, algorithm, seed): the exported file says what it is without
the run directory. ``kclass_check`` records the K-class check (:func:`deap_mln.mln.check.check_loss`)
of the exported loss for every K from 2 to 10; ``deap-mln export`` warns about each K it fails.
"""
from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

from deap_mln.data.synthetic import MAX_CLASSES
from deap_mln.deploy.compiled import DEFAULT_RESOLUTION, CompiledMLNLoss, compile_error
from deap_mln.io import BEST_LOSS_FILE, CONFIG_FILE
from deap_mln.mln.check import RULE, LossFunction, check_loss
from deap_mln.mln.network import LOSS_FILE_FORMAT, check_mln_record, genome_size, genome_to_module
from deap_mln.saved_losses import loss_from_record, read_record, write_record
from deap_mln.version import __version__

EXPORT_FORMATS = ("weights", "table")
DEFAULT_NAMES = {"weights": "exported_weights.pt", "table": "exported_table.pt"}
ERROR_PROBES = 50_000  # probe points for the error stored in a table's metadata
CHECK_CLASSES = tuple(range(2, MAX_CLASSES + 1))  # the K-class check runs for each of these K


def check_warning(meta: dict) -> str | None:
    """A warning line naming every K whose K-class check an exported loss's metadata records as
    failed (with the largest such K's reason), or None when it passed them all."""
    failed = [check for check in meta.get("kclass_check", {}).values() if not check["ok"]]
    if not failed:
        return None
    last = failed[-1]
    return (f"warning: the loss fails the K-class check ({RULE}) for "
            f"K = {', '.join(str(check['classes']) for check in failed)}; K = {last['classes']}: {last['detail']}")


def read_run(run_dir: str | Path) -> tuple[dict, dict]:
    """The best-loss record and the config dict of a run directory, checked against each other."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ValueError(f"{run} is not a run directory")
    for name in (CONFIG_FILE, BEST_LOSS_FILE):
        if not (run / name).is_file():
            raise ValueError(f"{run} is not a finished run directory (no {name})")
    try:
        config = json.loads((run / CONFIG_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{run / CONFIG_FILE} is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{run / CONFIG_FILE} does not hold a JSON object")
    record = read_record(run / BEST_LOSS_FILE)
    if not isinstance(record.get("metadata", {}), dict):
        raise ValueError(f"{run / BEST_LOSS_FILE}: metadata must be a dict")
    if record["format"] == LOSS_FILE_FORMAT:
        hidden = check_mln_record(record, str(run / BEST_LOSS_FILE))
        if "hidden" in config and tuple(config["hidden"]) != hidden:
            raise ValueError(f"{run}: best_loss.pt has hidden sizes {list(hidden)} but config.json says {config['hidden']}")
    return record, config


def run_metadata(record: dict, config: dict, run_dir: Path) -> dict:
    """What an exported file says about where it came from."""
    meta = dict(record.get("metadata", {}))
    if record["format"] == LOSS_FILE_FORMAT:
        hidden = [int(h) for h in record["hidden"]]
        meta["architecture"] = dict(kind="MLN", layers=[4, *hidden, 1], activation="PReLU", output="Softplus",
                                    parameters=genome_size(hidden), inputs="[p_true, p_false, 1, 0] (Eq. 4)")
    else:
        meta.setdefault("architecture", dict(kind=record["format"]))
    meta.setdefault("method", config.get("method") or f"adaptive-mln/{config.get('algorithm', '?')}")
    meta.setdefault("seed", config.get("seed"))
    meta.setdefault("version", None)
    meta["config"] = json.loads(json.dumps(config))  # plain values only
    meta["exported"] = dict(by=f"deap_mln {__version__}", source=str(run_dir.resolve()),
                            date=dt.datetime.now().isoformat(timespec="seconds"))
    return meta


def export_run(run_dir: str | Path, fmt: str, out: str | Path | None = None,
               resolution: int = DEFAULT_RESOLUTION, probes: int = ERROR_PROBES) -> tuple[Path, dict]:
    """Write a run's best loss as ``fmt`` ("weights" or "table"); returns the file and its record."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose from {', '.join(EXPORT_FORMATS)}")
    run = Path(run_dir)
    record, config = read_run(run)
    meta = run_metadata(record, config, run)
    path = Path(out) if out is not None else run / DEFAULT_NAMES[fmt]
    if fmt == "weights":
        meta["kclass_check"] = kclass_checks(loss_from_record(record, source=str(run / BEST_LOSS_FILE)))
        exported = {**record, "metadata": meta}
    else:
        if record["format"] != LOSS_FILE_FORMAT:
            raise ValueError(f"{run}: a {record['format']} loss cannot be compiled to a table; "
                             f"only MLNs ({LOSS_FILE_FORMAT}) can (export --format weights instead)")
        mln = genome_to_module(record["genome"].numpy(), record["hidden"])
        tic = time.perf_counter()
        compiled = CompiledMLNLoss.from_mln(mln, resolution)
        meta["compile"] = dict(resolution=resolution, seconds=round(time.perf_counter() - tic, 2))
        if probes:
            meta["compile_error"] = compile_error(mln, compiled, probes=probes)
        meta["kclass_check"] = kclass_checks(compiled)
        exported = compiled.to_record(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_record(path, exported)
    return path, exported


def kclass_checks(loss: LossFunction) -> dict:
    """The K-class check of ``loss`` for each K of :data:`CHECK_CLASSES`, as plain values keyed by K."""
    return {str(k): check_loss(loss, k).to_dict() for k in CHECK_CLASSES}
