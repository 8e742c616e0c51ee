"""A TaylorGLO run's checkpoint and --resume: an interrupted run ends as an uninterrupted one."""
import copy
import csv
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from deap import algorithms

from deap_mln.cli.main import main
from deap_mln.io import BEST_LOSS_FILE, CONFIG_FILE, LOGBOOK_FILE, TAYLOR_CHECKPOINT_FILE
from deap_mln.saved_losses import read_record
from deap_mln.taylor.checkpoint import checkpoint, new_taylor_state, restore
from deap_mln.taylor.config import TaylorConfig, taylor_preset
from deap_mln.taylor.run import evolve_taylor, resume_taylor
from deap_mln.taylor.search import build_taylor_toolbox, numpy_random, run_taylor_search

TINY = dict(generations=4, lambda_=4, steps=5, hidden=8, seed=2)


def sphere(vector):
    """A cheap stand-in fitness in (0, 1]: no classifier trained."""
    return 1.0 / (1.0 + sum((v - 1.0) ** 2 for v in vector))


def without_seconds(rows):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def read_logbook(path):
    with open(path) as f:
        return without_seconds(csv.DictReader(f))


def same_values(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_values(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) and np.isfortran(a) != np.isfortran(b):  # the layout changes a product's rounding
        return False
    return bool(np.array_equal(a, b))


class Interrupt(Exception):
    pass


def interrupt_at(n):
    """A progress callback that stops the run at its ``n``-th line (before that generation's checkpoint)."""
    lines = []

    def say(line):
        lines.append(line)
        if len(lines) == n:
            raise Interrupt
    return say


def test_stepping_one_generation_a_call_is_one_eaGenerateUpdate_of_all_generations():
    config = TaylorConfig(generations=6, lambda_=6)
    stepped = run_taylor_search(config, sphere)
    state = new_taylor_state(config)
    toolbox = build_taylor_toolbox(config, sphere, state=state)
    with numpy_random(config.seed, "taylor-cma"):
        algorithms.eaGenerateUpdate(toolbox, ngen=config.generations, halloffame=state.hall_of_fame, verbose=False)
    assert without_seconds(stepped.logbook) == without_seconds(state.logbook)
    assert stepped.best == list(state.hall_of_fame[0]) and stepped.best_fitness == state.hall_of_fame[0].fitness.values[0]
    assert same_values(vars(stepped.strategy), vars(state.strategy))


def test_a_checkpoint_restores_the_whole_strategy_the_best_and_numpys_rng():
    config = TaylorConfig(generations=3, lambda_=6)
    taken = {}

    def on_generation(state):
        if state.generation == 2:  # through JSON text, as on disk
            taken.update(data=json.loads(json.dumps(checkpoint(state))), strategy=copy.deepcopy(vars(state.strategy)),
                         rng=np.random.get_state(), best=list(state.hall_of_fame[0]),
                         fitness=state.hall_of_fame[0].fitness.values)
    run_taylor_search(config, sphere, on_generation=on_generation)
    with numpy_random(99):
        restored = restore(taken["data"], config)
        rng = np.random.get_state()
    assert same_values(vars(restored.strategy), taken["strategy"])  # every attribute, not only the saved ones
    assert all(np.array_equal(a, b) for a, b in zip(rng, taken["rng"]))
    assert list(restored.hall_of_fame[0]) == taken["best"] and restored.hall_of_fame[0].fitness.values == taken["fitness"]
    assert restored.generation == 2 and restored.logbook == taken["data"]["logbook"]


def test_a_search_resumed_from_any_generation_ends_as_the_uninterrupted_one():
    config = TaylorConfig(generations=5, lambda_=6)
    checkpoints = []
    whole = run_taylor_search(config, sphere, on_generation=lambda s: checkpoints.append(json.dumps(checkpoint(s))))
    for saved in checkpoints:
        resumed = run_taylor_search(config, sphere, resume=json.loads(saved))
        assert without_seconds(resumed.logbook) == without_seconds(whole.logbook)
        assert resumed.best == whole.best and resumed.best_fitness == whole.best_fitness
        assert same_values(vars(resumed.strategy), vars(whole.strategy))


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path):
    config = taylor_preset("quick", **TINY)
    whole = evolve_taylor(config, tmp_path / "whole", backend="serial", progress=None)
    with pytest.raises(Interrupt):
        evolve_taylor(config, tmp_path / "cut", backend="serial", progress=interrupt_at(3))
    cut = tmp_path / "cut"
    assert json.loads((cut / TAYLOR_CHECKPOINT_FILE).read_text())["generation"] == 2
    assert not (cut / BEST_LOSS_FILE).exists()
    lines = []
    resumed = resume_taylor(cut, backend="serial", progress=lines.append)  # its own config.json
    assert lines[0] == f"resuming {cut} after generation 2" and len(lines) == 1 + 2
    assert read_logbook(cut / LOGBOOK_FILE) == read_logbook(tmp_path / "whole" / LOGBOOK_FILE)
    assert resumed.best == whole.best and resumed.best_fitness == whole.best_fitness
    assert torch.equal(read_record(resumed.loss_file)["parameters"], read_record(whole.loss_file)["parameters"])
    ends = [json.loads((run / TAYLOR_CHECKPOINT_FILE).read_text()) for run in (cut, tmp_path / "whole")]
    for end in ends:
        end.pop("seconds")
        end["logbook"] = without_seconds(end["logbook"])
    assert ends[0] == ends[1]


