"""Symbolic losses: the tree language, the functional check, both GP loops, the run directory."""
from __future__ import annotations

import csv
import random

import pytest
import torch
from torch.nn import functional as F

from deap_mln.cli import main
from deap_mln.gp.fitness import FitnessCache, evaluate_expression
from deap_mln.gp.run import evolve_gp, resume_gp
from deap_mln.gp.search import GPConfig, python_random, run_search
from deap_mln.gp.tree import (
    CONSTANT_IN_P,
    FORMAT,
    KNOWN_LOSSES,
    MISSING_VARIABLE,
    NON_FINITE,
    PREFERS_WRONG,
    GPLoss,
    canonical_string,
    check_tree,
    infix_formula,
    loss_from_record,
    loss_record,
    parse_expression,
)
from deap_mln.saved_losses import load_saved_loss, read_record, write_record

# a tiny run: few trees, few generations, 20 training steps on the synthetic task
TINY = dict(dataset="synthetic", population=6, generations=3, tournament_size=4, top_n=3, steps=20, hidden=8)


def logits_and_targets(n=64, k=10, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g) * scale, torch.randint(k, (n,), generator=g)


def test_cross_entropy_tree_equals_torch_cross_entropy():
    logits, target = logits_and_targets()
    logits.requires_grad_(True)
    ours = GPLoss(KNOWN_LOSSES["cross_entropy"])(logits, target)
    (g_ours,) = torch.autograd.grad(ours, logits)
    theirs = F.cross_entropy(logits, target)
    (g_theirs,) = torch.autograd.grad(theirs, logits)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(g_ours, g_theirs)


def test_baikal_and_ngl_match_their_published_formulas():
    logits, target = logits_and_targets(k=5)
    p, y = torch.softmax(logits, 1), F.one_hot(target, 5).float()
    baikal = -(torch.log(p) - y / p).sum(1).mean()       # Gonzalez & Miikkulainen 2020, summed over classes
    ngl = (torch.exp(2.4092 - p - p * y) - torch.cos(torch.cos(torch.sin(p)))).mean()  # authors' NGL_torch.py
    torch.testing.assert_close(GPLoss(KNOWN_LOSSES["baikal"])(logits, target), baikal)
    torch.testing.assert_close(GPLoss(KNOWN_LOSSES["ngl"])(logits, target), 5 * ngl)


def test_reductions_and_batched_shapes():
    logits, target = logits_and_targets(n=7, k=3)
    per_example = GPLoss(KNOWN_LOSSES["squared_error"], reduction="none")(logits, target)
    assert per_example.shape == (7,)
    torch.testing.assert_close(GPLoss(KNOWN_LOSSES["squared_error"], reduction="sum")(logits, target), per_example.sum())
    with pytest.raises(ValueError):
        GPLoss("neg(y)", reduction="max")


def test_text_round_trip_canonical_form_and_formula():
    for expression in KNOWN_LOSSES.values():
        assert str(parse_expression(expression)) == expression
    assert canonical_string(parse_expression("add(p, y)")) == canonical_string(parse_expression("add(y, p)"))
    assert canonical_string(parse_expression("sub(p, y)")) != canonical_string(parse_expression("sub(y, p)"))
    assert infix_formula(parse_expression(KNOWN_LOSSES["cross_entropy"])) == "-(y * log(p))"
    for bad in ("", "add(y)", "neg(y, p)", "__import__", "mul(y, nan)", "y p"):
        with pytest.raises(ValueError):
            parse_expression(bad)


@pytest.mark.parametrize("name", sorted(KNOWN_LOSSES))
def test_known_losses_pass_the_functional_check(name):
    assert check_tree(parse_expression(KNOWN_LOSSES[name]))


@pytest.mark.parametrize("expression, reason", [
    ("plog(p)", MISSING_VARIABLE),                                   # no y
    ("mul(y, 2.0)", MISSING_VARIABLE),                               # no p
    ("mul(pexp(pdiv(y, p)), mul(pexp(pdiv(y, p)), pexp(pdiv(y, p))))", NON_FINITE),  # e^90 overflows float32
    ("add(y, sub(p, p))", CONSTANT_IN_P),                            # has p, but cancels
    ("neg(mul(sub(y, y), p))", CONSTANT_IN_P),
    ("mul(y, p)", PREFERS_WRONG),                                    # rewards the wrong class
    ("neg(mul(y, plog(plog(p))))", PREFERS_WRONG),
])
def test_functional_check_rejects_each_kind_of_bad_tree(expression, reason):
    result = check_tree(parse_expression(expression))
    assert not result and result.reason == reason, result


def test_check_catches_non_finite_gradient_with_finite_values(monkeypatch):
    import deap_mln.gp.tree as gp_module

    class InfiniteSlope(torch.autograd.Function):  # finite loss, infinite gradient
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            return grad * float("inf")

    monkeypatch.setitem(gp_module.PSET.context, "psqrt", InfiniteSlope.apply)
    result = check_tree(parse_expression("neg(mul(y, psqrt(p)))"))
    assert result.reason == NON_FINITE and "gradient" in result.detail


