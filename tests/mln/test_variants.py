import csv
import json

import numpy as np
import pytest

from deap_mln.cli import main
from deap_mln.mln.variants import VARIANTS, compare_variants, evaluations_to_reach, job_config, summarise_variants


def test_variants_differ_only_in_their_overrides_and_share_the_budget():
    configs = {v: job_config("quick", v, seed=3) for v in VARIANTS}
    base = configs["hybrid"].to_dict()
    for v, c in configs.items():
        changed = {k for k, val in c.to_dict().items() if base[k] != val}
        assert changed <= set(VARIANTS[v]) and (v == "hybrid" or changed)
        assert (c.generations, c.mu, c.lambda_, c.seed, c.patience) == (20, 25, 25, 3, 0)


def test_evaluations_to_reach():
    result = {"best": [-0.5, -0.2, -0.05, -0.01], "evals": [25, 75, 125, 175]}
    assert evaluations_to_reach(result, -0.1) == 125
    assert evaluations_to_reach(result, -0.5) == 25
    assert evaluations_to_reach(result, 0.0) is None


def test_summary_compares_each_variant_with_the_hybrid():
    results = [dict(variant=v, seed=s, best=[-1.0, b], evals=[4, 12], failed=0, final_best=b, seconds=1.0,
                    held_out_fitness=b, held_out_accuracy=0.5 + b)
               for s in range(6) for v, b in (("hybrid", -0.1 + s * 0.001), ("es", -0.3 + s * 0.001))]
    report = summarise_variants(results, ["hybrid", "es"], threshold=-0.2)
    assert report["summary"]["hybrid"]["reached_threshold"] == "6/6"
    assert report["summary"]["es"]["reached_threshold"] == "0/6"
    assert report["reference"] == "hybrid"
    es = report["comparisons"]["es"]["held_out_fitness"]
    # six pairs, every one worse by 0.2: the smallest p six pairs can give, and the exact difference
    assert es["a12"] == 0.0 and es["p_value"] == pytest.approx(2 / 2**6)
    assert es["mean_difference"] == pytest.approx(-0.2) and es["ci_low"] == pytest.approx(-0.2)
    few = summarise_variants([r for r in results if r["seed"] < 3], ["hybrid", "es"], threshold=-0.2)
    assert np.isnan(few["comparisons"]["es"]["held_out_fitness"]["p_value"])  # 3 seeds: no p-value


@pytest.mark.slow
def test_bench_writes_its_outputs_and_resumes_from_partial_results(tmp_path):
    out = tmp_path / "bench"
    report = compare_variants(["hybrid", "es", "hybrid-fixed-sigma", "hybrid-no-update"], 2, "smoke", out, progress=None)
    for name in ("bench.json", "report.md", "convergence.png", "final_fitness.png"):
        assert (out / name).is_file()
    assert len(report["results"]) == 8 + 2 * 3  # 4 variants and CE, MSE, focal, 2 seeds each
    evolved = [r for r in report["results"] if not r.get("reference_loss")]
    assert {tuple(r["evals"]) for r in evolved} == {(4, 12, 20)}  # same evaluations for all
    assert all("held_out_fitness_single_measurement" in r and r["run_scores"]["kept"]["selected_by"] == "validation"
               for r in evolved)
    saved = json.loads((out / "bench.json").read_text())
    assert set(saved["comparisons"]) == {"es", "hybrid-fixed-sigma", "hybrid-no-update", "ce", "mse", "focal"}
    assert saved["summary"]["ce"]["reference_loss"] and not saved["summary"]["es"]["reference_loss"]
    assert "| ce (reference loss) | 2 |" in (out / "report.md").read_text()
    # without adaptation sigma stays at its initial value; with it, it moves
    for variant, fixed in (("hybrid-fixed-sigma", True), ("hybrid", False)):
        with open(out / "runs" / f"{variant}-seed0" / "logbook.csv") as f:
            sigmas = [float(row["sigma_max"]) for row in csv.DictReader(f)] + \
                     [float(row["sigma_min"]) for row in csv.DictReader(open(f.name))]
        assert all(s == pytest.approx(0.01, rel=1e-12) for s in sigmas) is fixed

    done = out / "runs" / "es-seed1" / "result.json"
    stamp = done.stat().st_mtime_ns
    (out / "runs" / "hybrid-seed1" / "result.json").unlink()  # as if interrupted during this job
    again = compare_variants(["hybrid", "es", "hybrid-fixed-sigma", "hybrid-no-update"], 2, "smoke", out, progress=None)
    assert done.stat().st_mtime_ns == stamp  # finished jobs are not run again
    drop_time = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]
    assert drop_time(again["results"]) == drop_time(report["results"])  # the re-run job gives the same numbers


