"""League v2's aggregation (benchmarks/league_v2.py) on hand-made job facts: pairing by seed, the
comparisons with CE and with tuned label smoothing Holm-adjusted within a cell, transfer rows, the
shape of league.json and the target."""
from __future__ import annotations

import itertools
import json
import random
import shutil
import statistics
from pathlib import Path

import pytest

from deap_mln.io import read_json, write_json
from deap_mln.stats import holm_adjust
from tests.conftest import benchmark_module

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SEEDS = list(range(10))                  # 10 pairs: sign-flip p down to 2/1024, room for Holm
CE = [40 + s for s in SEEDS]             # accuracies in 64ths: sums of differences are exact
# gains over CE by seed, per row, in the cell digits/adam
GAIN = {
    "ls-tuned": [1] * 10,
    "ls": [1, 0, 1, 0, 1, 0, 1, 0, 1, 0],
    "gp": [3] * 10,                       # beats CE and ls-tuned on every seed
    "mln-hybrid": [3] * 8 + [-1, -1],     # beats CE, not ls-tuned; its interval vs gp reaches 0
    "mln-universal": [-1] * 10,
    "gp<-mnist1d": [0, 1, 0, -1, 0, 1, 0, -1, 0, 0],
}
KINDS = {"ls-tuned": "reference", "ls": "reference", "ce": "reference", "gp": "evolved", "mln-hybrid": "evolved",
         "mln-universal": "universal", "gp<-mnist1d": "transfer"}


@pytest.fixture(scope="module")
def lv2():
    with benchmark_module("league_v2") as module:
        yield module


def accuracy(gain: dict[str, list[int]], row: str, seed: int) -> float:
    return (CE[seed] + (gain[row][seed] if row != "ce" else 0)) / 64


def evolution(lv2, family: str, cell: str | None, seed: int, trainings: int = 300) -> dict:
    dataset, optimizer = cell.split("/") if cell else (None, None)
    search = lv2.Evolution(family, seed, dataset, optimizer, 30, 500, 1e-3)
    facts = dict(trainings=trainings, trainings_by_kind=dict(fitness=trainings), cpu_seconds=20.0 + seed,
                 wall_seconds=25.0, loss_sha256="0" * 64, git_commit="b" * 40, git_dirty=[])
    if cell:
        facts["spec_trainings"] = trainings * 0.1
    return dict(identity=search.identity(), **facts)


def meta_test(lv2, row: str, cell: str, seeds: list[int], gain: dict, source: dict | None = None) -> dict:
    dataset, optimizer = cell.split("/")
    kind = KINDS[row]
    search = None if source is None else lv2.evolution_of(source["identity"])
    test = lv2.MetaTest(row, kind, dataset, optimizer, tuple(seeds), 500, loss=row if kind == "reference" else "",
                        source=search)
    return dict(identity=test.identity(), label=row, lr=1e-3, at_edge=False, check_failed=False, warmed_up=True,
                accuracy={str(s): accuracy(gain, row, s) for s in reversed(seeds)}, seconds_per_run=1.0,
                warnings=[], seconds=5.0, tuning={}, loss_sha256=None, cpu_seconds=4.0, git_commit="a" * 40,
                git_dirty=[])


def hand_made_jobs(lv2, cell: str = "digits/adam", gain: dict | None = None) -> list[dict]:
    """References in one job each (all seeds); evolved, universal and transfer rows one job per seed."""
    gain = gain or GAIN
    jobs = [meta_test(lv2, name, cell, SEEDS, gain) for name in ("ce", "ls", "ls-tuned")]
    _, optimizer = cell.split("/")
    for s in SEEDS:
        searches = {"gp": evolution(lv2, "gp", cell, s, 300 - s), "mln-hybrid": evolution(lv2, "mln-hybrid", cell, s),
                    "mln-universal": evolution(lv2, "mln-universal", None, s, 600),
                    "gp<-mnist1d": evolution(lv2, "gp", f"mnist1d/{optimizer}", s, 290)}
        for row, search in searches.items():
            jobs += [search, meta_test(lv2, row, cell, [s], gain, search)]
    return jobs


def cells(lv2, jobs, names=("digits/adam",), seeds=SEEDS) -> list[dict]:
    return lv2.cell_tables(jobs, list(names), seeds)


def rows_by_name(lv2, jobs, cell: str = "digits/adam") -> dict[str, dict]:
    entry = next(c for c in cells(lv2, jobs, (cell,)) if f"{c['dataset']}/{c['optimizer']}" == cell)
    return {r["loss"]: r for r in entry["rows"]}


