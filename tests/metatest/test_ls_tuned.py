"""ls-tuned: label smoothing whose epsilon is chosen together with its learning rate on the
tuned protocol's validation split."""
from __future__ import annotations

import json
import math

import pytest
import torch

from deap_mln.cli import main
from deap_mln.data.datasets import load_dataset
from deap_mln.metatest import train
from deap_mln.metatest.baselines import (
    LS_TUNED,
    LS_TUNED_EPSILONS,
    baseline_loss,
    is_baseline,
    label_smoothing_spec,
    resolve_loss,
)
from deap_mln.metatest.run import meta_test
from deap_mln.metatest.train import (
    LearningRateSearch,
    MetaTestSettings,
    train_and_evaluate,
    tune_label_smoothing,
)


def test_ls_tuned_is_a_reference_name_without_an_epsilon_of_its_own():
    spec = resolve_loss(LS_TUNED)
    assert spec.label == LS_TUNED and not spec.mln and is_baseline(LS_TUNED)
    with pytest.raises(RuntimeError, match="no epsilon until a meta-test tunes it"):
        baseline_loss(LS_TUNED)(torch.randn(3, 4), torch.tensor([0, 1, 2]))
    chosen = label_smoothing_spec(0.05, LS_TUNED)
    logits, target = torch.randn(5, 4), torch.randint(4, (5,))
    assert chosen.label == LS_TUNED
    assert torch.allclose(chosen.module(logits, target), torch.nn.functional.cross_entropy(logits, target,
                                                                                          label_smoothing=0.05))
    assert resolve_loss("ls").label == "ls" and label_smoothing_spec(0.1).label == "ls"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("ls_tuned") / "mt"
    result = meta_test(["ce", "ls", LS_TUNED], "digits", out, model="perceptron", seeds=1, steps=15, tuning_seeds=1,
                       threads=1)
    return result, json.loads((out / "settings.json").read_text()), out


def test_ls_tuned_records_its_epsilon_and_rate_and_chooses_the_argmax_of_its_validation_scores(tiny):
    result, settings, out = tiny
    smoothing = settings["tuning"]["label_smoothing"]
    assert smoothing["epsilons"] == list(LS_TUNED_EPSILONS)
    assert list(smoothing["per_epsilon"]) == [f"{e:g}" for e in LS_TUNED_EPSILONS]
    tried = [(score, -eps, -rate) for eps in LS_TUNED_EPSILONS
             for rate, score in zip(smoothing["per_epsilon"][f"{eps:g}"]["grid"],
                                    smoothing["per_epsilon"][f"{eps:g}"]["validation_accuracy"])]
    assert len(tried) >= 5 * len(LS_TUNED_EPSILONS)  # each epsilon had its own bracketing rate search
    best, neg_eps, neg_rate = max(tried)  # the highest score; of ties, the smallest epsilon, then the smallest rate
    assert (smoothing["chosen_epsilon"], smoothing["chosen_lr"]) == (-neg_eps, -neg_rate)
    chosen = smoothing["per_epsilon"][f"{smoothing['chosen_epsilon']:g}"]
    assert settings["tuning"]["per_loss"][LS_TUNED] == {**chosen, "epsilon": smoothing["chosen_epsilon"]}
    assert chosen["chosen"] == smoothing["chosen_lr"]
    assert settings["learning_rates"][LS_TUNED] == smoothing["chosen_lr"]
    # the same split, seeds and grid as every other loss: epsilon 0.1 searched exactly as ls was
    assert smoothing["per_epsilon"]["0.1"] == settings["tuning"]["per_loss"]["ls"]

    label = f"{LS_TUNED} (eps {smoothing['chosen_epsilon']:g})"
    assert settings["row_labels"] == {LS_TUNED: label}
    assert f"| {label} | {smoothing['chosen_lr']:g}" in result.table and label in (out / "summary.md").read_text()
    assert LS_TUNED not in settings["loss_checks"]  # a reference loss, as ls


def test_ls_tuned_trains_at_its_chosen_epsilon_and_rate(tiny):
    result, settings, _ = tiny
    smoothing = settings["tuning"]["label_smoothing"]
    (record,) = [r for r in result.records if r.loss == LS_TUNED]
    digits = load_dataset("digits")
    again = train_and_evaluate(digits, label_smoothing_spec(smoothing["chosen_epsilon"], LS_TUNED), 0,
                               MetaTestSettings(model="perceptron", steps=15, eval_every=15), smoothing["chosen_lr"])
    assert math.isclose(again.final_accuracy, record.final_accuracy, abs_tol=1e-9)


def search(best_score: float, rate: float = 1e-3) -> LearningRateSearch:
    return LearningRateSearch([rate / 10, rate, rate * 10], [0.0, best_score, 0.0], rate, 0, False, "bracketed")


@pytest.mark.parametrize("scores, chosen", [
    ({0.02: 0.5, 0.05: 0.7, 0.1: 0.7, 0.2: 0.6, 0.3: 0.1}, 0.05),         # a tie goes to the smaller epsilon
    ({0.02: math.nan, 0.05: 0.1, 0.1: 0.2, 0.2: math.nan, 0.3: 0.3}, 0.3),  # a diverged search is worst
])
def test_the_best_epsilon_wins_and_ties_go_to_the_smaller(monkeypatch, scores, chosen):
    monkeypatch.setattr(train, "tune_learning_rate", lambda data, loss, *rest: search(scores[loss.module.label_smoothing]))
    result = tune_label_smoothing(None, MetaTestSettings(), [0], epsilons=[0.3, 0.1, 0.05, 0.02, 0.2])
    assert result.epsilons == [0.02, 0.05, 0.1, 0.2, 0.3] and result.epsilon == chosen
    assert result.search == result.searches[result.epsilons.index(chosen)]


def test_ls_tuned_needs_the_tuned_protocol(tmp_path, capsys):
    with pytest.raises(ValueError, match="needs the tuned protocol"):
        meta_test([LS_TUNED], "digits", tmp_path / "eq", model="perceptron", seeds=1, steps=2, protocol="equal")
    assert main(["meta-test", "--loss", LS_TUNED, "--dataset", "digits", "--protocol", "paper", "--quiet",
                 "--out", str(tmp_path / "cli")]) == 2
    assert "needs the tuned protocol" in capsys.readouterr().err