def test_bench_cli_rejects_unknown_variants(tmp_path, capsys):
    assert main(["bench", "--variants", "hybrid", "sa", "--out", str(tmp_path / "b")]) == 2
    assert "unknown variant 'sa'" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_bench_compares_edl_mutations_on_held_out_ranking(tmp_path):
    from deap_mln.mln import variants as bench

    bench.BUDGETS["edl-smoke"] = ("edl", dict(generations=2, edl_samples=256, edl_pairs=2000), 0.9)
    try:
        report = compare_variants(["es-chaotic", "es"], 2, "edl-smoke", tmp_path, progress=None)
    finally:
        del bench.BUDGETS["edl-smoke"]
    assert report["reference"] == "es-chaotic" and set(report["comparisons"]) == {"es"}
    assert all(0.0 <= r["held_out_fitness"] <= 1.0 and "held_out_accuracy" not in r for r in report["results"])
    assert "| es |" in (tmp_path / "report.md").read_text()


def test_dynamic_update_is_refused_with_the_ranking_fitness():
    with pytest.raises(ValueError, match="dynamic_update"):
        job_config("edl", "hybrid", 0)  # the full hybrid includes the update


def test_bench_runs_the_variants_on_a_data_source_with_the_same_budget_and_says_which(tmp_path, capsys):
    from deap_mln.mln import variants as bench

    bench.BUDGETS["data-smoke"] = ("quick", dict(generations=1, hidden=(8, 8), train_size=300, val_size=200,
                                                 tasks_per_eval=1, mu=4, lambda_=4, chunk_size=4, update_truncation=3,
                                                 task_steps=20, validation_tasks=1, test_tasks=1), -0.1)
    out = tmp_path / "bench"
    try:
        # a result made on synthetic tasks in the same folder is not taken for a digits one
        stale = out / "runs" / "hybrid-seed0" / "result.json"
        stale.parent.mkdir(parents=True)
        stale.write_text(json.dumps({"variant": "hybrid", "seed": 0, "held_out_fitness": 7.0}))
        assert main(["bench", "--variants", "hybrid", "hybrid-no-update", "--seeds", "1", "--budget", "data-smoke",
                     "--data", "digits", "--out", str(out)]) == 0
        for config in (job_config("data-smoke", v, 0, "digits") for v in VARIANTS):
            # one fitness for every variant: the brief training, which the update unrolls
            assert (config.tasks_source, config.generations, config.fitness_training) == ("digits", 1, "brief")
        assert job_config("data-smoke", "hybrid", 0, "digits").dynamic_update  # the hybrid is all of Algorithm 1
        with pytest.raises(ValueError, match="unknown reference loss 'mse' on digits"):
            compare_variants(["hybrid"], 1, "data-smoke", out, data="digits", references=("mse",), progress=None)
    finally:
        del bench.BUDGETS["data-smoke"]
    saved = json.loads((out / "bench.json").read_text())
    assert (saved["data"], saved["threshold"]) == ("digits", 0.9)  # an accuracy threshold on data
    assert {r["variant"] for r in saved["results"]} == {"hybrid", "hybrid-no-update", "ce"}
    # an accuracy, or -1 for a kept loss that fails the 10-class check (a generation of 4 + 4 may keep one)
    assert all(r["data"] == "digits" and (0.0 <= r["held_out_fitness"] <= 1.0 or r["held_out_fitness"] == -1.0)
               for r in saved["results"])
    evolved = [r for r in saved["results"] if not r.get("reference_loss")]
    assert {tuple(r["evals"]) for r in evolved} == {(4, 12)} and all(r["run_scores"]["data"]["source"] == "digits"
                                                                     for r in evolved)
    ce = next(r for r in saved["results"] if r["variant"] == "ce")
    assert ce["held_out_accuracy"] > 0.3  # CE, 20 Adam steps on digits: well above chance (0.1) on the held-out part
    report = (out / "report.md").read_text()
    assert "on `digits`" in report and "held-out part of the training part" in report
    assert report in capsys.readouterr().out


def test_bench_refuses_a_data_source_it_cannot_read(tmp_path, capsys):
    assert main(["bench", "--data", "npz:/nonexistent.npz", "--seeds", "1", "--out", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err.startswith("deap-mln: error:")
    assert not (tmp_path / "b").exists()
