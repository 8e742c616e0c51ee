"""How fitness evaluations are dispatched: the options every map backend reads.

A leaf below :mod:`deap_mln.parallel` (which turns the options into a ``map``) and
:mod:`deap_mln.dask_backend` (which parallel opens on demand), so neither imports the other
for them. :mod:`deap_mln.parallel` re-exports these names.
"""
from __future__ import annotations

import dataclasses

from deap_mln.resilient_map import DEFAULT_RETRIES

BACKENDS = ("auto", "serial", "scoop", "process", "dask")

__all__ = ["BACKENDS", "DispatchOptions", "dispatch_options"]


@dataclasses.dataclass(frozen=True)
class DispatchOptions:
    """How fitness evaluations are dispatched (the ``--backend`` family of flags).

    ``workers`` sizes a local pool or Dask ``LocalCluster``; ``scheduler`` is the address of a
    running Dask scheduler to join instead (``tcp://host:8786``); ``chunk_timeout`` (seconds)
    bounds one chunk's run on a worker; ``retries`` bounds how often one chunk is run again
    after its worker died or it timed out.
    """

    backend: str = "auto"
    workers: int = 1
    scheduler: str | None = None
    chunk_timeout: float | None = None
    retries: int = DEFAULT_RETRIES

    def validate(self) -> DispatchOptions:
        """Self, or ValueError naming the first impossible setting."""
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.retries < 0:
            raise ValueError(f"retries must be at least 0, got {self.retries}")
        if self.chunk_timeout is not None and not self.chunk_timeout > 0:
            raise ValueError(f"chunk timeout must be a positive number of seconds, got {self.chunk_timeout}")
        if self.scheduler is not None and self.backend not in ("auto", "dask"):
            raise ValueError(f"a Dask scheduler address needs backend dask, not {self.backend!r}")
        return self


def dispatch_options(backend: str | DispatchOptions = "auto", workers: int = 1) -> DispatchOptions:
    """The options a caller meant: ``backend`` itself if it is a :class:`DispatchOptions`,
    else the backend name with ``workers`` (how existing callers pass them)."""
    if isinstance(backend, DispatchOptions):
        if workers not in (1, backend.workers):
            raise ValueError(f"workers given twice: {workers} and DispatchOptions(workers={backend.workers})")
        return backend.validate()
    return DispatchOptions(backend, workers).validate()
