"""Map backends for ``toolbox.map``: serial, SCOOP, or a local process pool.

Work is sent as chunks of plain arrays (see :class:`deap_mln.mln.fitness.Chunk`) and comes back
as plain floats. Every backend returns results in input order, and a chunk's result does
not depend on the process that computed it, so the backend never changes the numbers.

SCOOP: start the run under its launcher, which takes a script path::

    python -m scoop -n 4 "$(python -c 'import deap_mln.launch as m; print(m.__file__)')" \
        evolve --preset quick --out runs/q

(:mod:`deap_mln.launch` rather than the ``deap-mln`` script: SCOOP reports even a clean
``SystemExit(0)`` as an error.)

Outside the launcher, ``backend="auto"`` runs serially (no SCOOP fallback warnings).

Why the SCOOP backend does not simply use ``scoop.futures.map``: SCOOP 0.7.2's queue keeps
the newest submitted future on the launching process and lets the launcher ask the broker
for more whenever it waits. A request it leaves behind at the end of one map is served
first at the next, so the launcher receives a chunk it cannot start until its own is done
while a worker sits idle: with 2 chunks on ``-n 2``, about half the generations ran
serially (benchmarks/results/throughput.md). :func:`launcher_share_map` makes the split
explicit instead: the launcher computes its fair share itself, every other chunk goes to
the broker at once, and the launcher never asks the broker for work.
"""
from __future__ import annotations

import contextlib
import functools
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

import torch

BACKENDS = ("auto", "serial", "scoop", "process")

T = TypeVar("T")
R = TypeVar("R")


def scoop_is_running() -> bool:
    """True inside a program started by SCOOP's launcher."""
    try:
        import scoop
    except ImportError:
        return False
    return bool(getattr(scoop, "IS_RUNNING", False))


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread: parallelism comes from workers, and one thread keeps
    results identical whichever process computes them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)



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
        raise ValueError('backend "scoop" needs the SCOOP launcher: python -m scoop -n N '
                         '"$(python -c \'import deap_mln.launch as m; print(m.__file__)\')" evolve ...')
    return backend


@contextlib.contextmanager
def evaluation_map(backend: str = "auto", workers: int = 1) -> Iterator[Callable]:
    """Context manager yielding a ``map``-like function for the chosen backend."""
    kind = resolve_backend(backend, workers)
    if kind == "serial":
        yield map
    elif kind == "scoop":
        with scoop_map() as map_fn:
            yield map_fn
    else:
        ctx = multiprocessing.get_context("spawn")  # fork after torch has started threads can deadlock
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_single_threaded_worker) as pool:
            yield pool.map


@contextlib.contextmanager
def scoop_map() -> Iterator[Callable]:
    """A map over SCOOP's workers that gives the launching process a fixed share of the work.

    While it is open the launcher does not ask SCOOP's broker for work (its queue's low
    watermark is minus infinity), so a request left over from one map can never pull the
    next map's chunk back to the launcher. Falls back to ``scoop.futures.map`` when SCOOP
    runs a single process or its queue does not look as expected (another SCOOP version).
    """
    import scoop
    from scoop import _control, futures

    queue = getattr(_control, "execQueue", None)
    processes = int(getattr(scoop, "SIZE", 1) or 1)
    if processes < 2 or queue is None or not all(hasattr(queue, name) for name in ("lowwatermark", "movable", "socket")):
        yield futures.map
        return
    saved = queue.lowwatermark
    queue.lowwatermark = float("-inf")
    try:
        yield functools.partial(launcher_share_map, processes=processes)
    finally:
        queue.lowwatermark = saved


def launcher_share_map(fn: Callable[[T], R], items: Iterable[T], processes: int) -> list[R]:
    """``list(map(fn, items))`` under SCOOP: the launcher computes the first
    ``len(items) // processes`` items itself, the others are sent to the broker before it
    starts, and idle workers take them one at a time. Results come back in input order."""
    from scoop import _control, futures

    items = list(items)
    own = len(items) // processes
    remote = [futures.submit(fn, item) for item in items[own:]]
    queue = _control.execQueue
    for future in remote:  # SCOOP keeps the newest future local; hand it to the broker too
        if future in queue.movable:
            queue.movable.remove(future)
            queue.socket.sendFuture(future)
    results = [fn(item) for item in items[:own]]
    return results + [future.result() for future in remote]
