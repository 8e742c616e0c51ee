"""The fidelity benchmark's pure aggregation (benchmarks/fidelity.py) on hand-made numbers:
Spearman with ties, its bootstrap interval, the ceiling, the target and the shape of fidelity.json."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import benchmark_module

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
LOSSES = ["ce", "ls", "mse", "focal", "gp"]
META_SEEDS = [0, 1, 2, 3, 4]
FITNESS_SEEDS = [0, 1, 2]
RESAMPLES = 50       # bootstrap resamples: the intervals are not what these tests check
TRUTH = {"ce": 0.90, "ls": 0.95, "mse": 0.85, "focal": 0.80, "gp": 0.70}   # meta-test means


@pytest.fixture(scope="module")
def fidelity():
    with benchmark_module("fidelity") as module:
        yield module


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


def fitness_facts(fidelity, good: str, seconds: dict[str, float] | None = None) -> dict:
    """Setting ``good`` ranks like TRUTH, every other the other way round; ``seconds[setting]`` CPU
    seconds per training (default 1)."""
    facts: dict = {}
    for k, v in TRUTH.items():
        facts[k] = {}
        for setting in fidelity.PER_LOSS_SETTINGS:
            value = v if setting.name == good else 1 - v
            cpu = (seconds or {}).get(setting.name, 1.0)
            facts[k][setting.name] = dict(values={str(s): value for s in FITNESS_SEEDS},
                                          cpu_seconds={str(s): cpu for s in FITNESS_SEEDS})
    return facts


def test_cell_table_and_the_json_shape(fidelity):
    tables = {}
    for cell, ce_seconds in (("digits/adam", 10.0), ("digits/sgd", 20.0)):
        # the best-ranking setting costs 2 s a training: 0.2 of a meta-test run on adam, too much there
        fitness = fitness_facts(fidelity, good="spec 20%", seconds={"spec 20%": 2.0})
        for k in LOSSES:  # 10% ranks gp third instead of last, seed by seed
            fitness[k]["spec 10%"]["values"] = {str(s): TRUTH[k] + (0.17 if k == "gp" else 0.0) for s in FITNESS_SEEDS}
        tables[cell] = fidelity.cell_table(meta_facts(), fitness, {}, META_SEEDS, FITNESS_SEEDS,
                                           ce_cpu_seconds=ce_seconds, resamples=RESAMPLES)
    rows = {r["setting"]: r for r in tables["digits/adam"]["rows"]}
    assert not any(name.startswith("halving") for name in rows)       # its jobs are missing: no rows
    assert rows["brief"]["spearman"] == pytest.approx(-1.0)
    # one training per loss, and the mean of 3 trainings at 3 times the cost
    assert rows["spec 10%"]["trainings"] == 1 and rows["spec 10%, mean of 3"]["trainings"] == 3
    assert rows["spec 10%"]["spearman"] == pytest.approx(0.7)   # 1 - 6 x 6 / 120: gp moved from last to third
    assert rows["spec 10%"]["cost_fraction"] == pytest.approx(0.1)
    assert rows["spec 10%, mean of 3"]["cost_fraction"] == pytest.approx(0.3)
    assert rows["spec 20%"]["cost_fraction"] == pytest.approx(0.2)
    assert tables["digits/sgd"]["rows"][0]["cost_fraction"] == pytest.approx(0.05)
    assert tables["digits/adam"]["ceiling"] == pytest.approx(1.0)
    summary = fidelity.fidelity_summary(tables)
    # spec 20% ranks perfectly but costs 0.2 on adam; spec 10%, mean of 3 costs 0.3: not eligible
    assert summary["default_setting"]["setting"] == "spec 10%"
    default = json.loads(json.dumps(summary["default"]))
    assert list(default) == list(fidelity.CELLS)
    assert set(default["digits/adam"]) == {"spearman", "cost_fraction", "ceiling"}
    assert default["digits/adam"] == pytest.approx(dict(spearman=0.7, cost_fraction=0.1, ceiling=1.0))
    assert default["mnist/sgd"] is None                # not finished
    assert summary["target_met"]["digits/adam"] is False and summary["target_met_everywhere"] is False


def test_one_training_spearman_is_the_mean_of_each_seeds(fidelity):
    fitness = fitness_facts(fidelity, good="brief")
    # seed 0 ranks perfectly, seed 1 reversed, seed 2 perfectly: single-seed mean 1/3; their mean ranks perfectly
    for k in LOSSES:
        fitness[k]["brief"]["values"]["1"] = 1 - TRUTH[k] * 0.5
    table = fidelity.cell_table(meta_facts(), fitness, {}, META_SEEDS, FITNESS_SEEDS, ce_cpu_seconds=10.0,
                                resamples=RESAMPLES)
    rows = {r["setting"]: r for r in table["rows"]}
    assert rows["brief"]["spearman"] == pytest.approx(1 / 3)
    assert rows["brief, mean of 3"]["spearman"] == pytest.approx(1.0)


def test_halving_values_rank_later_rungs_first(fidelity):
    halving = {str(s): dict(values={"ce": 2.5, "ls": 2.9, "mse": 1.95, "focal": 0.6, "gp": math.nan},
                            cpu_seconds=5.0) for s in FITNESS_SEEDS}
    table = fidelity.cell_table(meta_facts(), fitness_facts(fidelity, "brief"), halving, META_SEEDS,
                                FITNESS_SEEDS, ce_cpu_seconds=10.0, resamples=RESAMPLES)
    row = next(r for r in table["rows"] if r["setting"] == fidelity.HALVING.name)
    assert row["spearman"] == pytest.approx(1.0) and row["trainings"] == 1
    assert row["cost_fraction"] == pytest.approx(5.0 / len(LOSSES) / 10.0)


def test_each_job_divides_by_the_ce_runs_it_timed_itself(fidelity):
    fitness = fitness_facts(fidelity, good="brief")
    for k in LOSSES:
        for setting in fitness[k].values():
            setting["ce_run_cpu_seconds"] = [2.0, 4.0] if k == "gp" else [10.0, 10.0]
    table = fidelity.cell_table(meta_facts(), fitness, {}, META_SEEDS, FITNESS_SEEDS, ce_cpu_seconds=99.0,
                                resamples=RESAMPLES)
    row = next(r for r in table["rows"] if r["setting"] == "brief")
    # 1 CPU s per training: 1/10 for four losses, 1/3 for gp
    assert row["cost_per_training"] == pytest.approx((4 * 0.1 + 1 / 3) / 5)