def test_a_finished_run_resumes_to_its_result_without_evaluating(tmp_path, monkeypatch):
    config = taylor_preset("quick", **TINY)
    whole = evolve_taylor(config, tmp_path / "run", backend="serial", progress=None)
    (tmp_path / "run" / BEST_LOSS_FILE).unlink()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run evaluated a vector")
    monkeypatch.setattr("deap_mln.taylor.run.evaluate_parameters", no_training)
    again = resume_taylor(tmp_path / "run", backend="serial", progress=None)
    assert again.best == whole.best and again.best_fitness == whole.best_fitness
    assert without_seconds(again.search.logbook) == without_seconds(whole.search.logbook)
    assert torch.equal(read_record(again.loss_file)["parameters"], read_record(whole.loss_file)["parameters"])


def test_a_run_stopped_before_its_first_checkpoint_starts_from_generation_0(tmp_path):
    config = taylor_preset("quick", **TINY)
    whole = evolve_taylor(config, tmp_path / "whole", backend="serial", progress=None)
    (tmp_path / "cut").mkdir()
    config.save(tmp_path / "cut" / CONFIG_FILE)
    lines = []
    resumed = resume_taylor(tmp_path / "cut", backend="serial", progress=lines.append)
    assert "starting its run from generation 0" in lines[0]
    assert resumed.best == whole.best and read_logbook(tmp_path / "cut" / LOGBOOK_FILE) == read_logbook(
        tmp_path / "whole" / LOGBOOK_FILE)


def test_resume_errors_are_one_line_and_exit_2(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["evolve-taylor", "--out", str(run), "--resume"]) == 2
    assert "holds no TaylorGLO run to resume (no config.json)" in capsys.readouterr().err
    run.mkdir()
    taylor_preset("quick", **TINY).save(run / CONFIG_FILE)
    (run / TAYLOR_CHECKPOINT_FILE).write_text("{truncated")
    assert main(["evolve-taylor", "--out", str(run), "--resume"]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    (run / TAYLOR_CHECKPOINT_FILE).write_text('{"format": "deap_mln.gp_checkpoint/1", "generation": 1}')
    assert main(["evolve-taylor", "--out", str(run), "--resume"]) == 2
    assert "not a TaylorGLO checkpoint" in capsys.readouterr().err
    (run / TAYLOR_CHECKPOINT_FILE).write_text('{"format": "deap_mln.taylor_checkpoint/1", "generation": 1}')
    assert main(["evolve-taylor", "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "not a valid TaylorGLO checkpoint" in err and len(err.strip().splitlines()) == 1
    assert main(["evolve-taylor", "--out", str(run), "--resume", "--seed", "3", "--lambda", "5"]) == 2
    assert "drop --seed --lambda" in capsys.readouterr().err
    assert main(["evolve-taylor", "--out", str(run), "--quiet"]) == 2
    assert "already holds a run; choose another --out or continue it with --resume" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path):
    generations = 8
    flags = ["--seed", "1", "--generations", str(generations), "--lambda", "6", "--steps", "30", "--backend", "serial",
             "--quiet"]
    cut = tmp_path / "cut"
    command = [sys.executable, "-m", "deap_mln", "evolve-taylor", "--out", str(cut), *flags]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if (cut / TAYLOR_CHECKPOINT_FILE).is_file():  # written atomically: whole or absent
                if json.loads((cut / TAYLOR_CHECKPOINT_FILE).read_text())["generation"] >= 1:
                    proc.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.01)
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()
    done = json.loads((cut / TAYLOR_CHECKPOINT_FILE).read_text())["generation"]
    assert 1 <= done < generations and not (cut / BEST_LOSS_FILE).exists()

    resumed = subprocess.run([*command[:-len(flags)], "--resume", "--quiet"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    config = taylor_preset("quick", dataset="digits", seed=1, generations=generations, lambda_=6, steps=30)
    whole = evolve_taylor(config, tmp_path / "whole", backend="serial", progress=None)
    assert TaylorConfig.load(cut / CONFIG_FILE) == config
    assert read_logbook(cut / LOGBOOK_FILE) == read_logbook(tmp_path / "whole" / LOGBOOK_FILE)
    record = read_record(cut / BEST_LOSS_FILE)
    assert torch.equal(record["parameters"], read_record(whole.loss_file)["parameters"])
    assert record["metadata"]["fitness"] == whole.best_fitness
