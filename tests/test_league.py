"""The league's aggregation (benchmarks/league.py) on a small hand-made set of job facts, and its
training counts on hand-written run files."""
from __future__ import annotations

import csv
import itertools
import json
import random
from pathlib import Path

import pytest

from deap_mln.io import CONFIG_FILE, EVALUATIONS_FILE, LOGBOOK_FILE, read_json
from deap_mln.stats import holm_adjust
from tests.conftest import benchmark_module, tiny_config

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SEEDS = [0, 1, 2, 3, 4]          # 5: the fewest pairs compare_paired tests
CE = [48, 50, 52, 54, 56]        # accuracies in 64ths: sums of differences are exact
GAIN = {"ls": [1, 2, -1, 3, 1], "gp": [2, 2, 2, 2, 0], "mln-universal": [-1, -1, 1, -2, 0]}


@pytest.fixture(scope="module")
def league():
    with benchmark_module("league") as module:
        yield module


def accuracy(name: str, seed: int) -> float:
    return (CE[seed] + (GAIN[name][seed] if name != "ce" else 0)) / 64


def meta_test(row: str, seeds: list[int], **extra) -> dict:
    facts = dict(job="meta-test", row=row, loss=row, dataset="digits", seeds=seeds, lr=1e-3,
                 accuracy={str(s): accuracy(row, s) for s in reversed(seeds)}, seconds_per_run=1.0 + seeds[0],
                 warnings=[], seconds=10.0, at_edge=False, check_failed=False, warmed_up=True, git_commit="a" * 40,
                 git_dirty=[])
    return facts | extra


def proxy(row: str, seeds: list[int]) -> dict:
    return dict(job="proxy", row=row, loss=row, dataset="digits", seeds=seeds,
                validation={str(s): 0.5 + s / 100 for s in seeds}, test={str(s): 0.6 + s / 100 for s in seeds})


def evolution(family: str, seed: int, by_kind: dict) -> dict:
    return dict(job="evolution", family=family, dataset="digits", seed=seed, trainings=sum(by_kind.values()),
                trainings_by_kind=by_kind, cpu_seconds=5.0 + seed, wall_seconds=6.0, git_commit="b" * 40,
                git_dirty=[" M deap_mln/stats.py"])


def hand_made_jobs() -> list[dict]:
    """CE and label smoothing (one job of 5 seeds each), GP (per data set) and the universal MLN
    (evolved once for all data sets), one evolution and one meta-test job per seed."""
    jobs = [meta_test("ce", SEEDS), meta_test("ls", SEEDS, at_edge=True), proxy("ce", SEEDS), proxy("ls", SEEDS)]
    for s in SEEDS:
        jobs += [evolution("gp", s, dict(fitness=600 - s)),
                 evolution("mln-universal", s, dict(fitness=552, validation=40 + s, update=264)),
                 meta_test("gp", [s], at_edge=s == 3, warnings=["warning: gp: rate at an edge"] if s == 3 else []),
                 meta_test("mln-universal", [s], check_failed=s == 0,
                           warnings=["warning: mln-universal: 10-class check FAILED"] if s == 0 else []),
                 proxy("gp", [s]), proxy("mln-universal", [s])]
    return jobs


def tables(league, jobs, seeds=SEEDS) -> dict:
    return league.league_tables(jobs, ["digits"], ["ce", "ls"], ["gp", "mln-universal"], seeds)


def rows_by_name(league, jobs, seeds=SEEDS) -> dict[str, dict]:
    return {r["name"]: r for r in tables(league, jobs, seeds)["digits"]}


def sign_flip_p(differences: list[int]) -> float:
    """The exact two-sided sign-flip p, by enumerating the patterns (zero differences dropped)."""
    d = [x for x in differences if x != 0]
    patterns = list(itertools.product((-1, 1), repeat=len(d)))
    return sum(abs(sum(s * x for s, x in zip(signs, d))) >= abs(sum(d)) for signs in patterns) / len(patterns)


