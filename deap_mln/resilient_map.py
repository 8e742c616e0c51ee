"""The retry loop shared by the backends that run chunks on worker processes (process pool, Dask).

A chunk is a pure function of plain data, so running it again anywhere gives the same
result: a worker that dies or hangs costs a retry of its chunks, not the run. The loop keeps
at most as many chunks in flight as the workers can run at once, so a chunk starts as soon as
it is handed out and its time limit counts from then. A chunk whose worker died
(:class:`WorkerLost`) or that is not back within ``timeout`` seconds is handed out again, at
most ``retries`` times; then the map stops with :class:`EvaluationFailed`, one line naming the
chunk and the reason. An exception raised by the chunk's own code is not retried: it would
recur, and the serial run raises it too.

What a backend supplies is a :class:`ChunkRunner`: how to submit, wait and collect, and how to
get usable workers back after a loss (rebuild a pool, restart a worker).
"""
from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Collection, Hashable, Iterable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")
H = TypeVar("H", bound=Hashable)  # a backend's handle on a submitted chunk (its future)

DEFAULT_RETRIES = 3
logger = logging.getLogger("deap_mln.parallel")


class WorkerLost(Exception):
    """Raised by :meth:`ChunkRunner.result` when the chunk's worker died before answering."""


class EvaluationFailed(RuntimeError):
    """A chunk could not be evaluated: its workers kept dying or it kept running past its
    time limit. Checkpoints are written only at generation ends, so the run's last one stays
    intact and ``--resume`` continues from it; the CLI exits with code 3 (not 2: the input was
    fine, the workers failed)."""


class ChunkRunner(Protocol[H]):
    """What :func:`retrying_map` needs from a backend. Handles are the backend's futures."""

    def slots(self) -> int:
        """How many chunks the workers can run at once (at least 1)."""

    def submit(self, fn: Callable[[Any], Any], item: Any) -> H:
        """Start ``fn(item)`` on a free worker; a handle to it."""

    def wait(self, handles: Collection[H], timeout: float | None) -> set[H]:
        """Block until at least one of ``handles`` is done or ``timeout`` seconds passed; the done ones."""

    def result(self, handle: H) -> Any:
        """The result of a done handle; :class:`WorkerLost` if its worker died, else the chunk's own exception."""

    def replace(self, overdue: Collection[H], running: Collection[H]) -> Collection[H]:
        """Get usable workers back after a worker died or ``overdue`` chunks passed their limit
        (their workers are stuck); the handles of ``running`` that this abandons too."""


def retrying_map(runner: ChunkRunner[H], fn: Callable[[T], R], items: Iterable[T], *, timeout: float | None = None,
                 retries: int = DEFAULT_RETRIES) -> list[R]:
    """``list(map(fn, items))`` through ``runner``, re-running the chunks of lost or stuck workers.

    A chunk is charged one failure when its worker dies or when it runs past ``timeout``
    seconds; with more than ``retries`` failures the map raises :class:`EvaluationFailed`.
    Chunks abandoned only because a pool was rebuilt around another chunk are not charged.
    Results come back in input order.
    """
    items = list(items)
    results: dict[int, R] = {}
    failures = [0] * len(items)
    todo = collections.deque(range(len(items)))
    running: dict[H, tuple[int, float]] = {}  # handle -> (item index, when it was handed out)

    def charge(index: int, reason: str) -> None:
        failures[index] += 1
        where = f"chunk {index + 1} of {len(items)}"
        if failures[index] > retries:
            raise EvaluationFailed(f"{where} failed {failures[index]} times, last: {reason}; giving up "
                                   f"(--retries {retries})")
        logger.warning("%s: %s; running it again (retry %d of %d)", where, reason, failures[index], retries)
        todo.append(index)

    while todo or running:
        slots = runner.slots()  # asked again each round: a cluster's workers may come and go
        while todo and len(running) < slots:
            index = todo.popleft()
            running[runner.submit(fn, items[index])] = (index, time.monotonic())
        done = runner.wait(list(running), _seconds_to_first_deadline(running.values(), timeout))
        lost = False
        for handle in done:
            index, _ = running.pop(handle)
            try:
                results[index] = runner.result(handle)
            except WorkerLost as exc:
                lost = True
                charge(index, str(exc))
        now = time.monotonic()
        overdue = [h for h, (_, start) in running.items() if timeout is not None and now - start >= timeout]
        for handle in overdue:
            charge(running.pop(handle)[0], f"no result after {timeout:g} s (--chunk-timeout)")
        if lost or overdue:
            for handle in runner.replace(overdue, list(running)):
                todo.appendleft(running.pop(handle)[0])
    return [results[index] for index in range(len(items))]


def _seconds_to_first_deadline(running: Iterable[tuple[int, float]], timeout: float | None) -> float | None:
    """How long the loop may wait before the earliest running chunk passes its limit (None: no limit)."""
    if timeout is None:
        return None
    starts = [start for _, start in running]
    return max(0.0, min(starts) + timeout - time.monotonic()) if starts else 0.0
