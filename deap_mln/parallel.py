"""Map backends for ``toolbox.map``: serial, SCOOP, or a local process pool.

Work is sent as chunks of plain arrays (see :class:`deap_mln.fitness.Chunk`) and comes back
as plain floats. Every backend returns results in input order, and a chunk's result does
not depend on the process that computed it, so the backend never changes the numbers.

SCOOP: start the run under its launcher, which takes a script path::

    python -m scoop -n 4 "$(command -v deap-mln)" evolve --preset quick --out runs/q

Outside the launcher, ``backend="auto"`` runs serially (no SCOOP fallback warnings).
"""
from __future__ import annotations

import contextlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterator

import torch

BACKENDS = ("auto", "serial", "scoop", "process")


def scoop_is_running() -> bool:
    """True inside a program started by SCOOP's launcher."""
    try:
        import scoop
    except ImportError:
        return False
    return bool(getattr(scoop, "IS_RUNNING", False))


def _single_threaded_worker() -> None:
    torch.set_num_threads(1)


def resolve_backend(backend: str, workers: int) -> str:
    """The concrete backend ``auto`` stands for, after checking the request is possible."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if backend == "auto":
        return "scoop" if scoop_is_running() else ("process" if workers > 1 else "serial")
    if backend == "scoop" and not scoop_is_running():
        raise ValueError('backend "scoop" needs the SCOOP launcher: python -m scoop -n N "$(command -v deap-mln)" ...')
    return backend


@contextlib.contextmanager
def evaluation_map(backend: str = "auto", workers: int = 1) -> Iterator[Callable]:
    """Context manager yielding a ``map``-like function for the chosen backend."""
    kind = resolve_backend(backend, workers)
    if kind == "serial":
        yield map
    elif kind == "scoop":
        from scoop import futures
        yield futures.map
    else:
        ctx = multiprocessing.get_context("spawn")  # fork after torch has started threads can deadlock
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_single_threaded_worker) as pool:
            yield pool.map
