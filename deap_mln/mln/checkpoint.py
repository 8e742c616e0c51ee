"""Atomic checkpoints of an evolution: plain arrays and JSON, no pickled code.

A checkpoint holds the population (genomes, sigmas, fitness), the hall of fame, the
logbook, the generation and the Python, numpy and torch RNG states. It is written to
a temporary file and renamed, so an interruption never leaves a half-written file.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from deap import tools

from deap_mln.io import atomic_write
from deap_mln.mln.algorithms import EvolutionState, new_hall_of_fame
from deap_mln.mln.individual import make_individual

CHECKPOINT_FORMAT = "deap_mln.checkpoint/1"


def _individual_arrays(individuals) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = dict(genomes=np.stack([np.asarray(i, dtype=np.float32) for i in individuals]),
                  sigmas=np.array([i.strategy for i in individuals], dtype=np.float64),
                  fitness=np.array([i.fitness.values[0] for i in individuals], dtype=np.float64))
    states = [getattr(i, "chaos", None) for i in individuals]
    if any(s is not None for s in states):  # chaotic mutation's states; NaN rows: none drawn yet
        blank = np.full(len(individuals[0]), np.nan)
        arrays["chaos"] = np.stack([blank if s is None else s for s in states])
    return arrays


def _individuals(arrays: dict, prefix: str) -> list:
    chaos = arrays.get(f"{prefix}_chaos")
    return [make_individual(g, s, f, None if chaos is None or np.isnan(chaos[i]).all() else chaos[i])
            for i, (g, s, f) in enumerate(zip(arrays[f"{prefix}_genomes"], arrays[f"{prefix}_sigmas"],
                                              arrays[f"{prefix}_fitness"]))]


def save_checkpoint(path: str | Path, state: EvolutionState, rng: np.random.Generator) -> None:
    """Write ``state`` and the RNG states to ``path`` atomically."""
    path = Path(path)
    meta = dict(format=CHECKPOINT_FORMAT, generation=state.generation, best_history=state.best_history,
                logbook=list(state.logbook), numpy_rng=rng.bit_generator.state,
                python_rng=_python_state(), torch_rng=torch.get_rng_state().tolist(),
                best_validation=state.best_validation, validation_scores=state.validation_scores)
    groups = dict(population=state.population, hof=state.hall_of_fame)
    if state.best_validated is not None:
        groups["validated"] = [state.best_validated]
    arrays: dict[str, Any] = {"meta": np.array(json.dumps(meta))}
    for prefix, individuals in groups.items():
        arrays |= {f"{prefix}_{k}": v for k, v in _individual_arrays(individuals).items()}
    with atomic_write(path, suffix=".tmp.npz") as tmp:  # np.savez appends .npz to other names
        np.savez(tmp, **arrays)


def load_checkpoint(path: str | Path, rng: np.random.Generator) -> EvolutionState:
    """Read a checkpoint, restore the RNG states (``rng`` in place) and return the state."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {k: data[k] for k in data.files if k != "meta"}
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path} is not a readable checkpoint ({exc})") from exc
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a deap_mln checkpoint (format {meta.get('format')!r})")
    population = _individuals(arrays, "population")
    hall_of_fame = new_hall_of_fame()
    hall_of_fame.update(_individuals(arrays, "hof"))
    logbook = tools.Logbook()
    for row in meta["logbook"]:
        logbook.record(**row)
    rng.bit_generator.state = meta["numpy_rng"]
    version, internal, gauss = meta["python_rng"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(torch.tensor(meta["torch_rng"], dtype=torch.uint8))
    state = EvolutionState(population, hall_of_fame, logbook, meta["generation"], list(meta["best_history"]))
    if "validated_genomes" in arrays:  # checkpoints of runs without validation tasks have none
        state.best_validated = _individuals(arrays, "validated")[0]
        state.best_validation = float(meta["best_validation"])
        state.validation_scores = {str(k): float(v) for k, v in meta["validation_scores"].items()}
    return state


def _python_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]