def sign_flip_p(differences: list[int]) -> float:
    """The exact two-sided sign-flip p, by enumerating the patterns (zero differences dropped)."""
    d = [x for x in differences if x != 0]
    patterns = list(itertools.product((-1, 1), repeat=len(d)))
    return sum(abs(sum(s * x for s, x in zip(signs, d))) >= abs(sum(d)) for signs in patterns) / len(patterns)


def test_rows_are_paired_by_seed_whatever_the_order_of_jobs_and_seeds(lv2):
    jobs = hand_made_jobs(lv2)
    reference = json.dumps(lv2.json_safe(cells(lv2, jobs)), sort_keys=True)
    for shuffle_seed in range(3):
        shuffled = list(jobs)
        random.Random(shuffle_seed).shuffle(shuffled)
        seeds = random.Random(shuffle_seed).sample(SEEDS, len(SEEDS))
        assert json.dumps(lv2.json_safe(cells(lv2, shuffled, seeds=seeds)), sort_keys=True) == reference
    rows = rows_by_name(lv2, jobs)
    assert rows["gp"]["accuracy"] == [accuracy(GAIN, "gp", s) for s in SEEDS]
    assert rows["ce"]["accuracy"] == [c / 64 for c in CE]
    assert {r["loss"]: r["kind"] for r in rows.values()} == KINDS


def test_both_comparisons_are_holm_adjusted_within_the_cell(lv2):
    rows = rows_by_name(lv2, hand_made_jobs(lv2))
    for key, base in (("vs_ce", "ce"), ("vs_ls_tuned", "ls-tuned")):
        others = [name for name in rows if name != base]
        differences = {name: [round(64 * (a - b)) for a, b in zip(rows[name]["accuracy"], rows[base]["accuracy"])]
                       for name in others}
        p = {name: sign_flip_p(d) for name, d in differences.items()}
        adjusted = dict(zip(others, holm_adjust([p[name] for name in others])))
        for name in others:
            assert rows[name][key]["diff"] == pytest.approx(sum(differences[name]) / 64 / len(SEEDS))
            assert rows[name][key]["p"] == pytest.approx(p[name])
            assert rows[name][key]["p_holm"] == pytest.approx(adjusted[name])
        assert rows[base][key]["diff"] == 0 and rows[base][key]["p_holm"] != rows[base][key]["p_holm"]  # nan: itself
    assert rows["gp"]["vs_ce"]["p"] == 2 / 1024 and rows["gp"]["vs_ls_tuned"]["diff"] == pytest.approx(2 / 64)
    assert rows["gp"]["vs_ce"]["p_holm"] == pytest.approx(min(1.0, 6 * 2 / 1024))  # smallest of 6 rows
    assert rows["ls"]["vs_ls_tuned"]["diff"] == pytest.approx(-0.5 / 64)


def test_another_cell_changes_nothing_in_this_one(lv2):
    alone = rows_by_name(lv2, hand_made_jobs(lv2))
    shifted = {row: [g + 2 for g in gain] for row, gain in GAIN.items()}
    both = hand_made_jobs(lv2) + hand_made_jobs(lv2, "mnist/sgd", shifted)
    entries = cells(lv2, both, ("digits/adam", "mnist/sgd"))
    assert [(c["dataset"], c["optimizer"]) for c in entries] == [("digits", "adam"), ("mnist", "sgd")]
    together = {r["loss"]: r for r in entries[0]["rows"]}
    for name, row in alone.items():
        assert together[name]["vs_ce"] == row["vs_ce"] and together[name]["vs_ls_tuned"] == row["vs_ls_tuned"]
    assert {r["loss"]: r for r in entries[1]["rows"]}["ls"]["vs_ce"]["diff"] == pytest.approx(2.5 / 64)


def test_search_costs_and_sources_come_with_the_evolved_rows(lv2):
    rows = rows_by_name(lv2, hand_made_jobs(lv2))
    assert rows["gp"]["trainings"] == pytest.approx(300 - 4.5) and rows["gp"]["spec_trainings"] == pytest.approx(29.55)
    assert rows["gp"]["search_cpu_seconds"] == pytest.approx(24.5)
    assert (rows["gp<-mnist1d"]["family"], rows["gp<-mnist1d"]["source"]) == ("gp", "mnist1d")
    assert rows["gp<-mnist1d"]["trainings"] == 290
    assert rows["mln-universal"]["source"] == "universal" and rows["mln-universal"]["spec_trainings"] is None
    assert "trainings" not in rows["ls"]


