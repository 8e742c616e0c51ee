"""The fidelity benchmark's pure aggregation (benchmarks/fidelity.py) on hand-made numbers:
Spearman with ties, its bootstrap interval, the ceiling, the target and the shape of fidelity.json."""
from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
LOSSES = ["ce", "ls", "mse", "focal", "gp"]
META_SEEDS = [0, 1, 2, 3, 4]
FITNESS_SEEDS = [0, 1, 2]
TRUTH = {"ce": 0.90, "ls": 0.95, "mse": 0.85, "focal": 0.80, "gp": 0.70}   # meta-test means


@pytest.fixture(scope="module")
def fidelity():
    """benchmarks/fidelity.py, imported as the script imports it (``harness`` a top-level module)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("fidelity")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_average_ranks_share_ties(fidelity):
    assert list(fidelity.average_ranks([0.3, 0.1, 0.3, 0.2])) == [3.5, 1.0, 3.5, 2.0]


def test_spearman_on_hand_computed_cases(fidelity):
    assert fidelity.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert fidelity.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks (1, 2, 3, 4) against (1, 3, 2, 4): 1 - 6 * 2 / (4 * 15) = 0.8
    assert fidelity.spearman([0.1, 0.2, 0.3, 0.4], [5, 7, 6, 8]) == pytest.approx(0.8)
    # with ties: Pearson of the average ranks (1.5, 1.5, 3) and (1, 2, 3)
    assert fidelity.spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(math.sqrt(3) / 2)
    assert math.isnan(fidelity.spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError):
        fidelity.spearman([1, 2], [1, 2, 3])


def test_bootstrap_interval_holds_the_estimate_and_is_degenerate_for_a_perfect_ranking(fidelity):
    assert fidelity.bootstrap_spearman([1, 2, 3, 4, 5], [2, 4, 6, 8, 10], resamples=200) == (1.0, 1.0)
    a, b = [1, 2, 3, 4, 5, 6, 7, 8], [2, 1, 4, 3, 6, 5, 8, 7]
    low, high = fidelity.bootstrap_spearman(a, b, resamples=500)
    assert -1 <= low <= fidelity.spearman(a, b) <= high <= 1 and low < high
    assert fidelity.bootstrap_spearman(a, b, resamples=500) == (low, high)   # seeded


def test_ceiling_compares_disjoint_halves_of_the_seeds(fidelity):
    assert fidelity.seed_halves(META_SEEDS) == ([0, 1], [2, 3, 4])
    # seeds 0-1 rank the losses one way, seeds 2-4 the other way
    accuracy = {"a": {0: 0.9, 1: 0.9, 2: 0.1, 3: 0.1, 4: 0.1}, "b": {0: 0.5, 1: 0.5, 2: 0.5, 3: 0.5, 4: 0.5},
                "c": {0: 0.1, 1: 0.1, 2: 0.9, 3: 0.9, 4: 0.9}}
    assert fidelity.ceiling(accuracy, META_SEEDS) == pytest.approx(-1.0)
    agreeing = {k: dict.fromkeys(META_SEEDS, v) for k, v in TRUTH.items()}
    assert fidelity.ceiling(agreeing, META_SEEDS) == pytest.approx(1.0)
    assert fidelity.ceiling_over_splits(agreeing, META_SEEDS) == pytest.approx(1.0)


def test_a_diverged_run_counts_as_accuracy_zero(fidelity):
    assert fidelity.fitness_value([0.8, math.nan, 0.7]) == pytest.approx(0.5)


def test_target_is_spearman_08_or_09_of_a_low_ceiling_at_cost_015(fidelity):
    assert fidelity.meets_target(0.80, 0.15, 0.95)
    assert not fidelity.meets_target(0.79, 0.10, 0.95)
    assert fidelity.meets_target(0.64, 0.10, 0.70)        # 0.9 x 0.70 = 0.63
    assert not fidelity.meets_target(0.62, 0.10, 0.70)
    assert not fidelity.meets_target(0.95, 0.16, 0.95)    # too expensive
    assert not fidelity.meets_target(math.nan, 0.10, 0.95)


def meta_facts(noise: float = 0.0) -> dict:
    """Meta-test facts: each loss's accuracy per seed around TRUTH, JSON-like (seed keys strings)."""
    return {k: dict(lr=1e-3, at_edge=False,
                    accuracy={str(s): v + (noise if s % 2 else -noise) for s in META_SEEDS}) for k, v in TRUTH.items()}


