"""Backends never change the numbers: serial, process pool and SCOOP give identical fitness."""
import os
import subprocess
import sys

import pytest

from deap_mln import launch
from deap_mln.parallel import resolve_backend
from deap_mln.run import evolve
from tests.conftest import tiny_config
from tests.test_run_cli import TINY_FLAGS, fitness_columns


def test_auto_backend_is_serial_outside_scoop():
    assert resolve_backend("auto", 1) == "serial"
    assert resolve_backend("auto", 2) == "process"
    with pytest.raises(ValueError, match="SCOOP launcher"):
        resolve_backend("scoop", 1)
    with pytest.raises(ValueError, match="workers"):
        resolve_backend("serial", 0)


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


def test_no_scoop_warnings_when_run_without_the_launcher(tmp_path, capfd):
    evolve(tiny_config(generations=1), tmp_path / "run", progress=None)
    captured = capfd.readouterr()
    assert "scoop" not in (captured.out + captured.err).lower()
