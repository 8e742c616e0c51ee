"""Meta-test protocols (tuned, equal, paper), label smoothing, and MLN losses through their compiled table."""
from __future__ import annotations

import csv
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from deap_mln.cli import main
from deap_mln.data.datasets import load_dataset
from deap_mln.metatest import run as run_module
from deap_mln.metatest import train
from deap_mln.metatest.baselines import baseline_loss, resolve_loss
from deap_mln.metatest.report import EDGE_MARK, EDGE_NOTE
from deap_mln.metatest.run import meta_test
from deap_mln.metatest.train import (
    FLAT_RUNGS,
    LR_BOUNDS,
    LR_GRIDS,
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


def test_a_peak_far_outside_the_starting_grid_is_found_and_bracketed():
    up = search_learning_rate(peaked_at(30.0, []))  # Adam's grid ends at 1e-2: 8 rungs up
    assert up.best == 30.0 and up.rates[-3:] == [10.0, 30.0, 100.0] and up.extensions == 8
    assert not up.at_edge and up.stop == "bracketed" and up.edge_reason() == ""
    down = search_learning_rate(peaked_at(1e-5, []), grid=LR_GRIDS["sgd"])  # SGD's starts at 1e-2: 7 rungs down
    assert down.best == 1e-5 and down.rates[:3] == [3e-6, 1e-5, 3e-5] and down.extensions == 7 and not down.at_edge


def test_a_monotone_score_stops_at_the_bound_and_is_flagged():
    upward = search_learning_rate(lambda rate: rate)  # better and better upward
    assert upward.best == upward.rates[-1] == LR_BOUNDS[1] == 1e3 and upward.extensions == 10
    assert upward.at_edge and upward.stop == "bound" and "largest" in upward.edge_reason()
    downward = search_learning_rate(lambda rate: -rate)
    assert downward.best == downward.rates[0] == LR_BOUNDS[0] == 1e-6 and downward.extensions == 4
    assert downward.at_edge and downward.stop == "bound" and "1e-06 is the smallest" in downward.edge_reason()
    narrow = search_learning_rate(lambda rate: rate, bounds=(1e-4, 3e-2))
    assert narrow.rates[-1] == 3e-2 and narrow.extensions == 1 and narrow.at_edge and narrow.to_dict()["stop"] == "bound"
    with pytest.raises(ValueError, match="bounds"):
        search_learning_rate(lambda rate: rate, bounds=(1e-2, 1e-4))


def test_plateaus_ties_and_diverged_rates():
    # every rate the same: ties go down, and FLAT_RUNGS equal rungs in a row end the search, flagged
    flat = search_learning_rate(lambda rate: 0.5)
    assert flat.best == 3e-6 == flat.rates[0] and flat.extensions == FLAT_RUNGS == 3 and flat.stop == "flat"
    assert flat.at_edge and "the last 3 rates added scored exactly the same" in flat.edge_reason()
    # a rise to a plateau: the equal rate above counts as a bracket because the one below is worse
    rise = search_learning_rate(lambda rate: 0.0 if rate < 3e-4 else 1.0)
    assert rise.best == 3e-4 and rise.extensions == 0 and rise.stop == "bracketed"
    top = search_learning_rate(lambda rate: min(rate, 3e-2))  # up to a plateau past the grid's top edge
    assert top.best == 3e-2 and top.rates[-1] == 0.1 and top.extensions == 2 and not top.at_edge
    tie = search_learning_rate(lambda rate: 1.0 if rate in (3e-4, 3e-3) else 0.0)
    assert tie.best == 3e-4 and tie.extensions == 0
    # a better rate after two equal ones restarts the count: 3e-6 beats them, 1e-6 brackets it
    steps = {3e-5: 1.0, 1e-5: 1.0, 3e-6: 2.0, 1e-6: 0.0}
    late = search_learning_rate(lambda rate: steps.get(rate, 1.0 if rate <= 1e-3 else 0.0))
    assert late.best == 3e-6 and late.extensions == 4 and late.stop == "bracketed"
    # NaN (a diverged run) is worse than any number: it brackets, and it is never chosen
    nan_above = search_learning_rate(lambda rate: math.nan if rate >= 1e-2 else rate)
    assert nan_above.best == 3e-3 and nan_above.extensions == 0 and not nan_above.at_edge
    assert nan_above.to_dict()["validation_accuracy"][-1] is None  # JSON has no NaN
    nan_below = search_learning_rate(lambda rate: math.nan if rate <= 1e-4 else 1.0 - rate)
    assert nan_below.best == 3e-4 and nan_below.extensions == 0
    diverged = search_learning_rate(lambda rate: math.nan)  # NaN equals NaN: flat
    assert diverged.stop == "flat" and diverged.best == 3e-6
    with pytest.raises(ValueError, match="at least 3"):
        search_learning_rate(lambda rate: 0.0, grid=[1e-3, 1e-2])


def capped_search(score, grid, max_extensions=3):
    """The search as it was before bracketing (rates, best, at_edge): while the best is an edge
    of the rates tried, score the next rung beyond it, at most 3 times in all."""
    scores = {rate: score(rate) for rate in sorted(set(grid))}
    extensions = 0
    while True:
        rates = sorted(scores)
        best = max(rates, key=lambda rate: scores[rate])
        at_edge = best in (rates[0], rates[-1])
        if not at_edge or extensions == max_extensions:
            return rates, best, at_edge
        beyond = neighbour_rate(best, up=best == rates[-1])
        scores[beyond] = score(beyond)
        extensions += 1


def test_the_search_is_a_superset_of_the_capped_one():
    """Random scores on the ladder (few values, so ties are common): the old capped search's
    rates are the first rates the new one tries, and where it was bracketed the choice is the same."""
    rng = np.random.default_rng(0)
    bracketed = 0
    for trial in range(400):
        values = {k: float(rng.integers(0, 4)) for k in range(-12, 7)}  # rungs 1e-6 ... 1e3
        score = lambda rate, v=values: v[round(2 * math.log10(rate))]  # noqa: E731
        grid = LR_GRIDS["sgd" if trial % 2 else "adam"]
        calls: list[float] = []
        old_calls: list[float] = []
        new = search_learning_rate(lambda rate, c=calls, f=score: c.append(rate) or f(rate), grid)
        old_rates, old_best, old_edge = capped_search(lambda rate, c=old_calls, f=score: c.append(rate) or f(rate), grid)
        assert calls[:len(old_calls)] == old_calls  # the same rates first, in the same order
        if not old_edge:
            bracketed += 1
            assert new.best == old_best and new.rates == old_rates and not new.at_edge
        assert new.at_edge == (new.best in (new.rates[0], new.rates[-1]))
    assert bracketed > 100


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
    with open(tmp_path / "mt" / "summary.csv", newline="") as f:
        assert {row["loss"]: row["lr_at_edge"] for row in csv.DictReader(f)} == {
            loss: str(int(settings["tuning"]["per_loss"][loss]["at_edge"])) for loss in ("ce", "mse")}
    assert settings["tuning"]["lr_bounds"] == list(LR_BOUNDS) and settings["tuning"]["flat_rungs"] == FLAT_RUNGS
    flagged = [loss for loss in ("ce", "mse") if settings["tuning"]["per_loss"][loss]["at_edge"]]
    assert (EDGE_NOTE in (tmp_path / "mt" / "summary.md").read_text()) == bool(flagged)
    assert [line.split(":")[1].strip() for line in result.warnings] == flagged


def test_a_rate_search_that_ends_at_an_edge_is_marked_in_the_table_the_csv_and_the_summary(tmp_path, capsys,
                                                                                        monkeypatch):
    # bounds at the starting grid's edges: a best at either edge cannot be bracketed (5 steps: the largest wins)
    real = run_module.tune_learning_rate
    monkeypatch.setattr(run_module, "tune_learning_rate", lambda *args: real(*args, bounds=(1e-4, 1e-2)))
    out = tmp_path / "edge"
    assert main(["meta-test", "--loss", "ce", "--dataset", "digits", "--model", "perceptron", "--seeds", "1",
                 "--steps", "5", "--tuning-seeds", "1", "--threads", "1", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    search = json.loads((out / "settings.json").read_text())["tuning"]["per_loss"]["ce"]
    assert search["at_edge"] and search["stop"] == "bound" and search["grid"] == list(LR_GRIDS["adam"])
    rate = f"{search['chosen']:g}"
    assert f"| ce | {rate} {EDGE_MARK} | 1 |" in printed
    assert f"warning: ce: {rate} is the " in printed and "its accuracy may be understated" in printed
    md = (out / "summary.md").read_text()
    assert f"| ce | {rate} {EDGE_MARK} | 1 |" in md and EDGE_NOTE in md
    assert md.index(EDGE_MARK + " |") < md.index(EDGE_NOTE)  # the footnote is under the table
    with open(out / "summary.csv", newline="") as f:
        (row,) = csv.DictReader(f)
    assert row["lr"] == rate and row["lr_at_edge"] == "1" and list(row)[:3] == ["loss", "lr", "lr_at_edge"]


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
    with open(tmp_path / protocol / "summary.csv", newline="") as f:
        header = next(csv.reader(f))
    assert "lr" in header and "lr_at_edge" not in header  # no search, no edge to flag
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