def test_a_row_missing_a_seed_is_unfinished_not_a_row(lv2):
    jobs = [j for j in hand_made_jobs(lv2) if not (j["identity"]["job"] == "meta-test"
                                                    and j["identity"]["row"] == "gp" and j["identity"]["seeds"] == [3])]
    entry = cells(lv2, jobs)[0]
    assert entry["unfinished"] == ["gp"] and "gp" not in {r["loss"] for r in entry["rows"]}
    assert not entry["complete"] and cells(lv2, hand_made_jobs(lv2))[0]["complete"]


def test_transfer_rows_are_named_and_planned_from_the_other_data_sets(lv2, tmp_path):
    assert lv2.transfer_row("taylorglo", "mnist1d") == "taylorglo<-mnist1d"
    assert lv2.safe("taylorglo<-mnist1d") == "taylorglo-from-mnist1d"
    plan, layout = lv2.Plan(), lv2.Layout(tmp_path)
    planned = lv2.plan_jobs(plan, layout)
    transfers = lv2.transfer_jobs(plan, layout, "gp", planned)
    assert len(transfers) == len(lv2.CELLS) * len(SEEDS) * 2  # every search they read is planned already
    keys = {job.key for job in planned}
    for job in transfers:
        (need,) = job.needs
        assert need in keys
        _, row, cell, _, seed = job.key.split(" ")
        family, source = row.split("<-")
        dataset, optimizer = cell.split("/")
        assert family == "gp" and source != dataset and need == lv2.evolution_key("gp", f"{source}/{optimizer}", int(seed))
    rows = {job.key.split(" ")[1] for job in transfers if " digits/sgd " in job.key}
    assert rows == {"gp<-mnist1d", "gp<-mnist"}
    assert lv2.count_jobs(plan, layout) == len(planned) + len(transfers)
    everything = lv2.plan_jobs(lv2.Plan(transfer="all"), layout)
    assert sum(" meta-test " in f" {j.key} " and "<-" in j.key for j in everything) == 4 * len(transfers)


def test_the_transfer_family_is_the_best_own_rows_once_all_have_finished(lv2):
    plan = lv2.Plan(cells=("digits/adam", "mnist/adam"), seeds=(0, 1))
    done = {lv2.meta_key(f, c, s): dict(accuracy={str(s): value})
            for f, value in (("mln-hybrid", 0.5), ("mln-es", 0.6), ("gp", 0.7), ("taylorglo", 0.7))
            for c in plan.cells for s in plan.seeds}
    assert lv2.transfer_family(done, plan) == "gp"  # a tie goes to the family listed first
    done.pop(lv2.meta_key("mln-es", "mnist/adam", 1))
    assert lv2.transfer_family(done, plan) is None


def test_json_shape(lv2):
    entry = lv2.json_safe(cells(lv2, hand_made_jobs(lv2)))[0]
    text = json.dumps(entry, allow_nan=False)  # strict JSON: no NaN
    assert {"dataset", "optimizer", "seeds", "rows"} <= set(json.loads(text))
    assert entry["seeds"] == SEEDS
    for row in entry["rows"]:
        assert {"loss", "kind", "mean", "vs_ce", "vs_ls_tuned"} <= set(row)
        for key in ("vs_ce", "vs_ls_tuned"):
            assert {"diff", "p_holm"} <= set(row[key])
    assert entry["rows"][0]["kind"] == "reference"  # references first, then evolved, universal, transfer


def test_target_met_where_an_evolved_loss_wins(lv2):
    jobs = hand_made_jobs(lv2)
    target = lv2.league_target(cells(lv2, jobs))
    (a,), (b,), (c,) = target["a"]["cells"], target["b"]["cells"], target["c"]["cells"]
    assert a["best_evolved"] == "gp" and a["best_fixed"] == "ls-tuned" and a["met"] and target["a"]["met"]
    assert [w["loss"] for w in b["winners"]] == ["gp"] and b["met"] and target["b"]["count"] == 1
    hybrid = rows_by_name(lv2, jobs)["mln-hybrid"]
    assert hybrid["vs_ce"]["p_holm"] < 0.05 and hybrid["vs_ls_tuned"]["p_holm"] > 0.05  # one of the two only
    assert not target["b"]["met"]                            # 1 cell of the 2 needed
    assert c["best_family"] == "gp" and c["ci"][1] >= 0 and c["met"] and not target["c"]["met"]  # 1 of 3


