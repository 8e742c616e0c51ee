"""Throughput of MLN fitness evaluation: reference vs exact-batched vs fast path, SCOOP, scaling.

Run from the repository root (the package installed, e.g. ``pip install -e .``)::

    python benchmarks/throughput.py                 # sections 1-3, about 5 minutes on 2 idle cores
    python benchmarks/throughput.py --paper-run     # + section 4: the paper-preset evolution (minutes)
    python benchmarks/throughput.py --quick         # smoke check of every code path, under a minute

    # what produced benchmarks/results and docs/performance.md:
    python benchmarks/throughput.py --paper-run --paper-run-scoop --paper-run-all-generations \
        --wait-idle 45 --max-load 0.8

    python benchmarks/throughput.py --render-only   # redraw throughput.md and the figure from the JSON

It writes ``throughput.json`` and ``throughput.md`` to ``--out`` (default
``benchmarks/results``; with ``--quick`` a temporary directory, so smoke runs never
overwrite measured results) and the scaling figure to ``--figure`` (default
``docs/figures/scaling.png``; with ``--quick`` next to the JSON).

What it measures, all on this machine in one run, single process and torch on one thread
unless said otherwise (paper settings: ``preset("paper")``, MLN 4-32-64-128-256-512-1 with
175,718 parameters, one task of 50,000 training points: 5,000 SGD steps, batch 100, lr 0.1):

1. seconds per fitness evaluation at paper settings of
   a. ``fitness.reference_fitness`` (one individual, autograd through the MLN, torch.optim.SGD);
   b. ``fitness.population_fitness`` with ``evaluation="exact"`` on one chunk of 25 (also
      the fast path's rank agreement with it at paper settings);
   c. ``fitness.population_fitness`` with the default fast path, 50 individuals in chunks
      of ``config.chunk_size`` (25), as a real generation evaluates them;
   d. one generation's wall time (50 individuals = 2 chunks of 25) mapped with deap_mln's
      SCOOP backend under ``python -m scoop -n 2`` and ``-n 1``, with plain
      ``scoop.futures.map`` under ``-n 2`` (for contrast), with the builtin map in one
      process and with the process pool of 2 (helper: ``benchmarks/scoop_generation.py``).
2. fitness agreement at the quick preset: fast vs exact on 25 random Glorot genomes
   (Spearman rank correlation, largest absolute difference), reference vs exact on 2.
3. scaling of the fast path: seconds per evaluation vs chunk size, task size and MLN width.
4. (``--paper-run``) ``deap-mln evolve --preset paper --seed 0`` as a subprocess: wall time
   and peak memory; with ``--paper-run-scoop`` also the same run under ``python -m scoop -n 2``
   (its logbook must equal the serial one).

Timings depend on the machine and on whatever else runs on it. ``--wait-idle MINUTES`` first
waits (at most that long) for the 1-minute load average to fall below ``--max-load``; each
section records the load average before it and the CPU time that processes outside this
benchmark's process tree used during it (sampled from /proc once a second). That measuring,
the machine facts and the results files come from ``benchmarks/harness.py``.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness
import numpy as np
import torch

from deap_mln.data.synthetic import generation_tasks
from deap_mln.io import LOGBOOK_FILE, read_json, write_text
from deap_mln.mln.config import EvolutionConfig, preset
from deap_mln.mln.fitness import evaluate_chunk, make_chunks, population_fitness, reference_fitness
from deap_mln.mln.network import PAPER_HIDDEN, genome_size
from deap_mln.mln.population_loss import TabulatedMLNLoss
from deap_mln.parallel import single_thread
from deap_mln.plotting import pyplot

HELPER = Path(__file__).resolve().parent / "scoop_generation.py"
LAUNCH = harness.REPO_ROOT / "deap_mln" / "launch.py"

TARGETS = dict(fast_over_reference=100.0, scoop_speedup=1.7, spearman=0.99,
               paper_run_minutes=30.0, paper_run_gib=2.0)

# Sizes of each section: the full benchmark, and a smoke check of the same code paths.
FULL = dict(paper_overrides={}, n_reference=2, n_exact=25, population=50, fast_repeats=3,
            scoop_warmup=2, scoop_repeats=10, agree_population=25, agree_reference=2, agree_overrides={},
            scale_chunks=(5, 10, 25, 50), scale_train=(2_000, 10_000, 50_000),
            scale_hidden=((8, 16), (32, 64, 128), (32, 64, 128, 256, 512)), scale_repeats=2,
            paper_run_args=[])
QUICK = dict(paper_overrides=dict(train_size=2_000, val_size=2_000), n_reference=1, n_exact=2, population=50,
             fast_repeats=1, scoop_warmup=1, scoop_repeats=1, agree_population=6, agree_reference=1,
             agree_overrides=dict(train_size=500, val_size=500, tasks_per_eval=2),
             scale_chunks=(2, 5), scale_train=(1_000, 2_000), scale_hidden=((8, 16), (32, 64, 128)),
             scale_repeats=1, paper_run_args=["--generations", "1", "--train-size", "2000", "--val-size", "2000"])


# ----------------------------------------------------------------------------------------------
# 1. evaluations per second at paper settings


def section_throughput(size: dict, seed: int) -> dict:
    config = preset("paper", seed=seed, **size["paper_overrides"])
    exact_config = dataclasses.replace(config, evaluation="exact")
    genomes = harness.glorot_genomes(config.hidden, size["population"], seed)
    result = dict(load_before=harness.load_average(), config=config.to_dict(), inner_steps=config.inner_steps,
                  genome_size=genome_size(config.hidden))
    with single_thread():
        tasks = generation_tasks(config, 1)  # builds and caches the task pool before any timing

        harness.say(f"1a reference: {size['n_reference']} individuals, {config.inner_steps} steps each")
        ref_fit, ref_sec = [], []
        for g in genomes[:size["n_reference"]]:
            f, s = harness.timed(reference_fitness, g, config, tasks)
            ref_fit.append(f)
            ref_sec.append(s)
            harness.say(f"   {s:.2f} s  fitness {f:.6f}")
        result["reference"] = dict(individuals=len(ref_sec), seconds=ref_sec, fitness=ref_fit,
                                   seconds_per_eval=sum(ref_sec) / len(ref_sec))

        harness.say(f"1b exact batched: {size['n_exact']} individuals together")
        exact_fit, s = harness.timed(population_fitness, genomes[:size["n_exact"]], exact_config, tasks)
        harness.say(f"   {s:.2f} s")
        result["exact"] = dict(individuals=size["n_exact"], seconds=s, fitness=exact_fit.tolist(),
                               seconds_per_eval=s / size["n_exact"])

        harness.say(f"1c fast: {size['population']} individuals in chunks of {config.chunk_size}")
        chunks = make_chunks(list(genomes), config, generation=1)
        fast_runs, fast_fit = [], None
        for _ in range(size["fast_repeats"]):
            tic = time.perf_counter()
            fits = [population_fitness(c.genomes, config, tasks) for c in chunks]
            fast_runs.append(time.perf_counter() - tic)
            fast_fit = np.concatenate(fits)
        via_chunk = []  # the worker entry point: also builds the generation's tasks, as a worker does
        for _ in range(size["fast_repeats"]):
            _, s = harness.timed(lambda: [evaluate_chunk(c) for c in chunks])
            via_chunk.append(s)
        fast_sec = statistics.median(fast_runs)
        harness.say(f"   {fast_sec:.2f} s per {len(genomes)} ({fast_sec / len(genomes) * 1e3:.1f} ms per "
                    f"evaluation); via evaluate_chunk {statistics.median(via_chunk):.2f} s")
        result["fast"] = dict(individuals=len(genomes), chunks=len(chunks), chunk_size=config.chunk_size,
                              seconds=fast_runs, seconds_per_eval=fast_sec / len(genomes),
                              evaluate_chunk_seconds=via_chunk,
                              evaluate_chunk_seconds_per_eval=statistics.median(via_chunk) / len(genomes),
                              fitness_first=fast_fit[:max(size["n_reference"], size["n_exact"])].tolist())

    from scipy.stats import spearmanr

    n_ref, n_ex = size["n_reference"], size["n_exact"]
    result["paper_settings_agreement"] = dict(
        individuals_exact=n_ex, spearman_exact_vs_fast=float(spearmanr(exact_fit, fast_fit[:n_ex]).statistic),
        reference_vs_fast_max_abs=float(np.max(np.abs(np.array(ref_fit) - fast_fit[:n_ref]))),
        exact_vs_fast_max_abs=float(np.max(np.abs(exact_fit - fast_fit[:n_ex]))),
        reference_vs_exact_max_abs=float(np.max(np.abs(np.array(ref_fit) - exact_fit[:n_ref]))))
    ref_rate = result["reference"]["seconds_per_eval"]
    via_chunk_rate = result["fast"]["evaluate_chunk_seconds_per_eval"]
    result["ratios"] = dict(fast_over_reference=ref_rate / result["fast"]["seconds_per_eval"],
                            fast_via_evaluate_chunk_over_reference=ref_rate / via_chunk_rate,
                            exact_over_reference=ref_rate / result["exact"]["seconds_per_eval"])
    result["evals_per_second"] = {k: 1.0 / result[k]["seconds_per_eval"] for k in ("reference", "exact", "fast")}
    return result


def run_helper(argv: list[str], json_path: Path, log_path: Path) -> dict:
    """Run ``scoop_generation.py`` (``argv``), which writes its timings to ``json_path``; those,
    with the helper process's own wall time."""
    seconds = harness.run_logged(argv, log_path)["wall_seconds"]
    record = read_json(json_path)
    record["process_seconds"] = seconds
    return record


