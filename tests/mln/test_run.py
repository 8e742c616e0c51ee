import csv
import json

import numpy as np
import pytest

from deap_mln.cli import main
from deap_mln.mln.checkpoint import load_checkpoint
from deap_mln.mln.network import load_loss, load_loss_record
from deap_mln.mln.run import evolve, resume
from tests.conftest import tiny_config

RUN_FILES = {"config.json", "checkpoint.npz", "logbook.csv", "best_loss.pt", "fitness.png", "loss_shape.png", "scores.json"}
FITNESS_COLUMNS = ("gen", "evals", "failed", "best", "mean", "std", "worst", "sigma_mean", "sigma_min", "sigma_max",
                   "validation", "validated_best")
TINY_FLAGS = ["--hidden", "8,8", "--pool-size", "2000", "--train-size", "400", "--val-size", "200",
              "--tasks-per-eval", "2", "--epochs", "5", "--population", "12", "--chunk-size", "6", "--generations", "3"]


def fitness_columns(path):
    with open(path) as f:
        return [tuple(row[c] for c in FITNESS_COLUMNS) for row in csv.DictReader(f)]


def test_run_directory_holds_every_file(tmp_path, config):
    result = evolve(config, tmp_path / "run", progress=None)
    assert {p.name for p in (tmp_path / "run").iterdir()} == RUN_FILES
    assert json.loads((tmp_path / "run" / "config.json").read_text())["hidden"] == [8, 8]
    record = load_loss_record(tmp_path / "run" / "best_loss.pt")
    assert record["metadata"]["fitness"] == result.best_fitness
    np.testing.assert_array_equal(record["genome"].numpy(), result.state.best_validated)
    assert record["metadata"]["selected_by"] == "validation"
    assert record["metadata"]["validation"] == result.state.best_validation == result.scores["kept"]["validation"]
    assert len(fitness_columns(tmp_path / "run" / "logbook.csv")) == config.generations + 1
    load_loss(tmp_path / "run" / "best_loss.pt")  # usable as a loss module


def test_same_command_twice_gives_identical_fitness_columns(tmp_path):
    for name in ("a", "b"):
        assert main(["evolve", "--out", str(tmp_path / name), "--seed", "3", "--quiet", *TINY_FLAGS]) == 0
    assert fitness_columns(tmp_path / "a" / "logbook.csv") == fitness_columns(tmp_path / "b" / "logbook.csv")
    assert fitness_columns(tmp_path / "a" / "logbook.csv") != []


def test_another_seed_gives_other_numbers(tmp_path):
    for seed in ("1", "2"):
        assert main(["evolve", "--out", str(tmp_path / seed), "--seed", seed, "--quiet", *TINY_FLAGS]) == 0
    assert fitness_columns(tmp_path / "1" / "logbook.csv") != fitness_columns(tmp_path / "2" / "logbook.csv")


def straight_and_resumed(config, tmp_path):
    """The same run twice: once straight through, once interrupted at generation 3 (Ctrl-C)
    and resumed from its checkpoint. Returns both results."""
    straight = evolve(config, tmp_path / "straight", progress=None)

    def interrupt_at_generation_3(line):
        if line.startswith("gen    3"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evolve(config, tmp_path / "resumed", progress=interrupt_at_generation_3)
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.npz", np.random.default_rng()).generation == 2
    return straight, resume(tmp_path / "resumed", progress=None)


def test_resumed_run_ends_exactly_like_an_uninterrupted_one(tmp_path):
    straight, resumed = straight_and_resumed(tiny_config(generations=4, checkpoint_every=1), tmp_path)

    assert resumed.state.generation == straight.state.generation == 4
    for a, b in zip(straight.state.population, resumed.state.population):
        np.testing.assert_array_equal(a, b)
        assert a.strategy == b.strategy and a.fitness.values == b.fitness.values
    np.testing.assert_array_equal(straight.state.hall_of_fame[0], resumed.state.hall_of_fame[0])
    assert fitness_columns(tmp_path / "straight" / "logbook.csv") == fitness_columns(tmp_path / "resumed" / "logbook.csv")


def test_existing_run_is_not_overwritten_without_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["evolve", "--out", str(out), "--quiet", *TINY_FLAGS]) == 0
    before = (out / "logbook.csv").read_bytes()
    assert main(["evolve", "--out", str(out), "--quiet", *TINY_FLAGS]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (out / "logbook.csv").read_bytes() == before


@pytest.mark.parametrize("argv, message", [
    (["evolve", "--out", "X", "--algorithm", "ga"], "invalid choice"),
    (["evolve", "--out", "X", "--generations", "-1"], "generations must be non-negative"),
    (["evolve", "--out", "X", "--population", "0"], "positive integer"),
    (["evolve", "--out", "X", "--population", "7"], "--population must be even"),
    (["evolve", "--out", "X", "--hidden", "32,a"], "comma-separated"),
    (["evolve", "--out", "X", "--train-size", "900000"], "must not exceed pool_size"),
    (["evolve", "--out", "X", "--backend", "scoop"], "needs the SCOOP launcher"),
    (["evolve", "--out", "X", "--bogus"], "unrecognized arguments"),
    (["evolve"], "required: --out"),
    (["show", "nowhere"], "not a run directory"),
])
def test_bad_input_exits_2_with_a_one_line_reason(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "X").exists() or not any((tmp_path / "X").iterdir())


def test_resume_rejects_overrides_and_missing_runs(tmp_path, capsys):
    assert main(["evolve", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "config.json" in capsys.readouterr().err
    assert main(["evolve", "--out", str(tmp_path / "none"), "--resume", "--generations", "5"]) == 2
    assert "--generations" in capsys.readouterr().err


def test_corrupt_checkpoint_gives_a_clear_error(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["evolve", "--out", str(out), "--quiet", *TINY_FLAGS]) == 0
    (out / "checkpoint.npz").write_bytes(b"garbage")
    assert main(["evolve", "--out", str(out), "--resume", "--quiet"]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err


def test_show_summarises_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["evolve", "--out", str(out), "--quiet", *TINY_FLAGS]) == 0
    capsys.readouterr()
    assert main(["show", str(out)]) == 0
    text = capsys.readouterr().out
    assert "kept loss: fitness" in text and "selected by validation" in text and "logbook.csv" in text
