"""The Dask backend: chunks are ``dask.distributed`` tasks on a ``LocalCluster`` or a running cluster.

``DispatchOptions(backend="dask", workers=N)`` starts a ``LocalCluster`` of N worker processes
with one thread each (torch on one thread, as everywhere); ``scheduler="tcp://host:8786"``
joins a cluster started by hand (``dask scheduler`` and ``dask worker``) or by dask's SSH
helper instead. The cluster or the connection lives as long as the :func:`dask_map` context:
a run pays the workers' start-up once.

Speed: a ``LocalCluster``'s workers start without the ``MALLOC_TRIM_THRESHOLD_`` that Dask's
nannies set by default (it made every chunk about 25% slower here); workers started by hand
need the same setting (docs/parallel.md).

Failures: when a worker process dies, Dask's scheduler gives its tasks to other workers by
itself and its nanny starts a new process; a task on which ``allowed-failures`` workers died
fails with ``KilledWorker``, which stops the map with :class:`EvaluationFailed`. On a
``LocalCluster`` ``allowed-failures`` is set to ``retries``; a cluster started by hand keeps
its own setting (default 3). A chunk that runs past ``chunk_timeout`` is cancelled, its
worker restarted through its nanny, and the chunk handed out again by
:func:`deap_mln.resilient_map.retrying_map`.
"""
from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Collection, Iterator
from typing import TYPE_CHECKING, Any

import torch

from deap_mln.dispatch import DispatchOptions
from deap_mln.resilient_map import EvaluationFailed, logger, retrying_map

if TYPE_CHECKING:
    from distributed import Client, Future


CONNECT_SECONDS = 30.0         # to reach a scheduler given by address
FIRST_WORKER_SECONDS = 120.0   # for the first worker of a cluster given by address to join
LARGE_TASK = "1GiB"            # a chunk at paper settings is 17 MiB; Dask warns above 10 MB by default


def one_thread_call(fn: Callable[[Any], Any], item: Any) -> Any:
    """``fn(item)`` with torch on one thread in the calling thread (a Dask task's thread)."""
    torch.set_num_threads(1)
    return fn(item)


def _warm_up() -> int:
    """Run once on every worker when the map opens: imports torch there before any chunk is timed."""
    torch.set_num_threads(1)
    return torch.get_num_threads()


@contextlib.contextmanager
def dask_client(options: DispatchOptions) -> Iterator[Client]:
    """A client of a new ``LocalCluster`` (``options.workers`` processes, one thread each) or
    of the running cluster at ``options.scheduler``, with its workers up and torch imported."""
    import dask
    from distributed import Client, LocalCluster

    settings = {"distributed.admin.large-graph-warning-threshold": LARGE_TASK,
                "distributed.scheduler.allowed-failures": options.retries,
                # Dask's nannies set glibc's trim threshold, which also turns off its adaptive mmap
                # threshold: every large tensor then comes from fresh pages (chunks ran 25% slower)
                "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
    with dask.config.set(settings), contextlib.ExitStack() as stack:
        if options.scheduler is None:
            cluster = stack.enter_context(LocalCluster(n_workers=options.workers, threads_per_worker=1,
                                                       processes=True, dashboard_address=None,
                                                       silence_logs=logging.ERROR))
            client = stack.enter_context(Client(cluster))
            client.wait_for_workers(options.workers)
        else:
            try:
                client = stack.enter_context(Client(options.scheduler, timeout=CONNECT_SECONDS))
                client.wait_for_workers(1, timeout=FIRST_WORKER_SECONDS)
            except (OSError, TimeoutError) as exc:
                raise EvaluationFailed(f"Dask scheduler {options.scheduler}: {' '.join(str(exc).split())}") from None
        client.run(_warm_up)
        yield client


@contextlib.contextmanager
def dask_map(options: DispatchOptions) -> Iterator[Callable]:
    """A map whose chunks are Dask tasks, with the retries and time limit of ``options``."""
    with dask_client(options) as client:
        yield functools.partial(retrying_map, DaskRunner(client), timeout=options.chunk_timeout,
                                retries=options.retries)


class DaskRunner:
    """A :class:`deap_mln.resilient_map.ChunkRunner` over a Dask client: one task per chunk."""

    def __init__(self, client: Client):
        self.client = client

    def slots(self) -> int:
        """Worker threads in the cluster now (workers may join or leave between maps)."""
        return max(1, sum(self.client.nthreads().values()))

    def submit(self, fn: Callable[[Any], Any], item: Any) -> Future:
        return self.client.submit(one_thread_call, fn, item, pure=False)

    def wait(self, handles: Collection[Future], timeout: float | None) -> set[Future]:
        from distributed import wait

        with contextlib.suppress(TimeoutError):  # distributed.wait raises where concurrent.futures returns
            wait(list(handles), timeout=timeout, return_when="FIRST_COMPLETED")
        return {handle for handle in handles if handle.done()}

    def result(self, handle: Future) -> Any:
        from distributed.scheduler import KilledWorker

        try:
            return handle.result()
        except KilledWorker as exc:  # Dask already ran it again on other workers, allowed-failures times
            raise EvaluationFailed(f"Dask gave up on a chunk: {' '.join(str(exc).split())}") from None

    def replace(self, overdue: Collection[Future], running: Collection[Future]) -> Collection[Future]:
        """Cancel the overdue chunks and restart the workers stuck in them (their nannies start
        new processes); other chunks go on, Dask re-runs any that were on a restarted worker."""
        if not overdue:
            return []  # a dead worker: Dask has already handed its tasks out again
        keys = {handle.key for handle in overdue}
        stuck = [worker for worker, tasks in self.client.processing().items() if keys & set(tasks)]
        self.client.cancel(list(overdue))
        if stuck:
            try:
                self.client.restart_workers(stuck)
            except Exception as exc:  # noqa: BLE001  a worker without a nanny cannot be restarted
                logger.warning("could not restart the stuck Dask worker(s) %s: %s", ", ".join(stuck), exc)
        return []