def test_python_random_is_seeded_and_restored():
    random.seed(123)
    expected = random.random()
    random.seed(123)
    with python_random(5, "x"):
        a = random.random()
    assert random.random() == expected
    with python_random(5, "x"):
        assert random.random() == a


def test_cache_never_trains_a_repeated_tree_twice():
    calls = []

    def evaluate(expression):
        calls.append(expression)
        return 0.5

    cache = FitnessCache(evaluate)
    trees = [parse_expression(e) for e in ("add(y, p)", "add(p, y)", "mul(y, p)", "add(y, p)")]
    assert cache.assign(trees) == 2
    assert cache.assign([parse_expression("mul(p, y)")]) == 0
    assert len(calls) == 2 == cache.evaluations and cache.hits == 3
    assert all(t.fitness.values == (0.5,) for t in trees)


def test_search_evaluates_each_distinct_tree_once_and_children_pass_the_check():
    seen = []

    def evaluate(expression):
        seen.append(expression)
        return float(len(expression) % 7) / 7  # any deterministic score

    for algorithm in ("efficiency", "standard"):
        seen.clear()
        state = run_search(GPConfig(algorithm=algorithm, **{**TINY, "generations": 8, "seed": 1}).validate(), evaluate)
        assert len(seen) == len(set(seen)) == state.cache.evaluations
        assert state.cache.evaluations == sum(r["evals"] for r in state.logbook)
        if algorithm == "efficiency":
            assert all(check_tree(t) for t in state.population)


def test_config_rejects_bad_values():
    for bad in (dict(population=0), dict(top_n=9, tournament_size=8), dict(algorithm="random"),
                dict(dataset="iris"), dict(subtree_prob=1.5), dict(tournament_size=30)):
        with pytest.raises(ValueError):
            GPConfig(**bad).validate()


def read_logbook(path):
    with open(path) as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


@pytest.mark.slow
def test_run_is_reproducible_from_its_seed_and_writes_its_directory(tmp_path):
    results = [evolve_gp(GPConfig(seed=3, **TINY), tmp_path / name, progress=None) for name in ("a", "b")]
    files = {p.name for p in (tmp_path / "a").iterdir()}
    assert files == {"config.json", "logbook.csv", "evaluations.csv", "best_formula.txt", "best_loss.pt", "fitness.png",
                     "checkpoint.json", "data.json"}
    assert read_logbook(tmp_path / "a" / "logbook.csv") == read_logbook(tmp_path / "b" / "logbook.csv")
    assert (tmp_path / "a" / "best_formula.txt").read_text() == (tmp_path / "b" / "best_formula.txt").read_text()
    assert str(results[0].best) == str(results[1].best)
    assert len(read_logbook(tmp_path / "a" / "logbook.csv")) == TINY["generations"] + 1
    other = evolve_gp(GPConfig(seed=4, **TINY), tmp_path / "c", progress=None)
    assert [r["best"] for r in other.state.logbook] != [r["best"] for r in results[0].state.logbook] or \
        str(other.best) != str(results[0].best)


@pytest.mark.slow
def test_saved_loss_round_trips_and_trains_a_classifier(tmp_path):
    result = evolve_gp(GPConfig(seed=0, **TINY), tmp_path / "run", progress=None)
    path = tmp_path / "run" / "best_loss.pt"
    record = read_record(path)
    assert record["format"] == FORMAT and record["expression"] == str(result.best)
    assert record["metadata"]["fitness"] == result.best_fitness
    loss = load_saved_loss(path)
    logits, target = logits_and_targets(k=2)
    torch.testing.assert_close(loss(logits, target), GPLoss(result.best)(logits, target))
    assert loss_from_record(record, "none")(logits, target).shape == (64,)
    # the saved loss trains a classifier: it scores the same fitness as during the search
    settings = GPConfig(seed=0, **TINY).training()
    assert evaluate_expression(record["expression"], settings) == result.best_fitness > 0.5