def fitness_facts(fidelity, good: str, bad: str) -> dict:
    """Setting ``good`` ranks like TRUTH; ``bad`` the other way round; 1 CPU s per loss per seed."""
    facts: dict = {}
    for k, v in TRUTH.items():
        facts[k] = {}
        for setting in fidelity.PER_LOSS_SETTINGS:
            value = v if setting.name == good else -v if setting.name == bad else 0.5
            facts[k][setting.name] = dict(values={str(s): value for s in FITNESS_SEEDS},
                                          cpu_seconds={str(s): 1.0 for s in FITNESS_SEEDS})
    return facts


def test_cell_table_and_the_json_shape(fidelity):
    tables = {}
    for cell in ("digits/adam", "digits/sgd"):
        # the best-ranking setting costs 20 / 10 = 2 x a meta-test run: it cannot be the default
        fitness = fitness_facts(fidelity, good="spec 20%", bad="brief")
        for k in LOSSES:
            fitness[k]["spec 10%"]["values"] = {str(s): TRUTH[k] + (0.17 if k == "gp" else 0.0) for s in FITNESS_SEEDS}
        tables[cell] = fidelity.cell_table(meta_facts(), fitness, {}, META_SEEDS, FITNESS_SEEDS,
                                           ce_cpu_seconds=10.0 if cell.endswith("adam") else 20.0)
        for row in tables[cell]["rows"]:
            fitness_cost = 1.0
            assert row["cost_fraction"] == pytest.approx(fitness_cost / tables[cell]["ce_run_cpu_seconds"])
    rows = {r["setting"]: r for r in tables["digits/adam"]["rows"]}
    assert "halving 5% x3" not in rows              # its jobs are missing: no row
    assert rows["brief"]["spearman"] == pytest.approx(-1.0)
    assert rows["spec 10%"]["spearman"] == pytest.approx(0.7)   # gp moved from last to third: 1 - 6 x 6 / 120
    assert tables["digits/adam"]["ceiling"] == pytest.approx(1.0)
    # too expensive everywhere: 20% at cost 0.1 on adam, but the setting must fit in every cell
    for cell, table in tables.items():
        for row in table["rows"]:
            if row["setting"] == "spec 20%":
                row["cost_fraction"] = 0.10 if cell.endswith("adam") else 0.20
    summary = fidelity.fidelity_summary(tables)
    assert summary["default_setting"]["setting"] == "spec 10%"
    default = json.loads(json.dumps(summary["default"]))
    assert list(default) == list(fidelity.CELLS)
    assert set(default["digits/adam"]) == {"spearman", "cost_fraction", "ceiling"}
    assert default["digits/adam"]["spearman"] == pytest.approx(0.7)
    assert default["mnist/sgd"] is None                # not finished
    assert summary["target_met"]["digits/adam"] is False and summary["target_met_everywhere"] is False


def test_halving_values_rank_later_rungs_first(fidelity):
    halving = {str(s): dict(values={"ce": 2.5, "ls": 2.9, "mse": 1.95, "focal": 0.6, "gp": math.nan},
                            cpu_seconds=5.0) for s in FITNESS_SEEDS}
    table = fidelity.cell_table(meta_facts(), fitness_facts(fidelity, "brief", "spec 5%"), halving, META_SEEDS,
                                FITNESS_SEEDS, ce_cpu_seconds=10.0)
    row = next(r for r in table["rows"] if r["setting"] == "halving 5% x3")
    assert row["spearman"] == pytest.approx(1.0)
    assert row["cost_fraction"] == pytest.approx(5.0 / len(LOSSES) / 10.0)