def test_rows_are_paired_by_seed_whatever_the_order_of_jobs_and_seeds(league):
    jobs = hand_made_jobs()
    reference = json.dumps(tables(league, jobs), sort_keys=True)
    for shuffle_seed in range(3):
        shuffled = list(jobs)
        random.Random(shuffle_seed).shuffle(shuffled)
        seeds = random.Random(shuffle_seed).sample(SEEDS, len(SEEDS))
        assert json.dumps(tables(league, shuffled, seeds), sort_keys=True) == reference
    rows = rows_by_name(league, jobs)
    assert rows["gp"]["accuracy"] == [accuracy("gp", s) for s in SEEDS]
    assert rows["ce"]["accuracy"] == [c / 64 for c in CE]


def test_differences_wins_and_losses_against_ce(league):
    rows = rows_by_name(league, hand_made_jobs())
    for name, gain in GAIN.items():
        assert rows[name]["difference"] == sum(gain) / 64 / len(SEEDS)
        assert rows[name]["wins"] == sum(g > 0 for g in gain) and rows[name]["losses"] == sum(g < 0 for g in gain)
    assert (rows["ls"]["wins"], rows["ls"]["losses"]) == (4, 1) and (rows["gp"]["wins"], rows["gp"]["losses"]) == (4, 0)
    assert rows["ce"]["difference"] == 0 and rows["ce"]["wins"] == rows["ce"]["losses"] == 0
    assert rows["ls"]["kind"] == "reference" and rows["gp"]["kind"] == "evolved"


def test_holm_adjusts_over_every_row_but_ce(league):
    rows = rows_by_name(league, hand_made_jobs())
    p = {name: sign_flip_p(gain) for name, gain in GAIN.items()}
    assert p["gp"] == 2 / 16  # four equal gains and a tie: only the pattern and its mirror are as extreme
    for name in GAIN:
        assert rows[name]["p"] == pytest.approx(p[name])
    adjusted = dict(zip(GAIN, holm_adjust(list(p.values()))))
    for name in GAIN:
        assert rows[name]["p_holm"] == pytest.approx(adjusted[name])
    assert rows["ce"]["p"] != rows["ce"]["p"] and rows["ce"]["p_holm"] != rows["ce"]["p_holm"]  # nan: no test


def test_training_counts_are_means_of_each_run_total(league):
    rows = rows_by_name(league, hand_made_jobs())
    assert rows["gp"]["trainings"] == 598 and rows["gp"]["trainings_by_kind"] == dict(fitness=598, validation=0, update=0)
    assert rows["mln-universal"]["trainings"] == 552 + 42 + 264
    assert rows["mln-universal"]["trainings_by_kind"] == dict(fitness=552, validation=42, update=264)
    assert rows["gp"]["evolution_cpu_seconds"] == 7.0
    assert rows["ls"]["trainings"] is None
    assert league.training_facts(dict(fitness=10, validation=4, update=6)) == dict(
        trainings=20, trainings_by_kind=dict(fitness=10, validation=4, update=6))


def test_seconds_per_run_are_means_over_runs_and_old_jobs_are_marked(league):
    jobs = hand_made_jobs()
    rows = rows_by_name(league, jobs)
    assert rows["ls"]["seconds_per_run"] == 1.0 and rows["gp"]["seconds_per_run"] == 3.0  # 1 + mean seed
    assert rows["gp"]["time_vs_ce"] == 3.0 and all(r["warmed_up"] for r in rows.values())
    old = [{k: v for k, v in j.items() if k not in ("at_edge", "warmed_up")} if j.get("row") == "gp" else j
           for j in jobs if j["job"] != "evolution" or j["family"] != "gp"]
    old += [{k: v for k, v in evolution("gp", s, {}).items() if k != "trainings_by_kind"} | dict(trainings=600)
            for s in SEEDS]
    rows = rows_by_name(league, old)
    assert not rows["gp"]["warmed_up"] and rows["gp"]["at_edge"] == 0 and rows["gp"]["trainings"] == 600
    assert "| 3.00* (3.00x) |" in league.markdown_table(list(rows.values()), len(SEEDS))


