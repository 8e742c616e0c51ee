"""Map backends for ``toolbox.map``: serial, a local process pool, Dask, or SCOOP.

Work is sent as chunks of plain arrays (see :class:`deap_mln.mln.fitness.Chunk`) and comes back
as plain floats. Every backend returns results in input order, and a chunk's result does
not depend on the process that computed it, so the backend never changes the numbers; for
the same reason a chunk whose worker died or hung can simply run again. How a run is
dispatched is one :class:`deap_mln.dispatch.DispatchOptions` (backend, workers, Dask scheduler,
per-chunk time limit, retries); :func:`evaluation_map` turns it into a ``map``.

Failures, per backend (docs/parallel.md has the whole story):

- process pool and Dask: :func:`deap_mln.resilient_map.retrying_map` re-runs the chunks of a
  worker that died or ran past ``chunk_timeout``, at most ``retries`` times each, then stops
  with :class:`EvaluationFailed` (one line). The pool is rebuilt around a lost or stuck worker
  (:class:`ProcessPoolRunner`); Dask re-runs a dead worker's tasks itself and restarts a stuck
  one (:mod:`deap_mln.dask_backend`).
- SCOOP: the launcher waits a limited time for the chunks it sent out and computes the missing
  ones itself (:class:`LauncherShareMap`).
- serial: nothing to lose but the run's own process.

SCOOP: start the run under its launcher, which takes a script path::

    python -m scoop -n 4 "$(python -c 'import deap_mln.launch as m; print(m.__file__)')" \
        evolve --preset quick --out runs/q

(:mod:`deap_mln.launch` rather than the ``deap-mln`` script: SCOOP reports even a clean
``SystemExit(0)`` as an error.) Outside the launcher, ``backend="auto"`` does not use SCOOP
(no SCOOP fallback warnings).

Why the SCOOP backend does not simply use ``scoop.futures.map``: SCOOP 0.7.2's queue keeps
the newest submitted future on the launching process and lets the launcher ask the broker
for more whenever it waits. A request it leaves behind at the end of one map is served
first at the next, so the launcher receives a chunk it cannot start until its own is done
while a worker sits idle: with 2 chunks on ``-n 2``, about half the generations ran
serially (benchmarks/results/throughput.md). :class:`LauncherShareMap` makes the split
explicit instead: the launcher computes its fair share itself, every other chunk goes to
the broker at once, and the launcher never asks the broker for work.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import torch

from deap_mln.dispatch import BACKENDS, DispatchOptions, dispatch_options
from deap_mln.resilient_map import EvaluationFailed, WorkerLost, logger, retrying_map

WORKER_START_SECONDS = 300.0  # longest wait for a new pool's workers to answer once
SCOOP_PATIENCE_FLOOR = 60.0   # without --chunk-timeout, SCOOP waits at least this long for a sent chunk
SCOOP_PATIENCE_FACTOR = 10.0  # ... and at least this many times the slowest chunk seen in the run

__all__ = ["BACKENDS", "DispatchOptions", "EvaluationFailed", "evaluation_map", "resolve_backend", "scoop_is_running",
           "single_thread"]

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


def resolve_backend(backend: str | DispatchOptions, workers: int = 1) -> str:
    """The concrete backend ``auto`` stands for, after checking the request is possible.

    ``auto``: SCOOP under its launcher; else Dask if a scheduler address is given; else the
    process pool if there is more than one worker or a chunk time limit (a chunk in the
    calling process cannot be timed out); else serial.
    """
    options = dispatch_options(backend, workers)
    kind = options.backend
    if kind == "auto":
        if scoop_is_running():
            kind = "scoop"
        elif options.scheduler is not None:
            kind = "dask"
        else:
            kind = "process" if options.workers > 1 or options.chunk_timeout is not None else "serial"
    if kind == "scoop" and not scoop_is_running():
        raise ValueError('backend "scoop" needs the SCOOP launcher: python -m scoop -n N '
                         '"$(python -c \'import deap_mln.launch as m; print(m.__file__)\')" evolve ...')
    if kind == "serial" and options.chunk_timeout is not None:
        raise ValueError("a chunk time limit needs worker processes: use --backend process or dask")
    if kind == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise ValueError('backend "dask" needs dask.distributed: pip install "dask[distributed]"') from None
    return kind


@contextlib.contextmanager
def evaluation_map(backend: str | DispatchOptions = "auto", workers: int = 1) -> Iterator[Callable]:
    """Context manager yielding a ``map``-like function for the chosen backend.

    Workers start when the context opens and stay for all its maps (a run pays their start-up
    once); ``evaluation_map("process", 2)`` is shorthand for
    ``evaluation_map(DispatchOptions("process", 2))``.
    """
    options = dispatch_options(backend, workers)
    kind = resolve_backend(options)
    if kind == "serial":
        yield map
    elif kind == "scoop":
        with scoop_map(options.chunk_timeout) as map_fn:
            yield map_fn
    elif kind == "dask":
        from deap_mln.dask_backend import dask_map

        with dask_map(options) as map_fn:
            yield map_fn
    else:
        with process_pool_map(options) as map_fn:
            yield map_fn


# ------------------------------------------------------------------------------ process pool


@contextlib.contextmanager
def process_pool_map(options: DispatchOptions) -> Iterator[Callable]:
    """A map over a local spawn process pool of ``options.workers`` that re-runs the chunks of
    a worker that died or hung (:func:`retrying_map`)."""
    runner = ProcessPoolRunner(options.workers)
    try:
        yield functools.partial(retrying_map, runner, timeout=options.chunk_timeout, retries=options.retries)
    except BaseException:
        runner.close(kill=True)  # a hung worker would block a graceful shutdown
        raise
    runner.close()


def _worker_pid(_: object = None) -> int:
    """What a new worker answers once it is up; the short sleep lets every idle worker take one."""
    time.sleep(0.05)
    return os.getpid()


class ProcessPoolRunner:
    """A :class:`deap_mln.resilient_map.ChunkRunner` over a ``spawn`` process pool that is
    rebuilt when a worker dies or runs past its time limit.

    Workers are started with ``spawn`` (forking a process whose torch threads are running can
    deadlock) and run torch on one thread. A new pool is warmed up (every worker imported torch
    and answered once) before any chunk is timed, so a time limit measures the chunk only.
    """

    def __init__(self, workers: int):
        self.workers = workers
        self.pool = self._start_pool()

    def _start_pool(self) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_single_threaded_worker)
        seen: set[int] = set()
        deadline = time.monotonic() + WORKER_START_SECONDS
        while len(seen) < self.workers and time.monotonic() < deadline:
            seen.update(pool.map(_worker_pid, range(self.workers)))
        return pool

    def slots(self) -> int:
        return self.workers

    def submit(self, fn: Callable[[Any], Any], item: Any) -> Future:
        try:
            return self.pool.submit(fn, item)
        except BrokenProcessPool as exc:  # a worker died since the last wait: let the loop see it as lost
            failed: Future = Future()
            failed.set_exception(exc)
            return failed

    def wait(self, handles: Collection[Future], timeout: float | None) -> set[Future]:
        done, _ = concurrent.futures.wait(handles, timeout, return_when=concurrent.futures.FIRST_COMPLETED)
        return done

    def result(self, handle: Future) -> Any:
        try:
            return handle.result()
        except BrokenProcessPool as exc:
            raise WorkerLost("a worker process died") from exc

    def replace(self, overdue: Collection[Future], running: Collection[Future]) -> Collection[Future]:
        """Kill the pool (a lost worker broke it; an overdue chunk's worker is stuck) and start
        a new one; every chunk still running is abandoned with it."""
        self.close(kill=True)
        self.pool = self._start_pool()
        return running

    def close(self, kill: bool = False) -> None:
        """Shut the pool down; with ``kill``, end its worker processes first."""
        if kill:
            _kill_workers(self.pool)
        self.pool.shutdown(wait=True, cancel_futures=True)


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """End every worker process of ``pool`` at once, also one stuck in a chunk."""
    kill = getattr(pool, "kill_workers", None)
    if kill is not None:  # Python 3.14 and later
        kill()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()


# ------------------------------------------------------------------------------ SCOOP


@contextlib.contextmanager
def scoop_map(chunk_timeout: float | None = None) -> Iterator[Callable]:
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
        yield LauncherShareMap(processes, chunk_timeout)
    finally:
        queue.lowwatermark = saved


class LauncherShareMap:
    """``list(map(fn, items))`` under SCOOP: the launcher computes the first
    ``len(items) // processes`` items itself, the others are sent to the broker before it
    starts, and idle workers take them one at a time. Results come back in input order.

    SCOOP never reports a lost worker, so a chunk sent out is waited for a limited time: its
    share of rounds (``ceil(sent / other processes)``) times ``chunk_timeout``, or without one
    the larger of :data:`SCOOP_PATIENCE_FLOOR` and :data:`SCOOP_PATIENCE_FACTOR` times the
    slowest chunk seen so far. A chunk not back by then is computed by the launcher, and each
    one counts a worker as lost: later maps share the work among the processes still counted,
    so a run that lost every worker goes on in the launcher alone instead of hanging.
    """

    def __init__(self, processes: int, chunk_timeout: float | None = None):
        self.processes, self.chunk_timeout, self.slowest = processes, chunk_timeout, 0.0

    def patience(self) -> float:
        """Seconds one round of sent chunks may take."""
        if self.chunk_timeout is not None:
            return self.chunk_timeout
        return max(SCOOP_PATIENCE_FLOOR, SCOOP_PATIENCE_FACTOR * self.slowest)

    def __call__(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        from scoop import _control, futures

        items = list(items)
        own = len(items) // self.processes
        tic = time.monotonic()
        remote = [futures.submit(fn, item) for item in items[own:]]
        queue = _control.execQueue
        for future in remote:  # SCOOP keeps the newest future local; hand it to the broker too
            if future in queue.movable:
                queue.movable.remove(future)
                queue.socket.sendFuture(future)
        results = []
        for item in items[:own]:
            start = time.monotonic()
            results.append(fn(item))
            self.slowest = max(self.slowest, time.monotonic() - start)
        if remote:
            rounds = math.ceil(len(remote) / max(1, self.processes - 1))
            if _wait_scoop_futures(remote, deadline=tic + rounds * self.patience()):  # a missed deadline says nothing
                self.slowest = max(self.slowest, (time.monotonic() - tic) / rounds)
        for position, future in enumerate(remote, start=own):
            if future.done():
                results.append(future.result())
                continue
            self.processes = max(1, self.processes - 1)
            logger.warning("SCOOP: chunk %d of %d not back after %.0f s; the launcher computes it and counts a "
                           "worker as lost (%d still counted)", position + 1, len(items),
                           time.monotonic() - tic, self.processes)
            results.append(fn(items[position]))
        return results


def _wait_scoop_futures(remote: list, deadline: float) -> bool:
    """Block until every SCOOP future in ``remote`` is done (True) or ``deadline`` (monotonic) passed (False).

    ``scoop.futures.wait(fs, timeout)`` would do, but it polls its socket with timeouts that
    start at zero and so keeps the launcher's core busy while it waits; this sleeps in the
    socket's poll until a message arrives (``done()`` reads what arrived)."""
    from scoop import _control

    socket = _control.execQueue.socket
    while not all(future.done() for future in remote):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        socket._poll(min(left, 1.0) * 1000)  # milliseconds
    return True


def launcher_share_map(fn: Callable[[T], R], items: Iterable[T], processes: int) -> list[R]:
    """One :class:`LauncherShareMap` map (kept for callers of the function)."""
    return LauncherShareMap(processes)(fn, items)