def section_scoop(size: dict, seed: int, work: Path) -> dict:
    harness.say("1d generation wall time: builtin map, SCOOP -n 1, SCOOP -n 2 (deap_mln's map and plain "
                "futures.map), process pool of 2")
    common = ["--population", str(size["population"]), "--seed", str(seed), "--warmup", str(size["scoop_warmup"]),
              "--repeats", str(size["scoop_repeats"])]
    if size["paper_overrides"].get("train_size"):
        common += ["--train-size", str(size["paper_overrides"]["train_size"])]
    runs = {}
    for name, prefix in (("builtin", [sys.executable, str(HELPER), "--map", "builtin"]),
                         ("scoop_1", [sys.executable, "-m", "scoop", "-n", "1", str(HELPER)]),
                         ("scoop_2", [sys.executable, "-m", "scoop", "-n", "2", str(HELPER)]),
                         ("scoop_2_futures", [sys.executable, "-m", "scoop", "-n", "2", str(HELPER),
                                              "--map", "scoop-futures"]),
                         ("process_2", [sys.executable, str(HELPER), "--map", "process", "--workers", "2"])):
        json_path = work / f"scoop_{name}.json"
        before = harness.load_average()
        runs[name] = run_helper(prefix + common + ["--json", str(json_path)], json_path, work / f"scoop_{name}.log")
        runs[name]["load_before"] = before
        harness.say(f"   {name}: map seconds {[round(s, 3) for s in runs[name]['seconds']]}, "
                    f"processes per map {runs[name]['processes_per_map']}")
    same = len({tuple(r["fitness"]) for r in runs.values()}) == 1
    med = {k: v["median_seconds"] for k, v in runs.items()}
    mean = {k: statistics.fmean(v["seconds"]) for k, v in runs.items()}
    return dict(runs=runs, identical_fitness=same, median_seconds=med, mean_seconds=mean,
                speedup_2_over_1_worker=med["scoop_1"] / med["scoop_2"],
                speedup_2_over_1_worker_mean=mean["scoop_1"] / mean["scoop_2"],
                speedup_2_over_1_worker_slowest_map=max(runs["scoop_1"]["seconds"]) / max(runs["scoop_2"]["seconds"]),
                speedup_plain_futures_map_over_1_worker=med["scoop_1"] / med["scoop_2_futures"],
                speedup_plain_futures_map_over_1_worker_mean=mean["scoop_1"] / mean["scoop_2_futures"],
                speedup_2_workers_over_builtin=med["builtin"] / med["scoop_2"],
                speedup_process_2_over_builtin=med["builtin"] / med["process_2"])