def test_markdown_table_holds_every_row_with_its_marks(league):
    rows = list(tables(league, hand_made_jobs())["digits"])
    text = league.markdown_table(rows, len(SEEDS))
    lines = text.splitlines()
    assert len(lines) == 2 + 4
    for name in ("| ce |", "| ls (edge) |", "| gp (edge 1/5) |", "| mln-universal (!) |"):
        assert sum(line.startswith(name) for line in lines) == 1, name
    assert "| 858 (264 upd.) |" in text and "| 598 |" in text
    assert "wins / losses of 5" in lines[0]


def test_commits_that_ran_the_jobs(league):
    commits = league.job_commits(hand_made_jobs() + [proxy("ce", [0])])  # proxies here carry no commit
    assert [(c["git_commit"], c["jobs"]) for c in commits] == [(None, 13), ("a" * 40, 12), ("b" * 40, 10)]
    assert commits[2]["git_dirty"] == [" M deap_mln/stats.py"] and commits[1]["git_dirty"] == []
    assert [c["dirty_jobs"] for c in commits] == [0, 0, 10]
    line = league.commits_line(commits)
    assert "commit aaaaaaaaaa (12 jobs)" in line and "commit bbbbbbbbbb (10 jobs, 10 with uncommitted changes)" in line
    assert "code not recorded (13 jobs)" in line


def test_committed_league_tables_render_as_committed(league):
    """league.json files written by older code still render through today's markdown_table."""
    for folder in ("league", "league_long_fitness"):
        data = read_json(BENCHMARKS / "results" / folder / "league.json")
        committed = (BENCHMARKS / "results" / folder / "league.md").read_text()
        for rows in data["tables"].values():
            assert league.markdown_table(rows, len(data["seeds"])) in committed


# ------------------------------------------------------------------------------ counts from run files


def write_rows(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def mln_run(tmp_path: Path, name: str, rows: list[dict], **config) -> Path:
    run = tmp_path / name
    run.mkdir()
    tiny_config(**config).save(run / CONFIG_FILE)
    write_rows(run / LOGBOOK_FILE, rows)
    return run


LOGBOOK = [dict(gen=0, evals=6, failed=1, validation=0.5, validated=2),
           dict(gen=1, evals=12, failed=3, validation=0.6, validated=1),
           dict(gen=2, evals=12, failed=0, validation=0.6, validated=0)]


def test_mln_counts_fitness_validation_and_dynamic_update_trainings(league, tmp_path):
    binary = league.mln_trainings(mln_run(tmp_path, "binary", LOGBOOK, validation_tasks=4))
    # binary tasks have no check: a failed candidate was trained (and diverged)
    assert binary == dict(fitness=30 * 2, validation=3 * 4, update=2 * 6 * 2)
    kclass = league.mln_trainings(mln_run(tmp_path, "kclass", LOGBOOK, classes=10, validation_tasks=4,
                                          update_rule="normalised"))
    assert kclass == dict(fitness=(30 - 4) * 2, validation=3 * 4, update=2 * 6 * 1)
    without = league.mln_trainings(mln_run(tmp_path, "plain", LOGBOOK, dynamic_update=False))
    assert without["update"] == 0
    ranking = league.mln_trainings(mln_run(tmp_path, "edl", LOGBOOK, fitness="ranking", dynamic_update=False))
    assert ranking == dict(fitness=0, validation=0, update=0)


def test_gp_and_taylorglo_count_only_trained_candidates(league, tmp_path):
    write_rows(tmp_path / EVALUATIONS_FILE, [dict(evaluation=n, fitness=0.5, seconds=n, expression="y") for n in (1, 2, 3)])
    assert league.gp_trainings(tmp_path) == dict(fitness=3)
    write_rows(tmp_path / LOGBOOK_FILE, [dict(gen=0, evals=8, rejected=3), dict(gen=1, evals=8, rejected=0)])
    assert league.taylor_trainings(tmp_path) == dict(fitness=5 + 8)
