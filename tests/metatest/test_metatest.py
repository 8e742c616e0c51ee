"""Meta-test harness: baseline losses, saved evolved losses, statistics, the CLI end to end."""
from __future__ import annotations

import csv
import math
import re

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from deap_mln.cli import main
from deap_mln.data.datasets import load_dataset
from deap_mln.metatest.baselines import FocalLoss, SoftmaxMSELoss, baseline_loss, resolve_loss
from deap_mln.metatest.report import paired_comparison, summarise_losses, write_report
from deap_mln.metatest.train import LossSpec, MetaTestSettings, RunRecord, evaluation_steps, train_and_evaluate
from deap_mln.mln.network import MetaLossNetwork, MLNLoss, load_loss, module_to_genome, save_loss


@pytest.fixture(scope="module")
def mln_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("loss") / "best_loss.pt"
    save_loss(path, module_to_genome(MetaLossNetwork((8, 8))), (8, 8), {"fitness": -0.1})
    return path


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_baselines_match_their_definitions():
    torch.manual_seed(0)
    logits, target = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    assert torch.allclose(baseline_loss("ce")(logits, target), F.cross_entropy(logits, target))
    assert torch.allclose(FocalLoss(gamma=0)(logits, target), F.cross_entropy(logits, target))
    p = torch.softmax(logits, 1)
    pt = p[torch.arange(6), target]
    assert torch.allclose(baseline_loss("focal")(logits, target), (-(1 - pt) ** 2 * pt.log()).mean())
    # binary MSE: 2 (1 - q)^2 for probability q on the true class
    z = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    q = torch.softmax(z, 1)[torch.arange(2), torch.tensor([1, 0])]
    assert torch.allclose(SoftmaxMSELoss()(z, torch.tensor([1, 0])), (2 * (1 - q) ** 2).mean())
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_loss("hinge")


def test_saved_evolved_loss_is_accepted_as_a_loss(mln_file, tmp_path):
    spec = resolve_loss(str(mln_file), "exact")
    assert spec.mln and isinstance(spec.module, MLNLoss) and spec.label == str(mln_file)
    logits, target = torch.randn(5, 10), torch.randint(0, 10, (5,))
    assert torch.equal(spec.module(logits, target), load_loss(mln_file)(logits, target))
    assert not resolve_loss("ce").mln
    with pytest.raises(FileNotFoundError, match="no such loss file"):
        resolve_loss(str(tmp_path / "missing.pt"))


def test_paired_comparison_picks_the_test_by_number_of_seeds():
    a, b = [0.91, 0.93, 0.90], [0.90, 0.90, 0.90]
    small = paired_comparison(a, b)
    assert small.test == "too few seeds (n = 3 < 5): no test" and math.isnan(small.p_value)
    assert math.isnan(small.ci_low) and math.isnan(small.ci_high)
    assert small.min_p_value == 2 / 4  # the tied third seed has no sign to flip: 2/2^2, not 2/2^3
    assert math.isclose(small.mean_difference, 0.0133333, rel_tol=1e-4) and small.reference == "ce"
    a6, b6 = [0.9, 0.8, 0.85, 0.7, 0.95, 0.6], [0.5, 0.55, 0.5, 0.52, 0.51, 0.4]
    large = paired_comparison(a6, b6)
    assert large.test == "sign-flip (exact)" and math.isclose(large.p_value, 2 / 64)  # all 6 differences positive
    assert 0 < large.ci_low < large.mean_difference < large.ci_high
    # differences +1 -1 +2 0 +3 (x 0.01), sum 5 of 7: as extreme are no flip or a flip of one of the 1s, and mirrors
    mixed = paired_comparison([0.91, 0.89, 0.92, 0.90, 0.93], [0.90] * 5)
    assert mixed.test == "sign-flip (exact)" and math.isclose(mixed.p_value, 6 / 16)
    b5 = [0.9] * 5
    assert paired_comparison(b5, b5).p_value == 1.0 and paired_comparison(b5, b5).test == "identical"
    assert math.isnan(paired_comparison([0.5], [0.4]).p_value)


def _records(accuracies: dict[str, list[float]]) -> list[RunRecord]:
    return [RunRecord(loss, seed, [0, 10], [0.1, acc], False, 1.0)
            for loss, per_seed in accuracies.items() for seed, acc in enumerate(per_seed)]


def test_report_of_three_seeds_prints_no_p_value(tmp_path):
    # one more test error than CE (1,000 test points) on every seed: the old t-test printed p ~ 1e-28
    ce = [0.585, 0.602, 0.571]
    table = write_report(_records({"ce": ce, "mse": [c - 0.001 for c in ce]}), tmp_path, {"model": "mlp3"})
    md = (tmp_path / "summary.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| mse |"))
    assert "| -0.0010 | too few seeds (n = 3 < 5): no test | n/a (n < 5) |" in row and row in table
    assert not re.search(r"\d\.\d+e-\d+", md)  # no p-value in scientific notation anywhere
    assert "too small for a p-value" in md and "2/2^3 = 0.25" in md
    mse = read_csv(tmp_path / "summary.csv")[1]
    assert mse["p_value"] == "" and mse["ci_low"] == "" and mse["ci_high"] == "" and mse["mean_difference"] == "-0.001000"