# ----------------------------------------------------------------------------------------------
# 2. agreement at the quick preset


def section_agreement(size: dict, seed: int) -> dict:
    from scipy.stats import spearmanr

    config = preset("quick", seed=seed, **size["agree_overrides"])
    exact_config = dataclasses.replace(config, evaluation="exact")
    genomes = harness.glorot_genomes(config.hidden, size["agree_population"], seed + 1)
    harness.say(f"2 agreement at quick settings: {len(genomes)} genomes, {config.tasks_per_eval} tasks x "
                f"{config.inner_steps} steps")
    result = dict(load_before=harness.load_average(), config=config.to_dict())
    with single_thread():
        tasks = generation_tasks(config, 1)
        fast, s_fast = harness.timed(population_fitness, genomes, config, tasks)
        exact, s_exact = harness.timed(population_fitness, genomes, exact_config, tasks)
        n_ref = size["agree_reference"]
        ref, s_ref = harness.timed(lambda: np.array([reference_fitness(g, config, tasks) for g in genomes[:n_ref]]))
    rho = spearmanr(fast, exact).statistic
    result.update(population=len(genomes), fast_fitness=fast.tolist(), exact_fitness=exact.tolist(),
                  reference_fitness=ref.tolist(), spearman_fast_vs_exact=float(rho),
                  max_abs_fast_vs_exact=float(np.max(np.abs(fast - exact))),
                  fitness_range=[float(exact.min()), float(exact.max())],
                  reference_individuals=n_ref, max_abs_reference_vs_exact=float(np.max(np.abs(ref - exact[:n_ref]))),
                  seconds=dict(fast=s_fast, exact=s_exact, reference=s_ref))
    harness.say(f"   spearman {rho:.4f}, max |fast - exact| {result['max_abs_fast_vs_exact']:.2e}, "
                f"max |reference - exact| {result['max_abs_reference_vs_exact']:.2e}")
    return result