def test_a_saved_known_loss_trains_a_ten_class_classifier(tmp_path):
    path = tmp_path / "baikal.pt"
    write_record(path, loss_record(parse_expression(KNOWN_LOSSES["baikal"]), metadata={"source": "test"}))
    loss = load_saved_loss(path)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(512, 10, generator=g)
    y = (x @ torch.randn(10, 10, generator=g)).argmax(1)    # a linear teacher: learnable labels
    torch.manual_seed(0)
    model = torch.nn.Linear(10, 10)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        loss(model(x), y).backward()
        opt.step()
    assert (model(x).argmax(1) == y).float().mean() > 0.8


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    for argv in (["evolve-gp", "--out", str(tmp_path / "x"), "--population", "0"],
                 ["evolve-gp", "--out", str(tmp_path / "x"), "--dataset", "imagenet"],
                 ["evolve-gp", "--out", str(tmp_path / "x"), "--population", "3"],      # below the tournament size
                 ["evolve-gp", "--out", str(tmp_path / "x"), "--algorithm", "random"],
                 ["evolve-gp"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_cli_runs_prints_the_formula_and_refuses_to_overwrite(tmp_path, capsys):
    argv = ["evolve-gp", "--out", str(tmp_path / "run"), "--dataset", "synthetic", "--population", "6",
            "--generations", "2", "--tournament-size", "4", "--top-n", "2", "--steps", "10", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "best formula: f(y, p) = " in out
    assert main(argv) == 2
    assert "already holds a run" in capsys.readouterr().err


class Interrupt(Exception):
    pass


def interrupt_after(generation):
    """A progress callback that stops the run once ``generation`` is written (like Ctrl-C)."""
    def progress(line):
        if line.startswith(f"gen {generation:>3}"):
            raise Interrupt
    return progress


def read_evaluations(path):
    with open(path) as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["efficiency", "standard"])
def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, algorithm):
    config = GPConfig(seed=2, algorithm=algorithm, **{**TINY, "generations": 5})
    whole = evolve_gp(config, tmp_path / "whole", progress=None)
    with pytest.raises(Interrupt):
        evolve_gp(config, tmp_path / "cut", progress=interrupt_after(2))
    assert not (tmp_path / "cut" / "best_loss.pt").exists()
    resumed = resume_gp(tmp_path / "cut", progress=None)  # its own config.json
    assert read_logbook(tmp_path / "cut" / "logbook.csv") == read_logbook(tmp_path / "whole" / "logbook.csv")
    assert read_evaluations(tmp_path / "cut" / "evaluations.csv") == read_evaluations(tmp_path / "whole" / "evaluations.csv")
    assert [str(t) for t in resumed.state.population] == [str(t) for t in whole.state.population]
    assert str(resumed.best) == str(whole.best) and resumed.best_fitness == whole.best_fitness


def test_resume_errors_are_one_line_and_exit_2(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["evolve-gp", "--out", str(run), "--resume"]) == 2
    assert "no config.json" in capsys.readouterr().err
    run.mkdir()
    GPConfig(**TINY).save(run / "config.json")
    assert main(["evolve-gp", "--out", str(run), "--resume"]) == 2
    assert "no checkpoint.json" in capsys.readouterr().err
    (run / "checkpoint.json").write_text("{truncated")
    assert main(["evolve-gp", "--out", str(run), "--resume"]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    (run / "checkpoint.json").write_text('{"format": "deap_mln.gp_checkpoint/1", "generation": 1}')
    assert main(["evolve-gp", "--out", str(run), "--resume"]) == 2
    assert "not a valid GP checkpoint" in capsys.readouterr().err
    assert main(["evolve-gp", "--out", str(run), "--resume", "--seed", "3"]) == 2
    assert "drop --seed" in capsys.readouterr().err


@pytest.mark.slow
def test_a_process_pool_gives_the_serial_run(tmp_path):
    flags = ["--quiet", "--seed", "1", "--dataset", "synthetic", "--population", "6", "--generations", "3",
             "--tournament-size", "4", "--top-n", "3", "--steps", "20"]
    assert main(["evolve-gp", "--out", str(tmp_path / "serial"), *flags]) == 0
    assert main(["evolve-gp", "--out", str(tmp_path / "pool"), "--workers", "2", *flags]) == 0
    serial, pool = (read_evaluations(tmp_path / name / "evaluations.csv") for name in ("serial", "pool"))
    assert len(serial) > 6 and pool == serial
    assert read_logbook(tmp_path / "pool" / "logbook.csv") == read_logbook(tmp_path / "serial" / "logbook.csv")


@pytest.mark.parametrize("dataset, hidden, expression, validation, test", [
    ("digits", 32, "neg(mul(y, plog(p)))", 0.9740634005763689, 0.9533333333333334),
    ("digits", 0, "mul(sub(p, y), sub(p, y))", 0.9423631123919308, 0.9444444444444444),
    ("synthetic", 32, "neg(sub(plog(p), pdiv(y, p)))", 0.97, 0.961),
    ("digits", 32, "pdiv(1.0, sub(p, p))", 0.06051873198847262, 0.09333333333333334),
])
def test_fitness_is_bit_for_bit_what_it_was_before_the_training_was_shared(dataset, hidden, expression, validation,
                                                                           test):
    # measured with the GP wing's own nn.Module loop, before data/brief_training.py trained for both wings
    from deap_mln.gp.fitness import TrainingSettings, test_accuracy  # imported here: pytest would collect test_accuracy

    settings = TrainingSettings(dataset=dataset, hidden=hidden, seed=3)
    assert (evaluate_expression(expression, settings), test_accuracy(expression, settings)) == (validation, test)