def test_report_of_six_seeds_shows_interval_and_no_p_below_two_over_two_to_the_n(tmp_path):
    ce = [0.585, 0.602, 0.571, 0.590, 0.600, 0.580]
    write_report(_records({"ce": ce, "mse": [c - 0.001 for c in ce], "focal": [c + 0.01 * (-1) ** i for i, c in
                                                                          enumerate(ce)]}), tmp_path, {})
    rows = {r["loss"]: r for r in read_csv(tmp_path / "summary.csv")}
    assert float(rows["mse"]["p_value"]) == 2 / 64 and rows["mse"]["test"] == "sign-flip (exact)"
    assert float(rows["mse"]["ci_low"]) == float(rows["mse"]["ci_high"]) == -0.001
    assert float(rows["focal"]["p_value"]) == 1.0  # three up, three down by the same amount
    assert float(rows["focal"]["ci_low"]) < 0 < float(rows["focal"]["ci_high"])
    md = (tmp_path / "summary.md").read_text()
    assert "| -0.0010 [-0.0010, -0.0010] | sign-flip (exact) | 0.031 |" in md and "too small" not in md
    for row in rows.values():
        assert row["p_value"] == "" or float(row["p_value"]) >= 2 / 2 ** 6


def test_same_seed_same_start_for_every_loss_and_nan_losses_stop(digits):
    settings = MetaTestSettings(model="perceptron", steps=7, eval_every=3)
    ce = train_and_evaluate(digits, resolve_loss("ce"), 4, settings)
    mse = train_and_evaluate(digits, resolve_loss("mse"), 4, settings)
    assert ce.steps == mse.steps == evaluation_steps(7, 3) == [0, 3, 6, 7]
    assert ce.accuracy[0] == mse.accuracy[0]  # same initial weights
    assert ce.accuracy != mse.accuracy

    class Nan(torch.nn.Module):
        def forward(self, logits, target):
            return logits.sum() * float("nan")

    broken = train_and_evaluate(digits, LossSpec("nan", Nan(), False), 4, settings)
    assert broken.diverged and broken.steps == ce.steps and broken.accuracy == [ce.accuracy[0]] * 4
    summary, = summarise_losses([broken])
    assert summary.diverged == 1


def test_cli_end_to_end_and_deterministic(tmp_path, mln_file, capsys):
    args = ["meta-test", "--loss", "ce", "mse", "focal", str(mln_file), "--model", "mlp3", "--dataset", "digits",
            "--seeds", "2", "--steps", "12", "--eval-every", "4", "--threads", "1", "--quiet"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    table = capsys.readouterr().out
    for name in ("ce", "mse", "focal", str(mln_file)):
        assert re.search(rf"\| {re.escape(name)} \| [0-9.e-]+( \(edge\))? \| 2 \|", table)  # name, tuned rate, runs
    files = {p.name for p in (tmp_path / "a").iterdir()}
    assert {"summary.csv", "summary.md", "per_seed.csv", "curves.csv", "curves.png", "settings.json"} <= files
    assert (tmp_path / "a" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = read_csv(tmp_path / "a" / "summary.csv")
    assert [r["loss"] for r in summary] == ["ce", "mse", "focal", str(mln_file)]
    assert all(float(r["lr"]) > 0 for r in summary)
    edges = [r["loss"] for r in summary if r["lr_at_edge"] == "1"]  # the random MLN learns little in 12 steps
    assert [line.split(":")[1].strip() for line in table.splitlines() if line.endswith("may be understated")] == edges
    assert summary[0]["test"] == "" and summary[1]["reference"] == "ce"
    assert summary[1]["test"] == "too few seeds (n = 2 < 5): no test" and summary[1]["p_value"] == ""
    assert "n/a (n < 5)" in table and "2/2^2 = 0.5" in (tmp_path / "a" / "summary.md").read_text()
    per_seed = read_csv(tmp_path / "a" / "per_seed.csv")
    ce = [float(r["final_accuracy"]) for r in per_seed if r["loss"] == "ce"]
    assert len(per_seed) == 8 and math.isclose(float(summary[0]["mean_accuracy"]), np.mean(ce), abs_tol=1e-6)
    assert re.search(r"\| ce \| [0-9.e-]+ \| 2 \|", (tmp_path / "a" / "summary.md").read_text())
    curves = read_csv(tmp_path / "a" / "curves.csv")
    assert sorted({int(r["step"]) for r in curves}) == [0, 4, 8, 12]

    assert main(args + ["--out", str(tmp_path / "b")]) == 0  # same seeds: the same numbers
    assert (tmp_path / "a" / "curves.csv").read_text() == (tmp_path / "b" / "curves.csv").read_text()
    assert main(args + ["--first-seed", "5", "--out", str(tmp_path / "c")]) == 0
    assert (tmp_path / "a" / "curves.csv").read_text() != (tmp_path / "c" / "curves.csv").read_text()


def test_cli_bad_loss_and_duplicate_loss_exit_2(tmp_path, capsys):
    base = ["meta-test", "--dataset", "digits", "--out", str(tmp_path / "o"), "--quiet", "--loss"]
    assert main(base + ["hinge"]) == 2
    assert "no such loss file" in capsys.readouterr().err
    assert main(base + ["ce", "ce"]) == 2
    assert main(base + ["ce", "--steps", "0"]) == 2
    assert not (tmp_path / "o").exists()


def test_training_learns_the_synthetic_task():
    data = load_dataset("synthetic-linear")
    record = train_and_evaluate(data, resolve_loss("ce"), 0, MetaTestSettings(model="perceptron", steps=600, eval_every=600))
    majority = max(float(data.y_test.float().mean()), 1 - float(data.y_test.float().mean()))
    assert record.final_accuracy > max(0.85, majority + 0.2)