# ----------------------------------------------------------------------------------------------
# 3. scaling of the fast path


def fast_point(config: EvolutionConfig, population: int, repeats: int, seed: int) -> dict:
    """Seconds per evaluation of one chunk of ``population`` (best of ``repeats``), and its tabulation share."""
    genomes = harness.glorot_genomes(config.hidden, population, seed)
    tasks = generation_tasks(config, 1)
    g = torch.as_tensor(genomes)
    totals, tabs = [], []
    for _ in range(repeats):
        totals.append(harness.timed(population_fitness, genomes, config, tasks)[1])
        tabs.append(harness.timed(TabulatedMLNLoss, g, config.hidden, config.grid_size)[1])
    total, tab = min(totals), min(tabs)
    return dict(population=population, train_size=config.train_size, hidden=list(config.hidden),
                genome_size=genome_size(config.hidden), inner_steps=config.inner_steps,
                seconds=total, seconds_per_eval=total / population, tabulation_seconds=tab)


def section_scaling(size: dict, seed: int) -> dict:
    base = preset("paper", seed=seed, **size["paper_overrides"])
    harness.say("3 scaling of the fast path")
    result = dict(load_before=harness.load_average())
    with single_thread():
        result["chunk_size"] = [fast_point(base, p, size["scale_repeats"], seed) for p in size["scale_chunks"]]
        result["train_size"] = [fast_point(preset("paper", seed=seed, train_size=n, val_size=min(10_000, n)),
                                           base.chunk_size, size["scale_repeats"], seed) for n in size["scale_train"]]
        result["hidden"] = [fast_point(dataclasses.replace(base, hidden=tuple(h)), base.chunk_size,
                                       size["scale_repeats"], seed) for h in size["scale_hidden"]]
    for key in ("chunk_size", "train_size", "hidden"):
        harness.say(f"   vs {key}: " + ", ".join(f"{p['seconds_per_eval'] * 1e3:.1f} ms" for p in result[key]))
    return result


