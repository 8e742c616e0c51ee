"""Chunk functions that misbehave on purpose, for the fault-tolerance tests.

They live in an importable module (not a test file's local scope) because worker processes
receive functions by reference. Each takes plain data; the ``*_once`` ones use a marker file
created with ``O_EXCL`` so that exactly one run, in whichever process, misbehaves.
"""
import os
import signal
import time
from pathlib import Path

from deap_mln.mln.fitness import Chunk, evaluate_chunk

FAULT_DIR = "DEAP_MLN_FAULT_DIR"  # environment variable: where the evolve-level helpers keep their marker
SPARED_PID = "DEAP_MLN_FAULT_SPARED_PID"  # environment variable: the process they never kill (the test's, SCOOP's launcher)


def first_time(marker: Path) -> bool:
    """True for the one caller that creates ``marker``, in any process."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def kill_this_process() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def square(x: int) -> int:
    return x * x


def square_dying_once(item: tuple[str, int]) -> int:
    """``x * x``; the first run for x == 1 kills its own worker process."""
    folder, x = item
    if x == 1 and first_time(Path(folder) / "died"):
        kill_this_process()
    return x * x


def square_always_dying(item: tuple[str, int]) -> int:
    """Kills its worker for x == 1, every time."""
    _, x = item
    if x == 1:
        kill_this_process()
    return x * x


def square_sleeping_once(item: tuple[str, int, float]) -> int:
    """``x * x``; the first run for x == 1 sleeps ``seconds`` first (a hung chunk)."""
    folder, x, seconds = item
    if x == 1 and first_time(Path(folder) / "slept"):
        time.sleep(seconds)
    return x * x


def square_always_sleeping(item: tuple[str, int, float]) -> int:
    _, x, seconds = item
    if x == 1:
        time.sleep(seconds)
    return x * x


def spared() -> bool:
    return os.environ.get(SPARED_PID) == str(os.getpid())


def evaluate_chunk_dying_once(chunk: Chunk) -> list[float]:
    """:func:`evaluate_chunk`, except that the first chunk of generation 2 run by a worker
    (not the spared process) kills that worker."""
    if (chunk.split == "evolution" and chunk.generation == 2 and not spared()
            and first_time(Path(os.environ[FAULT_DIR]) / "died")):
        kill_this_process()
    return evaluate_chunk(chunk)


def evaluate_chunk_always_dying(chunk: Chunk) -> list[float]:
    """Kills every worker that runs it (never the spared process)."""
    if not spared():
        kill_this_process()
    return evaluate_chunk(chunk)
