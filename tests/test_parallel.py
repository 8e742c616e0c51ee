"""Backends never change the numbers: serial, process pool, Dask and SCOOP give identical fitness."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deap_mln import launch
from deap_mln.cli import main
from deap_mln.mln.run import evolve
from deap_mln.parallel import DispatchOptions, evaluation_map, resolve_backend
from tests.conftest import tiny_config
from tests.mln.test_run import TINY_FLAGS, fitness_columns


def test_auto_backend_is_serial_outside_scoop():
    assert resolve_backend("auto", 1) == "serial"
    assert resolve_backend("auto", 2) == "process"
    with pytest.raises(ValueError, match="SCOOP launcher"):
        resolve_backend("scoop", 1)
    with pytest.raises(ValueError, match="workers"):
        resolve_backend("serial", 0)
    assert resolve_backend(DispatchOptions("auto", 2)) == "process"


@pytest.mark.slow
def test_dask_cli_run_with_two_workers_gives_bitwise_the_serial_logbook(tmp_path):
    common = ["evolve", "--quiet", "--seed", "5", *TINY_FLAGS, "--chunk-size", "3"]
    assert main([*common, "--out", str(tmp_path / "serial")]) == 0
    assert main([*common, "--backend", "dask", "--workers", "2", "--out", str(tmp_path / "dask")]) == 0
    rows = fitness_columns(tmp_path / "dask" / "logbook.csv")
    assert len(rows) == 4 and rows == fitness_columns(tmp_path / "serial" / "logbook.csv")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["process", "dask"])
def test_worker_backends_keep_input_order_and_use_every_worker(backend):
    with evaluation_map(backend, 2) as map_fn:
        runs = [list(map_fn(sleepy_pid, range(4))) for _ in range(2)]
    for run in runs:
        assert [item for item, _ in run] == list(range(4))
    assert len({pid for run in runs for _, pid in run}) == 2


@pytest.mark.slow
def test_process_pool_gives_bitwise_the_serial_fitness(tmp_path):
    config = tiny_config(chunk_size=3)
    serial = evolve(config, tmp_path / "serial", progress=None)
    pooled = evolve(config, tmp_path / "pool", backend="process", workers=2, progress=None)
    assert fitness_columns(tmp_path / "serial" / "logbook.csv") == fitness_columns(tmp_path / "pool" / "logbook.csv")
    assert serial.best_fitness == pooled.best_fitness


@pytest.mark.slow
def test_scoop_with_two_workers_gives_bitwise_the_serial_fitness(tmp_path):
    common = ["evolve", "--quiet", "--seed", "5", *TINY_FLAGS, "--chunk-size", "3"]
    serial = subprocess.run([sys.executable, launch.__file__, *common, "--out", str(tmp_path / "serial")],
                            capture_output=True, text=True, timeout=300)
    assert serial.returncode == 0, serial.stderr
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    scooped = subprocess.run([sys.executable, "-m", "scoop", "-n", "2", launch.__file__, *common,
                              "--backend", "scoop", "--out", str(tmp_path / "scoop")],
                             capture_output=True, text=True, timeout=300, env=env)
    assert scooped.returncode == 0, scooped.stderr[-2000:]
    rows = fitness_columns(tmp_path / "scoop" / "logbook.csv")
    assert len(rows) == 4 and rows == fitness_columns(tmp_path / "serial" / "logbook.csv")


def sleepy_pid(item: int) -> tuple[int, int]:
    """A stand-in for a chunk: its item and the process that ran it."""
    time.sleep(0.3)
    return item, os.getpid()


def test_no_scoop_warnings_when_run_without_the_launcher(tmp_path, capfd):
    evolve(tiny_config(generations=1), tmp_path / "run", progress=None)
    captured = capfd.readouterr()
    assert "scoop" not in (captured.out + captured.err).lower()


@pytest.mark.slow
@pytest.mark.parametrize("items", [2, 4])
def test_scoop_backend_shares_every_map_between_launcher_and_worker(tmp_path, items):
    """Plain scoop.futures.map ran both chunks on the launcher in about half the maps (a
    request the launcher left at the broker pulls the next map's chunk back to it); the
    backend gives the launcher its half and the worker the other half, every map."""
    probe = Path(__file__).with_name("scoop_dispatch_probe.py")
    out, warmup, timed = tmp_path / "where.json", 2, 4
    proc = subprocess.run([sys.executable, "-m", "scoop", "-n", "2", str(probe), str(out), str(warmup + timed), str(items)],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(out.read_text())
    launcher = record["launcher"]
    for run in record["runs"]:
        assert [item for item, _ in run] == list(range(items))  # input order
    # the first maps may still wait for the worker to import torch; after that, no exceptions
    for run in record["runs"][warmup:]:
        pids = [pid for _, pid in run]
        assert pids.count(launcher) == items // 2, run
        assert len(set(pids)) == 2, run