def test_target_not_met_where_the_fixed_loss_wins(lv2):
    gain = dict(GAIN, **{"ls-tuned": [4] * 10, "gp": [1] * 10, "mln-hybrid": [-2] * 10})
    target = lv2.league_target(cells(lv2, hand_made_jobs(lv2, gain=gain)))
    (a,), (b,), (c,) = target["a"]["cells"], target["b"]["cells"], target["c"]["cells"]
    assert a["best_evolved"] == "gp" and a["diff"] == pytest.approx(-3 / 64) and a["p"] == 2 / 1024
    assert not a["met"] and not target["a"]["met"]
    assert b["winners"] == [] and not b["met"]
    assert c["best_family"] == "gp" and c["ci"][1] < 0 and not c["met"]


def test_target_counts_cells(lv2):
    names = ("digits/adam", "digits/sgd", "mnist/adam")
    jobs = [job for cell in names for job in hand_made_jobs(lv2, cell)]
    target = lv2.league_target(cells(lv2, jobs, names))
    assert target["b"]["count"] == 3 and target["b"]["met"]
    assert target["c"]["count"] == 3 and target["c"]["met"] and target["a"]["met"]


def test_report_from_the_job_files_alone(lv2, tmp_path):
    """No work/ directory: league.json, league.md and league.png from the committed job files."""
    layout = lv2.Layout(tmp_path)
    for job in hand_made_jobs(lv2):
        ident = job["identity"]
        if ident["job"] == "evolution":
            path, _ = layout.evolution(lv2.evolution_of(ident))
        else:
            source = None if ident["source"] is None else lv2.evolution_of(ident["source"])
            path, _ = layout.meta_test(lv2.MetaTest(ident["row"], ident["kind"], ident["dataset"], ident["optimizer"],
                                                    tuple(ident["seeds"]), ident["steps"], ident["loss"], source))
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, job)
    plan = lv2.Plan(cells=("digits/adam",), families=("mln-hybrid", "gp"), universal=("mln-universal",))
    result = lv2.write_report(plan, layout, "python benchmarks/league_v2.py --report", None)
    assert not (tmp_path / "work").exists()
    data = json.loads((tmp_path / "league.json").read_text(), parse_constant=lambda name: pytest.fail(name))
    assert data["cells"] == result["cells"] and len(data["cells"]) == 1 and len(data["cells"][0]["rows"]) == 7
    assert data["transfer_families"] == ["gp"] and data["target"]["b"]["count"] == 1
    text = (tmp_path / "league.md").read_text()
    assert "## Target" in text and "| gp<-mnist1d | transfer |" in text and (tmp_path / "league.png").is_file()
    assert read_json(tmp_path / "league.json")["jobs"] == len(hand_made_jobs(lv2))


def test_the_docs_tables_are_the_reports_own(lv2, tmp_path, monkeypatch):
    """benchmarks/doc_tables.py renders league.json through league_v2's formatters: the cell's table
    holds league.md's rows cell for cell, the target and the README sentence its numbers; a cell the
    report lacks says it is not measured."""
    layout = lv2.Layout(tmp_path / "league_v2")
    layout.jobs.mkdir(parents=True)
    for number, job in enumerate(hand_made_jobs(lv2)):  # collect() reads every json under jobs/
        write_json(layout.jobs / f"{number}.json", job)
    plan = lv2.Plan(cells=("digits/adam",), families=("mln-hybrid", "gp"), universal=("mln-universal",))
    lv2.write_report(plan, layout, "python benchmarks/league_v2.py --report", None)
    with benchmark_module("doc_tables") as doc_tables:
        monkeypatch.setattr(doc_tables, "RESULTS", tmp_path)
        table = doc_tables.TABLES["league-v2/digits-adam"].text()
        written = (tmp_path / "league_v2" / "league.md").read_text()
        gp_line = next(line for line in written.splitlines() if line.startswith("| gp | evolved |"))
        gp_row = next(line for line in table.splitlines() if line.startswith("| gp | evolved |"))
        assert gp_row.split(" | ")[:7] == gp_line.split(" | ")[:7]  # loss .. p Holm vs ls-tuned, unchanged
        assert doc_tables.TABLES["league-v2/mnist-sgd"].text().startswith(f"*{doc_tables.NOT_MEASURED}")
        target = doc_tables.TABLES["league-v2/target"].text()
        assert target.startswith("From 10 seeds.") and "(b) " in target and "## Target" not in target
        paragraph = doc_tables.TABLES["league-v2/readme"].text()
        assert f"digits/adam: gp {statistics.mean(accuracy(GAIN, 'gp', s) for s in SEEDS):.3f} against ls-tuned" in paragraph
        assert "beating CE and tuned label smoothing (Holm p < 0.05) in 1 cells (2 wanted), not met" in paragraph
        summary = doc_tables.TABLES["league-v2/summary"].text().splitlines()[2]
        assert summary.startswith(f"| digits/adam | 10 | {statistics.mean(CE) / 64:.4f} | ")
        assert f"| gp {statistics.mean(accuracy(GAIN, 'gp', s) for s in SEEDS):.4f} | +0.0469 (" in summary
        assert "| gp<-mnist1d " in summary and "| mln-universal " in summary
        assert "| digits/adam | 20 |" in doc_tables.TABLES["league-v2/costs"].text()  # 10 seeds x 2 data-driven families