def plot_scaling(scaling: dict, path: Path) -> None:
    plt = pyplot()
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = (("chunk_size", "population", "individuals per chunk (trained together)"),
              ("train_size", "train_size", "training points per task (steps = points / 10)"),
              ("hidden", "genome_size", "MLN parameters"))
    for ax, (key, x_key, label) in zip(axes, panels):
        pts = scaling[key]
        x = [p[x_key] for p in pts]
        per_eval = [p["seconds_per_eval"] * 1e3 for p in pts]
        tab = [p["tabulation_seconds"] / p["population"] * 1e3 for p in pts]
        ax.plot(x, per_eval, "o-", label="whole evaluation")
        ax.plot(x, tab, "s--", label="tabulating the MLN")
        ax.set_xscale("log")
        ax.set_xticks(x)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(label)
        ax.set_ylabel("ms per evaluation")
        ax.set_ylim(bottom=0, top=max(per_eval) * 1.15)
        ax.grid(True, alpha=0.3)
        if key == "hidden":
            for i, p in enumerate(pts):
                name = "paper" if tuple(p["hidden"]) == PAPER_HIDDEN else ",".join(map(str, p["hidden"]))
                align = "left" if i == 0 else "right" if i == len(pts) - 1 else "center"
                ax.annotate(f"hidden {name}", (p["genome_size"], p["seconds_per_eval"] * 1e3),
                            textcoords="offset points", xytext=(0, 6), ha=align, fontsize=7)
    axes[0].legend(fontsize=8)
    base = scaling["chunk_size"][0]
    fig.suptitle(f"Fast path, one process, one thread; seconds per fitness evaluation (others fixed at chunk "
                 f"{scaling['train_size'][0]['population']}, {base['train_size']:,} points, "
                 f"{base['genome_size']:,}-parameter MLN)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------
# 4. the paper-preset run


def run_evolution(argv: list[str], out_dir: Path, log_path: Path) -> dict:
    before = harness.load_average()
    harness.say(f"   $ {' '.join(argv)}   (load before: {before})")
    result = dict(command=" ".join(argv), load_before=before, **harness.run_logged(argv, log_path, measure_memory=True))
    text = log_path.read_text()
    rows = harness.read_csv_rows(out_dir / LOGBOOK_FILE)
    result.update(generations=int(rows[-1]["gen"]), evaluations=sum(int(r["evals"]) for r in rows),
                  best_fitness=float(rows[-1]["best"]),
                  evaluation_seconds=sum(float(r["seconds"]) for r in rows),
                  files=sorted(p.name for p in out_dir.iterdir()))
    result["evals_per_second"] = result["evaluations"] / result["evaluation_seconds"]
    m = re.search(r"best fitness (\S+) after (\d+) generations in ([\d.]+) s", text)
    if m:
        result["reported_seconds"] = float(m.group(3))
    result["logbook"] = [{k: r[k] for k in ("gen", "evals", "best", "mean", "worst", "sigma_mean", "seconds")}
                         for r in rows]
    harness.say(f"   {result['wall_seconds']:.0f} s wall, {result['generations']} generations, "
                f"{result['evaluations']} evaluations, max RSS {result['max_rss_gib']:.2f} GiB "
                f"(process tree {result['peak_tree_rss_gib']:.2f} GiB)")
    return result


def section_paper_run(size: dict, seed: int, work: Path, with_scoop: bool, all_generations: bool) -> dict:
    harness.say("4 paper-preset evolution run")
    deap_mln_cli = shutil.which("deap-mln")
    cli = [deap_mln_cli] if deap_mln_cli else [sys.executable, "-m", "deap_mln"]
    args = ["evolve", "--preset", "paper", "--seed", str(seed)] + size["paper_run_args"]
    if all_generations:  # no convergence stop: every generation of the preset runs
        args += ["--patience", "0"]
    serial_out = work / "paper_serial"
    result = dict(serial=run_evolution(cli + args + ["--out", str(serial_out)], serial_out, work / "paper_serial.log"))
    if with_scoop:
        scoop_out = work / "paper_scoop2"
        result["scoop_2"] = run_evolution([sys.executable, "-m", "scoop", "-n", "2", str(LAUNCH)] + args
                                          + ["--out", str(scoop_out)], scoop_out, work / "paper_scoop2.log")
        strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
        result["scoop_logbook_equals_serial"] = (strip(result["scoop_2"]["logbook"])
                                                 == strip(result["serial"]["logbook"]))
        result["scoop_speedup_wall"] = result["serial"]["wall_seconds"] / result["scoop_2"]["wall_seconds"]
    return result


# ----------------------------------------------------------------------------------------------
# report


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def check(value: float, target: float, higher: bool = True) -> str:
    ok = value >= target if higher else value <= target
    return "yes" if ok else "**no**"


def markdown(report: dict) -> str:
    m, t = report["machine"], report["throughput"]
    settings = "QUICK smoke run, not paper settings" if report["quick"] else "paper settings"
    lines = [f"# Fitness-evaluation throughput ({settings})",
             "",
             f"{harness.machine_line(m)}. Load average before the run: {report['load_before']}. "
             f"Command: `{report['command']}`.",
             "",
             f"MLN {genome_size(tuple(t['config']['hidden'])):,} parameters, one task of {t['config']['train_size']:,} "
             f"training / {t['config']['val_size']:,} validation points, {t['inner_steps']:,} SGD steps "
             f"(batch {t['config']['inner_batch']}, lr {t['config']['inner_lr']}); single process, "
             "torch on one thread.",
             "",
             "| what | individuals | seconds per evaluation | evaluations per second | vs reference | target |",
             "|---|---:|---:|---:|---:|---|"]
    r = t["ratios"]
    lines += [
        f"| reference (`reference_fitness`, autograd, nn.Module, SGD) | {t['reference']['individuals']} | "
        f"{fmt_s(t['reference']['seconds_per_eval'])} | {t['evals_per_second']['reference']:.3f} | 1x | |",
        f"| exact batched (`population_fitness`, evaluation=exact) | {t['exact']['individuals']} | "
        f"{fmt_s(t['exact']['seconds_per_eval'])} | {t['evals_per_second']['exact']:.3f} | "
        f"{r['exact_over_reference']:.2f}x | |",
        f"| fast (`population_fitness`, chunks of {t['fast']['chunk_size']}) | {t['fast']['individuals']} | "
        f"{fmt_s(t['fast']['seconds_per_eval'])} | {t['evals_per_second']['fast']:.1f} | "
        f"**{r['fast_over_reference']:.0f}x** | >= {TARGETS['fast_over_reference']:.0f}x: "
        f"{check(r['fast_over_reference'], TARGETS['fast_over_reference'])} |",
        f"| fast via `evaluate_chunk` (also builds the tasks, as a worker does) | {t['fast']['individuals']} | "
        f"{fmt_s(t['fast']['evaluate_chunk_seconds_per_eval'])} | "
        f"{1 / t['fast']['evaluate_chunk_seconds_per_eval']:.1f} | "
        f"{r['fast_via_evaluate_chunk_over_reference']:.0f}x | |",
        ""]
    a = t["paper_settings_agreement"]
    lines += [f"At these settings, largest |fitness difference|: reference vs fast "
              f"{a['reference_vs_fast_max_abs']:.2e}, exact vs fast {a['exact_vs_fast_max_abs']:.2e}, "
              f"reference vs exact {a['reference_vs_exact_max_abs']:.2e}"
              + (f"; Spearman rank correlation, fast vs exact on {a['individuals_exact']} individuals: "
                 f"**{a['spearman_exact_vs_fast']:.4f}**" if "spearman_exact_vs_fast" in a else "") + ".", ""]
    s = report["scoop"]
    med, runs = s["median_seconds"], s["runs"]
    rows = (("builtin", "builtin `map`, one process", 1),
            ("scoop_1", "deap_mln SCOOP backend (`evaluation_map(\"scoop\")`), `python -m scoop -n 1`", 1),
            ("scoop_2", "deap_mln SCOOP backend (`evaluation_map(\"scoop\")`), `python -m scoop -n 2`", 2),
            ("scoop_2_futures", "plain `scoop.futures.map`, `python -m scoop -n 2` (for contrast)", 2),
            ("process_2", "deap_mln process pool (`evaluation_map(\"process\", 2)`, `--workers 2`)", 2))
    lines += [f"## One generation ({s['runs']['builtin']['population']} individuals = {s['runs']['builtin']['chunks']} "
              f"chunks of {s['runs']['builtin']['chunk_size']}), wall time of the map",
              "",
              "| map | processes | each timed map, seconds | median | speedup over builtin "
              "| processes that ran a chunk, per map |",
              "|---|---:|---|---:|---:|---|"]
    for key, label, procs in rows:
        if key in runs:
            r = runs[key]
            lines.append(f"| {label} | {procs} | {', '.join(f'{x:.2f}' for x in r['seconds'])} | {med[key]:.2f} | "
                         f"{med['builtin'] / med[key]:.2f}x | {', '.join(map(str, r.get('processes_per_map', [])))} |")
    lines += ["",
              f"SCOOP 2 processes over 1: **{s['speedup_2_over_1_worker']:.2f}x** on the median map "
              f"({s.get('speedup_2_over_1_worker_mean', float('nan')):.2f}x on the mean, "
              f"{s.get('speedup_2_over_1_worker_slowest_map', float('nan')):.2f}x on the slowest map; "
              f"target >= {TARGETS['scoop_speedup']}x: "
              f"{check(s['speedup_2_over_1_worker'], TARGETS['scoop_speedup'])}). "
              + (f"Process pool of 2 over the builtin map: {s['speedup_process_2_over_builtin']:.2f}x. "
                 if "speedup_process_2_over_builtin" in s else "")
              + (f"Plain `scoop.futures.map` under -n 2: {s['speedup_plain_futures_map_over_1_worker']:.2f}x "
                 f"on the median, {s['speedup_plain_futures_map_over_1_worker_mean']:.2f}x on the mean "
                 "(see docs/parallel.md for why). "
                 if "speedup_plain_futures_map_over_1_worker" in s else "")
              + f"Fitness values identical across all maps: {'yes' if s['identical_fitness'] else '**no**'}.",
              ""]
    g = report["agreement"]
    lines += ["## Agreement of the fast path with the exact one (quick preset)",
              "",
              "| comparison | individuals | result | target |",
              "|---|---:|---:|---|",
              f"| Spearman rank correlation, fast vs exact | {g['population']} | "
              f"**{g['spearman_fast_vs_exact']:.4f}** | "
              f">= {TARGETS['spearman']}: {check(g['spearman_fast_vs_exact'], TARGETS['spearman'])} |",
              f"| max abs fitness difference, fast vs exact | {g['population']} | {g['max_abs_fast_vs_exact']:.2e} | |",
              f"| max abs fitness difference, reference vs exact | {g['reference_individuals']} | "
              f"{g['max_abs_reference_vs_exact']:.2e} | |",
              "",
              f"Exact fitness of the population ranges over [{g['fitness_range'][0]:.5f}, {g['fitness_range'][1]:.5f}] "
              f"({g['config']['tasks_per_eval']} tasks of {g['config']['train_size']:,} points).",
              ""]
    sc = report["scaling"]
    lines += ["## Scaling of the fast path (one process, one thread)", "",
              "| varied | value | seconds per evaluation | tabulation share |", "|---|---|---:|---:|"]
    for key, label in (("chunk_size", "chunk size"), ("train_size", "training points"), ("hidden", "MLN hidden")):
        for p in sc[key]:
            value = {"chunk_size": p["population"], "train_size": f"{p['train_size']:,}",
                     "hidden": f"{','.join(map(str, p['hidden']))} ({p['genome_size']:,} params)"}[key]
            lines.append(f"| {label} | {value} | {fmt_s(p['seconds_per_eval'])} | "
                         f"{p['tabulation_seconds'] / p['seconds']:.0%} |")
    lines.append("")
    if report.get("paper_run"):
        pr = report["paper_run"]
        lines += ["## Paper-preset evolution run", "",
                  "| run | wall time | max RSS (largest process) | peak RSS, process tree | generations "
                  "| evaluations | evaluations per second | best fitness |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for key, label in (("serial", "`deap-mln evolve --preset paper --seed 0`"),
                           ("scoop_2", "same under `python -m scoop -n 2 deap_mln/launch.py`")):
            if key in pr:
                x = pr[key]
                lines.append(f"| {label} | {x['wall_seconds'] / 60:.1f} min | {x['max_rss_gib']:.2f} GiB | "
                             f"{x['peak_tree_rss_gib']:.2f} GiB | {x['generations']} | {x['evaluations']:,} | "
                             f"{x['evals_per_second']:.1f} | {x['best_fitness']:.5f} |")
        x = pr["serial"]
        preset_generations = preset("paper").generations
        if x["generations"] < preset_generations and "--patience 0" not in x["command"]:
            paper = preset("paper")
            lines += ["", f"The run stopped after {x['generations']} of {preset_generations} generations: the "
                          f"preset's convergence check (best fitness improved by less than "
                          f"{paper.convergence_epsilon:g} over {paper.patience} generations). "
                          "`--paper-run-all-generations` runs all of them."]
        lines += ["",
                  f"Targets: under {TARGETS['paper_run_minutes']:.0f} minutes "
                  f"({check(x['wall_seconds'] / 60, TARGETS['paper_run_minutes'], higher=False)}), under "
                  f"{TARGETS['paper_run_gib']:.0f} GiB "
                  f"({check(x['max_rss_gib'], TARGETS['paper_run_gib'], higher=False)}). "
                  f"Load average before: {x['load_before']}."]
        if "scoop_2" in pr:
            equal = "yes" if pr["scoop_logbook_equals_serial"] else "**no**"
            lines += ["", f"SCOOP run: {pr['scoop_speedup_wall']:.2f}x the serial run's speed; its logbook (all "
                          f"fitness columns) equals the serial one: {equal}."]
        lines.append("")
    lines += harness.other_load_table(report["sections"])
    waited = report.get("waited_for_idle_seconds", 0.0)
    lines += ["", f"Benchmark total: {report['total_seconds'] / 60:.1f} minutes"
                  + (f", of which {waited / 60:.1f} waiting for an idle machine (`--wait-idle`)" if waited else "")
                  + ". Raw numbers: `throughput.json`.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Measure MLN fitness-evaluation throughput "
                                                 "(see the module docstring).")
    parser.add_argument("--quick", action="store_true", help="reduced sizes: a smoke check of every code path")
    parser.add_argument("--paper-run", action="store_true",
                        help="also run the paper-preset evolution (several minutes)")
    parser.add_argument("--paper-run-scoop", action="store_true",
                        help="with --paper-run: also run it under python -m scoop -n 2 and compare logbooks")
    parser.add_argument("--paper-run-all-generations", action="store_true",
                        help="with --paper-run: pass --patience 0, so the run never stops early (all 100 generations)")
    parser.add_argument("--out", type=Path, help="results directory (default benchmarks/results; "
                                                   "with --quick a temporary directory)")
    parser.add_argument("--figure", type=Path, help="scaling figure (default docs/figures/scaling.png; "
                                                      "with --quick <out>/scaling.png)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (run directories, logs)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="MINUTES",
                        help="first wait (at most this long) for the 1-minute load average to drop below --max-load")
    parser.add_argument("--max-load", type=float, default=0.5)
    parser.add_argument("--render-only", action="store_true",
                        help="measure nothing: redraw throughput.md and the figure from <out>/throughput.json")
    args = parser.parse_args(argv)
    if args.render_only:
        out = args.out or harness.RESULTS_DIR
        report = read_json(out / "throughput.json")
        figure = args.figure or Path(report["figure"])
        plot_scaling(report["scaling"], figure)
        write_text(out / "throughput.md", markdown(report))
        harness.say(f"wrote {out / 'throughput.md'} and {figure}")
        return 0

    size = QUICK if args.quick else FULL
    out = harness.output_dir(args.out, args.quick, "throughput")
    figure = args.figure or (out / "scaling.png" if args.quick else harness.REPO_ROOT / "docs/figures/scaling.png")
    work = Path(tempfile.mkdtemp(prefix="deap_mln_bench_"))
    tic = time.perf_counter()
    report = dict(command=harness.command_line(__file__, argv), quick=args.quick, machine=harness.machine_info(),
                  load_before=harness.load_average(), targets=TARGETS)
    harness.say(f"machine: {report['machine']['cpu_count']} CPUs, torch {torch.__version__}; "
                f"load {report['load_before']}; work dir {work}")
    if args.wait_idle:
        report["waited_for_idle_seconds"] = round(harness.wait_for_idle(args.max_load, args.wait_idle), 1)
        report["load_before"] = harness.load_average()
    sections = report["sections"] = {}
    # on failure the work directory stays, with its logs
    with harness.measured_section("throughput", sections):
        report["throughput"] = section_throughput(size, args.seed)
    with harness.measured_section("scoop", sections):
        report["scoop"] = section_scoop(size, args.seed, work)
    with harness.measured_section("agreement", sections):
        report["agreement"] = section_agreement(size, args.seed)
    with harness.measured_section("scaling", sections):
        report["scaling"] = section_scaling(size, args.seed)
    plot_scaling(report["scaling"], figure)
    report["figure"] = str(figure)
    if args.paper_run:
        with harness.measured_section("paper_run", sections):
            report["paper_run"] = section_paper_run(size, args.seed, work, args.paper_run_scoop,
                                                    args.paper_run_all_generations)
    if args.keep:
        harness.say(f"work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    report["load_after"] = harness.load_average()
    report["git_after"] = harness.git_state()
    report["total_seconds"] = time.perf_counter() - tic
    json_path, md_path = harness.write_results(out / "throughput", report, markdown(report))
    harness.say(f"wrote {json_path}, {md_path}, {figure} in {report['total_seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    main()
