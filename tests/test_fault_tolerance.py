"""A lost or stuck worker costs a retry, not the run: the retry loop, then each backend for real.

The loop is checked first against a scripted runner (no processes, milliseconds); then the
process pool and Dask run chunks that kill their own worker or hang, and whole evolutions
lose a worker mid-generation and must still end with the serial run's logbook.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import deap_mln.mln.toolbox
from deap_mln.cli import main
from deap_mln.mln.run import evolve
from deap_mln.parallel import DispatchOptions, EvaluationFailed, evaluation_map, resolve_backend
from deap_mln.resilient_map import WorkerLost, retrying_map
from tests import fault_injection
from tests.conftest import tiny_config
from tests.mln.test_run import TINY_FLAGS, fitness_columns

# ------------------------------------------------------------------------------ the loop, scripted


@dataclasses.dataclass(eq=False)
class Handle:
    item: int
    outcome: str | float  # "ok", "lost" (its worker dies), "hang", or seconds until it is done
    ready_at: float


class ScriptedRunner:
    """A runner whose chunks answer at once, or die ("lost"), hang ("hang") or take some
    seconds on the attempts given in ``script``: {item: [outcome of the 1st run, of the 2nd,
    ...]} (later runs answer at once)."""

    def __init__(self, script: dict, slots: int = 2, replace_abandons_all: bool = False):
        self.script, self._slots, self.abandons_all = script, slots, replace_abandons_all
        self.runs: dict[int, int] = {}
        self.replaced = 0
        self.fn = None

    def slots(self) -> int:
        return self._slots

    def submit(self, fn, item):
        self.fn = fn
        attempt = self.runs.get(item, 0)
        self.runs[item] = attempt + 1
        plan = self.script.get(item, [])
        outcome = plan[attempt] if attempt < len(plan) else "ok"
        delay = outcome if isinstance(outcome, float) else (float("inf") if outcome == "hang" else 0.0)
        return Handle(item, outcome, time.monotonic() + delay)

    def wait(self, handles, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            done = {h for h in handles if h.ready_at <= time.monotonic()}
            if done or (deadline is not None and time.monotonic() >= deadline):
                return done
            time.sleep(0.002)

    def result(self, handle):
        if handle.outcome == "lost":
            raise WorkerLost("a worker process died")
        return self.fn(handle.item)

    def replace(self, overdue, running):
        self.replaced += 1
        return list(running) if self.abandons_all else []


def test_a_lost_worker_costs_one_rerun_of_its_chunk():
    runner = ScriptedRunner({1: ["lost"]})
    assert retrying_map(runner, fault_injection.square, range(4)) == [0, 1, 4, 9]
    assert runner.runs == {0: 1, 1: 2, 2: 1, 3: 1} and runner.replaced == 1


def test_a_chunk_that_keeps_losing_workers_stops_the_map_in_one_line():
    runner = ScriptedRunner({2: ["lost"] * 5})
    with pytest.raises(EvaluationFailed, match=r"chunk 3 of 3 failed 3 times, last: a worker process died") as info:
        retrying_map(runner, fault_injection.square, range(3), retries=2)
    assert "\n" not in str(info.value)  # the CLI's one-line error policy
    assert not isinstance(info.value, ValueError)  # not bad input: the CLI exits 3 for it, not 2
    assert runner.runs[2] == 3


def test_a_chunk_past_its_time_limit_runs_again_and_then_gives_up():
    runner = ScriptedRunner({1: ["hang"]})
    assert retrying_map(runner, fault_injection.square, range(3), timeout=0.05) == [0, 1, 4]
    assert runner.runs[1] == 2 and runner.replaced == 1
    with pytest.raises(EvaluationFailed, match=r"no result after 0.05 s"):
        retrying_map(ScriptedRunner({1: ["hang"] * 3}), fault_injection.square, range(3), timeout=0.05, retries=1)


def test_chunks_abandoned_with_a_rebuilt_pool_are_not_charged():
    # Chunk 0 hangs; chunk 1 answers after 0.05 s, so chunk 2 starts then, and is still within
    # its limit when chunk 0 passes its own at 0.2 s and the pool is rebuilt around it. Chunk 2
    # then hangs once on its second run: charged for the abandonment too, it would be out of retries.
    runner = ScriptedRunner({0: ["hang"], 1: [0.05], 2: [1.0, "hang"]}, replace_abandons_all=True)
    assert retrying_map(runner, fault_injection.square, range(3), timeout=0.2, retries=1) == [0, 1, 4]
    assert runner.runs == {0: 2, 1: 1, 2: 3} and runner.replaced == 2


def test_a_chunks_own_error_is_not_retried():
    runner = ScriptedRunner({})
    with pytest.raises(ZeroDivisionError):
        retrying_map(runner, lambda x: 1 // (x - 1), range(3))
    assert runner.runs[1] == 1


def test_never_more_chunks_in_flight_than_slots():
    runner = ScriptedRunner({}, slots=3)
    seen = []
    original = runner.wait
    runner.wait = lambda handles, timeout: (seen.append(len(handles)), original(handles, timeout))[1]
    assert retrying_map(runner, fault_injection.square, range(10)) == [x * x for x in range(10)]
    assert max(seen) == 3


# ------------------------------------------------------------------------------ options and flags


def test_dispatch_options_are_checked_before_anything_runs():
    assert resolve_backend(DispatchOptions("auto", chunk_timeout=5)) == "process"  # a limit needs a worker process
    assert resolve_backend(DispatchOptions("auto", scheduler="tcp://127.0.0.1:8786")) == "dask"
    assert resolve_backend("dask", 2) == "dask"
    with pytest.raises(ValueError, match="worker processes"):
        resolve_backend(DispatchOptions("serial", chunk_timeout=5))
    with pytest.raises(ValueError, match="needs backend dask"):
        resolve_backend(DispatchOptions("process", 2, scheduler="tcp://127.0.0.1:8786"))
    with pytest.raises(ValueError, match="retries"):
        resolve_backend(DispatchOptions("process", 2, retries=-1))
    with pytest.raises(ValueError, match="workers given twice"):
        resolve_backend(DispatchOptions("process", 2), 3)


def test_cli_refuses_a_time_limit_without_workers_in_one_line(tmp_path, capsys):
    code = main(["evolve", "--quiet", *TINY_FLAGS, "--backend", "serial", "--chunk-timeout", "5",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "chunk time limit" in err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------ real workers


BACKENDS = ["process", "dask"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_killed_worker_costs_a_retry_not_the_map(tmp_path, backend):
    items = [(str(tmp_path), x) for x in range(4)]
    with evaluation_map(DispatchOptions(backend, 2)) as map_fn:
        assert list(map_fn(fault_injection.square_dying_once, items)) == [0, 1, 4, 9]
        assert (tmp_path / "died").exists()  # it did die once
        assert list(map_fn(fault_injection.square, range(3))) == [0, 1, 4]  # the map goes on working
    with pytest.raises(EvaluationFailed, match="chunk|Dask gave up"):
        with evaluation_map(DispatchOptions(backend, 2, retries=1)) as map_fn:
            list(map_fn(fault_injection.square_always_dying, items))


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_hung_chunk_is_run_again_after_its_time_limit(tmp_path, backend):
    items = [(str(tmp_path), x, 60.0) for x in range(4)]
    tic = time.monotonic()
    with evaluation_map(DispatchOptions(backend, 2, chunk_timeout=1.5)) as map_fn:
        assert list(map_fn(fault_injection.square_sleeping_once, items)) == [0, 1, 4, 9]
        assert list(map_fn(fault_injection.square, range(3))) == [0, 1, 4]
    assert (tmp_path / "slept").exists() and time.monotonic() - tic < 40  # nobody waited for the 60 s sleep
    with pytest.raises(EvaluationFailed, match="no result after 1.5 s"):
        with evaluation_map(DispatchOptions(backend, 2, chunk_timeout=1.5, retries=0)) as map_fn:
            list(map_fn(fault_injection.square_always_sleeping, items))


@pytest.fixture
def dying_generation(tmp_path, monkeypatch):
    """Evolutions in this test evaluate through a chunk function that kills one worker, once, in
    generation 2 (this process is spared: a serial run is unharmed)."""
    marker = tmp_path / "fault"
    marker.mkdir()
    monkeypatch.setenv(fault_injection.FAULT_DIR, str(marker))
    monkeypatch.setenv(fault_injection.SPARED_PID, str(os.getpid()))
    monkeypatch.setattr(deap_mln.mln.toolbox, "evaluate_chunk", fault_injection.evaluate_chunk_dying_once)
    return marker


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_evolution_that_loses_a_worker_mid_generation_ends_as_the_serial_one(tmp_path, dying_generation, backend):
    config = tiny_config(chunk_size=3)
    serial = evolve(config, tmp_path / "serial", progress=None)  # in this process, which is spared
    assert not (dying_generation / "died").exists()
    survived = evolve(config, tmp_path / backend, backend=DispatchOptions(backend, 2), progress=None)
    assert (dying_generation / "died").exists()
    assert fitness_columns(tmp_path / backend / "logbook.csv") == fitness_columns(tmp_path / "serial" / "logbook.csv")
    assert survived.best_fitness == serial.best_fitness


@pytest.mark.slow
def test_a_run_whose_chunks_keep_failing_exits_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(fault_injection.SPARED_PID, str(os.getpid()))
    monkeypatch.setattr(deap_mln.mln.toolbox, "evaluate_chunk", fault_injection.evaluate_chunk_always_dying)
    code = main(["evolve", "--quiet", *TINY_FLAGS, "--workers", "2", "--retries", "0", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 3 and err.startswith("deap-mln: error: ") and err.count("\n") == 1, err
    assert "a worker process died" in err, err
    assert (tmp_path / "run" / "config.json").exists()  # the run directory is intact


@pytest.mark.slow
def test_scoop_recomputes_the_chunk_of_a_killed_worker_in_the_launcher(tmp_path):
    """SCOOP never reports a lost worker: the launcher waits --chunk-timeout for the chunk it
    sent out, computes it itself, and carries on with one process fewer."""
    probe = Path(__file__).with_name("scoop_fault_probe.py")
    marker = tmp_path / "fault"
    marker.mkdir()
    env = dict(os.environ, PYTHONWARNINGS="ignore", **{fault_injection.FAULT_DIR: str(marker)})
    proc = subprocess.run([sys.executable, "-m", "scoop", "-n", "2", str(probe), str(tmp_path / "scoop"), "4"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (marker / "died").exists()
    assert "computes it" in proc.stderr
    evolve(tiny_config(chunk_size=3), tmp_path / "serial", progress=None)
    assert fitness_columns(tmp_path / "scoop" / "logbook.csv") == fitness_columns(tmp_path / "serial" / "logbook.csv")
