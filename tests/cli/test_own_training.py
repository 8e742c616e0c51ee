"""Evolving for your own training from the command line: any data source, the spec's flags, --device."""
import json

import numpy as np
import pytest
import torch

from deap_mln.cli import main
from deap_mln.cli.main import PREFIX
from deap_mln.saved_losses import load_saved_loss, read_record

TINY_SPEC = ["--model", "mlp3", "--spec-steps", "40", "--spec-batch-size", "32", "--fraction", "0.25"]


@pytest.fixture
def iris_like(tmp_path):
    """A CSV with a header, class-name labels in a column named species (not the last)."""
    rng = np.random.default_rng(0)
    names = ["setosa", "versicolor", "virginica"]
    lines = ["a,b,species,c"]
    for i in range(90):
        x = rng.normal(size=3) + 2 * (i % 3)
        lines.append(f"{x[0]:.3f},{x[1]:.3f},{names[i % 3]},{x[2]:.3f}")
    path = tmp_path / "iris.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_evolve_taylor_on_a_csv_with_class_names_keeps_them(tmp_path, iris_like, capsys):
    out = tmp_path / "tg"
    argv = ["evolve-taylor", "--data", f"csv:{iris_like}", "--label", "species", "--generations", "2", "--lambda", "4",
            "--out", str(out), "--quiet", *TINY_SPEC]
    assert main(argv) == 0
    data = json.loads((out / "data.json").read_text())
    assert data["class_names"] == ["setosa", "versicolor", "virginica"] and "never read" in data["test_part"]
    config = json.loads((out / "config.json").read_text())
    assert config["fitness_training"] == "faithful" and config["data_label"] == "species"
    assert read_record(out / "best_loss.pt")["metadata"]["class_names"] == ["setosa", "versicolor", "virginica"]
    loss = load_saved_loss(out / "best_loss.pt")
    assert torch.isfinite(loss(torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1])))


@pytest.mark.slow
def test_evolve_gp_on_an_npz_file(tmp_path, capsys):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(120, 4)), np.arange(120) % 3
    x[:, 0] += 2 * y
    np.savez(tmp_path / "d.npz", x=x, y=y)
    out = tmp_path / "gp"
    assert main(["evolve-gp", "--data", f"npz:{tmp_path / 'd.npz'}", "--generations", "2", "--population", "6",
                 "--tournament-size", "4", "--top-n", "2", "--steps", "20", "--out", str(out), "--quiet"]) == 0
    assert (out / "best_loss.pt").is_file() and "validation accuracy" in capsys.readouterr().out


MLN_TINY = ["--mu", "2", "--lambda", "2", "--generations", "1", "--hidden", "8,8", "--validation-tasks", "1",
            "--validation-top", "1", "--test-tasks", "1", "--quiet", *TINY_SPEC]


@pytest.mark.slow
def test_evolve_an_mln_for_sgd_training_scores_on_the_held_out_part(tmp_path):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(200, 5)), np.arange(200) % 2
    x[:, 0] += 2 * y
    np.savez(tmp_path / "d.npz", x=x, y=y)
    out = tmp_path / "mln"
    assert main(["evolve", "--data", f"npz:{tmp_path / 'd.npz'}", "--optimizer", "sgd", "--out", str(out), *MLN_TINY]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["fitness_training"] == "faithful" and config["optimizer"] == "sgd"
    scores = json.loads((out / "scores.json").read_text())
    assert "held-out part" in scores["data"]["test"] and 0.5 < scores["kept"]["test"] <= 1


@pytest.mark.slow
def test_evolve_an_mln_on_mnist1d_saves_a_loss(tmp_path):
    out = tmp_path / "mln"
    assert main(["evolve", "--data", "mnist1d", "--model", "mlp3", "--optimizer", "sgd", "--out", str(out), *MLN_TINY]) == 0
    assert load_saved_loss(out / "best_loss.pt") is not None


@pytest.mark.parametrize("argv", [
    ["evolve", "--data", "digits", "--model", "mlp3", "--device", "cuda"],
    ["evolve-gp", "--data", "digits", "--fitness-training", "faithful", "--device", "cuda"],
    ["evolve-taylor", "--data", "digits", "--fitness-training", "faithful", "--device", "cuda:0"],
    ["meta-test", "--loss", "ce", "--data", "digits", "--device", "cuda"],
])
def test_a_device_without_cuda_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(PREFIX) and "CUDA is not available here" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_device_with_the_brief_fitness_is_refused(tmp_path, capsys):
    assert main(["evolve-gp", "--data", "digits", "--device", "cpu:1", "--out", str(tmp_path / "r")]) == 2
    assert main(["evolve-taylor", "--data", "digits", "--device", "mps", "--out", str(tmp_path / "r")]) == 2


@pytest.mark.parametrize("argv, message", [
    (["evolve-taylor", "--data", "iris"], "unknown data source 'iris'"),
    (["evolve-gp", "--data", "csv:/no/such.csv"], "no such CSV file"),
    (["meta-test", "--loss", "ce", "--data", "digits", "--label", "y"], "names a CSV file's label column"),
])
def test_bad_data_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(PREFIX) and message in err and err.count("\n") == 1
