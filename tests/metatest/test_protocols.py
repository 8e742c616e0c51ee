"""Meta-test protocols (tuned, equal, paper), label smoothing, and MLN losses through their compiled table."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from deap_mln.cli import main
from deap_mln.data.datasets import load_dataset
from deap_mln.metatest import train
from deap_mln.metatest.baselines import baseline_loss, resolve_loss
from deap_mln.metatest.run import meta_test
from deap_mln.metatest.train import (
    LR_GRIDS,
    MAX_EXTENSIONS,
    TUNING_FIRST_SEED,
    MetaTestSettings,
    neighbour_rate,
    run_meta_test,
    search_learning_rate,
    train_and_evaluate,
    validation_split,
)
from deap_mln.mln.network import MLNLoss, genome_layout, genome_size, save_loss


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def ce_like_mln(tmp_path_factory):
    """A hand-built MLN (hidden 8, 8) whose Eq. 4 term is softplus(-2.5 p_true): it falls as p_true grows."""
    hidden = (8, 8)
    genome = np.zeros(genome_size(hidden), dtype=np.float32)
    for k, layer in enumerate(genome_layout(hidden)):
        weight = np.zeros(layer.weight_shape, dtype=np.float32)
        weight[0, 0] = -40.0 if k == 0 else 1.0  # p_true carried by one unit; the two PReLUs scale it by 1/16
        genome[layer.weight] = weight.ravel()
        if layer.slope is not None:
            genome[layer.slope] = 0.25
    path = tmp_path_factory.mktemp("loss") / "best_loss.pt"
    save_loss(path, genome, hidden, {"fitness": -0.1})
    return path


def rows(x: torch.Tensor) -> list[bytes]:
    return sorted(row.tobytes() for row in x.numpy())


# ---------------------------------------------------------------------------------------------- losses


def test_label_smoothing_equals_torch():
    torch.manual_seed(0)
    logits, target = torch.randn(7, 5), torch.tensor([0, 1, 2, 3, 4, 0, 1])
    expected = F.cross_entropy(logits, target, label_smoothing=0.1)
    assert torch.allclose(baseline_loss("ls")(logits, target), expected)
    spec = resolve_loss("label-smoothing")
    assert spec.label == "ls" and not spec.mln and torch.allclose(spec.module(logits, target), expected)
    assert not torch.allclose(expected, F.cross_entropy(logits, target))


def test_saved_mln_trains_through_its_table_by_default(ce_like_mln):
    table, exact = resolve_loss(str(ce_like_mln)), resolve_loss(str(ce_like_mln), "exact")
    assert table.mln and table.mln_path == "table" and type(table.module).__name__ == "CompiledMLNLoss"
    assert exact.mln and exact.mln_path == "exact" and isinstance(exact.module, MLNLoss)
    logits, target = torch.randn(64, 10), torch.randint(0, 10, (64,))
    assert torch.allclose(table.module(logits, target), exact.module(logits, target), rtol=1e-3)
    assert resolve_loss("ce").mln_path == ""
    with pytest.raises(ValueError, match="unknown MLN path"):
        resolve_loss("ce", "fast")


def test_mln_through_the_table_and_exactly_give_close_accuracies(ce_like_mln, tmp_path):
    runs = {}
    for path in ("table", "exact"):
        result = meta_test([str(ce_like_mln), "ce"], "digits", tmp_path / path, model="perceptron", seeds=2, steps=40,
                           protocol="equal", mln_path=path, threads=1)
        runs[path] = [r.final_accuracy for r in result.records if r.loss == str(ce_like_mln)]
        settings = json.loads((tmp_path / path / "settings.json").read_text())
        assert settings["mln_paths"] == {str(ce_like_mln): path}
    assert min(runs["exact"]) > 0.5  # the hand-built loss learns: the comparison means something
    assert np.allclose(runs["table"], runs["exact"], atol=0.02), runs


# ---------------------------------------------------------------------------------------------- the grid


def test_the_ladder_of_rates():
    assert [neighbour_rate(r, up=True) for r in (1e-4, 3e-4, 1e-2, 0.3)] == [3e-4, 1e-3, 3e-2, 1.0]
    assert [neighbour_rate(r, up=False) for r in (1e-4, 3e-4, 1e-2, 1.0)] == [3e-5, 1e-4, 3e-3, 0.3]


def peaked_at(peak: float, calls: list[float]):
    def score(rate: float) -> float:
        calls.append(rate)
        return -abs(math.log10(rate) - math.log10(peak))
    return score


def test_interior_best_needs_no_extension():
    calls: list[float] = []
    search = search_learning_rate(peaked_at(1e-3, calls))
    assert search.best == 1e-3 and search.extensions == 0 and not search.at_edge
    assert calls == search.rates == list(LR_GRIDS["adam"])


def test_grid_extends_while_the_best_sits_at_an_edge():
    calls: list[float] = []
    up = search_learning_rate(peaked_at(3e-2, calls))
    assert calls[5:] == [3e-2, 1e-1] and up.rates[-3:] == [1e-2, 3e-2, 1e-1]
    assert up.best == 3e-2 and up.extensions == 2 and not up.at_edge
    down = search_learning_rate(peaked_at(1e-5, []))
    assert down.rates[:3] == [3e-6, 1e-5, 3e-5] and down.best == 1e-5 and down.extensions == 3 and not down.at_edge
    assert down.scores == [peaked_at(1e-5, [])(r) for r in down.rates]


def test_extensions_are_bounded_and_ties_go_to_the_smaller_rate():
    forever = search_learning_rate(lambda rate: rate)  # better and better upward
    assert forever.extensions == MAX_EXTENSIONS and forever.at_edge and forever.best == forever.rates[-1] == 0.3
    flat = search_learning_rate(lambda rate: 0.5, max_extensions=1)  # all tied: the smallest, then one step below
    assert flat.best == 3e-5 == flat.rates[0] and flat.extensions == 1 and flat.at_edge
    tie = search_learning_rate(lambda rate: 1.0 if rate in (3e-4, 3e-3) else 0.0)
    assert tie.best == 3e-4 and tie.extensions == 0
    with pytest.raises(ValueError, match="at least 3"):
        search_learning_rate(lambda rate: 0.0, grid=[1e-3, 1e-2])


# ---------------------------------------------------------------------------------------------- protocols


def test_validation_split_is_the_training_split_only(digits):
    split = validation_split(digits, 0)
    assert len(split.y_test) == round(0.2 * len(digits.y_train)) and len(split.y_train) + len(split.y_test) == 1347
    assert rows(torch.cat([split.x_train, split.x_test])) == rows(digits.x_train)
    assert torch.equal(validation_split(digits, 0).x_test, split.x_test)
    assert not torch.equal(validation_split(digits, 1).x_test, split.x_test)


def test_tuned_protocol_picks_the_best_validation_rate_without_reading_the_test_split(digits, tmp_path, monkeypatch):
    seen = []
    real = train.train_and_evaluate

    def spy(data, loss, seed, settings, lr=None):
        seen.append((data, seed, lr))
        return real(data, loss, seed, settings, lr)

    monkeypatch.setattr(train, "train_and_evaluate", spy)
    result = meta_test(["ce", "mse"], "digits", tmp_path / "mt", model="perceptron", seeds=2, steps=15,
                       tuning_seeds=2, threads=1)
    tuning = [(data, seed) for data, seed, _ in seen if seed >= TUNING_FIRST_SEED]
    assert tuning and all(seed < TUNING_FIRST_SEED for _, seed, _ in seen[len(tuning):])
    for data, _ in tuning:  # what tuning trains and scores on is the training split, nothing of the test split
        assert len(data.y_test) == 269 and rows(torch.cat([data.x_train, data.x_test])) == rows(digits.x_train)
    for data, _, _ in seen[len(tuning):]:
        assert torch.equal(data.x_test, digits.x_test) and torch.equal(data.x_train, digits.x_train)

    settings = json.loads((tmp_path / "mt" / "settings.json").read_text())
    assert settings["protocol"] == "tuned" and settings["lr"] is None and settings["tuning"]["tuning_seeds"] == [
        TUNING_FIRST_SEED, TUNING_FIRST_SEED + 1]
    once = MetaTestSettings(model="perceptron", steps=15, eval_every=15)
    split = validation_split(digits, 0)
    for loss in ("ce", "mse"):
        search = settings["tuning"]["per_loss"][loss]
        best = max(search["validation_accuracy"])
        assert search["chosen"] == search["grid"][search["validation_accuracy"].index(best)]  # first: smallest rate
        assert settings["learning_rates"][loss] == search["chosen"]
        again = [real(split, resolve_loss(loss), s, once, search["chosen"]).final_accuracy for s in (TUNING_FIRST_SEED,
                                                                                                       TUNING_FIRST_SEED + 1)]
        assert math.isclose(np.mean(again), best, abs_tol=1e-6)
        assert len(search["grid"]) >= len(LR_GRIDS["adam"])
    rates = settings["learning_rates"]
    assert [lr for _, seed, lr in seen if seed < TUNING_FIRST_SEED] == [rates["ce"]] * 2 + [rates["mse"]] * 2
    assert [(r.loss, r.seed) for r in result.records] == [("ce", 0), ("ce", 1), ("mse", 0), ("mse", 1)]
    assert f"| ce | {settings['learning_rates']['ce']:g} | 2 |" in result.table


@pytest.mark.parametrize("protocol", ["paper", "equal"])
def test_equal_and_paper_protocols_reproduce_the_rule_of_one_or_two_rates(digits, ce_like_mln, tmp_path, protocol):
    losses = ["ce", "mse", str(ce_like_mln)]
    result = meta_test(losses, "digits", tmp_path / protocol, model="perceptron", seeds=2, steps=20, eval_every=5,
                       protocol=protocol, mln_path="exact", lr=2e-3, mln_lr=3e-4, threads=1)
    # the path every meta-test took before protocols: train_and_evaluate's own rule, lr or mln_lr by kind of loss
    old = MetaTestSettings(model="perceptron", steps=20, eval_every=5, lr=2e-3,
                           mln_lr=3e-4 if protocol == "paper" else 2e-3)
    before = run_meta_test([resolve_loss(loss, "exact") for loss in losses], digits, old, [0, 1])
    assert [(r.loss, r.seed, r.steps, r.accuracy) for r in result.records] == [
        (r.loss, r.seed, r.steps, r.accuracy) for r in before]
    assert result.run_info["learning_rates"] == {"ce": 2e-3, "mse": 2e-3,
                                                 str(ce_like_mln): 3e-4 if protocol == "paper" else 2e-3}
    assert result.run_info["tuning"] == {} and result.run_info["mln_paths"] == {str(ce_like_mln): "exact"}
    assert train_and_evaluate(digits, resolve_loss("ce"), 0, old).accuracy == result.records[0].accuracy


def test_cli_protocol_flags(tmp_path, capsys, ce_like_mln):
    base = ["meta-test", "--loss", "ce", "ls", "--dataset", "digits", "--model", "perceptron", "--seeds", "1",
            "--steps", "5", "--threads", "1", "--quiet"]
    assert main(base + ["--protocol", "equal", "--lr", "0.003", "--out", str(tmp_path / "eq")]) == 0
    assert "| ls | 0.003 | 1 |" in capsys.readouterr().out
    assert main(base + ["--loss", str(ce_like_mln), "--protocol", "paper", "--mln-lr", "0.0002", "--exact-mln",
                        "--out", str(tmp_path / "paper")]) == 0
    settings = json.loads((tmp_path / "paper" / "settings.json").read_text())
    assert settings["learning_rates"] == {str(ce_like_mln): 2e-4} and settings["mln_paths"] == {str(ce_like_mln): "exact"}
    capsys.readouterr()
    for bad, message in ((["--protocol", "fair"], "invalid choice: 'fair'"),
                         (["--lr", "1e-3"], "--lr has no effect under --protocol tuned"),
                         (["--protocol", "equal", "--mln-lr", "1e-3"], "--mln-lr has no effect under --protocol equal"),
                         (["--protocol", "paper", "--tuning-seeds", "3"], "--tuning-seeds has no effect"),
                         (["--tuning-seeds", "0"], "expected a positive integer")):
        assert main(base + bad + ["--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "bad").exists()


def test_warm_up_changes_no_number_and_never_reads_the_test_split(digits, monkeypatch):
    settings = MetaTestSettings(model="mlp3", steps=30, batch_size=100, optimizer="adam", lr=1e-3, mln_lr=1e-4,
                                device="cpu", eval_every=10)
    losses = [resolve_loss("ce"), resolve_loss("ls")]
    warmed = train.run_meta_test(losses, digits, settings, [0, 1])
    monkeypatch.setattr(train, "warm_up", lambda *args, **kwargs: None)
    cold = train.run_meta_test(losses, digits, settings, [0, 1])
    assert [(r.loss, r.seed, r.accuracy) for r in warmed] == [(r.loss, r.seed, r.accuracy) for r in cold]
    no_test_split = dataclasses.replace(digits, x_test=None, y_test=None)  # any read of the test split fails
    train.warm_up(no_test_split, losses[0], settings)