def test_a_kept_loss_file_is_restored_only_if_it_is_the_one_the_job_recorded(lv2, tmp_path):
    job_path, run_dir = tmp_path / "jobs" / "seed-0.json", tmp_path / "work" / "seed-0"
    job_path.parent.mkdir()
    lv2.kept_loss(job_path).write_bytes(b"a loss")
    write_json(job_path, dict(loss_sha256=lv2.sha256(lv2.kept_loss(job_path))))
    assert lv2.restore_loss(job_path, run_dir) and (run_dir / lv2.BEST_LOSS_FILE).read_bytes() == b"a loss"
    lv2.kept_loss(job_path).write_bytes(b"another loss")  # not what the search wrote: evolve it again
    assert not lv2.restore_loss(job_path, tmp_path / "elsewhere")
    assert not lv2.restore_loss(tmp_path / "jobs" / "seed-1.json", tmp_path / "elsewhere")  # nothing kept


def test_commit_jobs_commits_the_job_files_by_path_only(lv2, tmp_path, monkeypatch):
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=tmp_path, capture_output=True, text=True, check=True).stdout

    git("init", "-q")
    git("config", "user.email", "league@example.com")
    git("config", "user.name", "league")
    (tmp_path / "other.txt").write_text("staged by someone else\n")
    git("add", "other.txt")
    monkeypatch.setattr(lv2.harness, "REPO_ROOT", tmp_path)
    layout = lv2.Layout(tmp_path / "benchmarks" / "results" / "league_v2")
    (layout.jobs / "digits-adam" / "references").mkdir(parents=True)
    write_json(layout.jobs / "digits-adam" / "references" / "ce.json", dict(identity={}))
    (layout.work / "runs").mkdir(parents=True)
    (layout.work / "runs" / "big.pt").write_text("not committed\n")
    lv2.commit_jobs(layout)
    committed = git("show", "--name-only", "--format=%s", "HEAD").split()
    assert "benchmarks/results/league_v2/jobs/digits-adam/references/ce.json" in committed
    assert "other.txt" not in committed and not any("work" in name for name in committed)
    assert git("diff", "--cached", "--name-only").split() == ["other.txt"]  # still staged, not committed
    lv2.commit_jobs(layout)  # nothing new: no second commit, no error
    assert len(git("log", "--format=%h").split()) == 1


def test_a_cell_not_finished_fails_part_a(lv2):
    target = lv2.league_target(cells(lv2, hand_made_jobs(lv2), ("digits/adam", "mnist/sgd")))
    assert [c["met"] for c in target["a"]["cells"]] == [True, False] and not target["a"]["met"]
    assert target["a"]["cells"][1]["reason"] == "no rows"


@pytest.mark.slow
def test_a_later_session_meta_tests_a_committed_search_without_evolving_it_again(lv2, tmp_path):
    """A real TaylorGLO search (tiny budget) keeps its loss beside its job file; with its run
    directory gone, as on a fresh machine, the meta-test restores that file and the search's job
    file stays as it was (no ``evolved_again``)."""
    layout = lv2.Layout(tmp_path)
    search = lv2.Evolution("taylorglo", 0, "digits", "adam", budget=1, steps=40, spec_lr=0.01)
    job_path, run_dir = layout.evolution(search)
    facts = lv2.evolution_job(search, job_path, run_dir)
    assert lv2.kept_loss(job_path).read_bytes() == (run_dir / lv2.BEST_LOSS_FILE).read_bytes()
    assert facts["spec_trainings"] <= 1 and facts["trainings"] > 0
    shutil.rmtree(layout.work)
    test = lv2.MetaTest("taylorglo", "evolved", "digits", "adam", (0,), 40, source=search)
    result = lv2.meta_test_job(test, *layout.meta_test(test), job_path, run_dir)
    assert result["loss_sha256"] == facts["loss_sha256"] and 0 < result["accuracy"]["0"] <= 1
    assert read_json(job_path) == facts
