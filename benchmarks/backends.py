"""One paper-settings generation through every backend, side by side: serial, process pool, Dask, SCOOP.

    python benchmarks/backends.py                 # about 3 minutes on 2 idle cores; writes benchmarks/results/backends.{json,md}
    python benchmarks/backends.py --quick         # smoke check (small tasks, 1 warm-up + 2 timed maps), temporary directory
    python benchmarks/backends.py --wait-idle 30 --max-load 0.5   # what a published result should use
    python benchmarks/backends.py --backends serial,process       # the process pool against serial only

A generation at paper settings (``preset("paper")``) evaluates 50 individuals = 2 chunks of 25.
The same 2 chunks are mapped, in one run of this script, by

- ``serial``: the builtin map in this process (torch on one thread, as in a worker);
- ``process``: deap_mln's process pool (``--backend process --workers N``);
- ``dask``: deap_mln's Dask backend on a ``LocalCluster`` (``--backend dask --workers N``);
- ``scoop``: deap_mln's SCOOP backend under ``python -m scoop -n N`` (``benchmarks/scoop_generation.py``
  in a subprocess; ``-n`` counts the launcher, which computes its share).

``--backends`` picks a subset (serial is always measured: the speedups are over it).

Each map gets ``--warmup`` untimed maps (imports, the task pool), then ``--repeats`` timed ones
(``harness.time_maps``); all must give the same fitness. Opening a backend (starting its
workers) is timed apart: a run pays it once. Each backend's section also records the CPU time
other processes used meanwhile (``harness.measured_section``): on a busy machine the speedups
mean little. Target: Dask with 2 workers at least 1.7x serial per generation.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import harness

from deap_mln.io import read_json
from deap_mln.mln.config import preset
from deap_mln.mln.fitness import evaluate_chunk, make_chunks
from deap_mln.parallel import DispatchOptions, evaluation_map

QUICK_TRAIN_SIZE = 2_000  # --quick: tasks of 2,000 points instead of the paper's 50,000
POPULATION = 50           # mu + lambda at the paper's sizes
TARGET_DASK_SPEEDUP = 1.7
HELPER = Path(__file__).resolve().parent / "scoop_generation.py"
BACKENDS = ("serial", "process", "dask", "scoop")


def time_backend(options: DispatchOptions, chunks: list, warmup: int, repeats: int) -> dict:
    """Open the backend (timed), then time maps of the chunks through it."""
    tic = time.perf_counter()
    with evaluation_map(options) as map_fn:
        opened = time.perf_counter() - tic
        timing = harness.time_maps(map_fn, evaluate_chunk, chunks, warmup, repeats)
    timing["fitness"] = [f for chunk in timing.pop("results") for f in chunk]
    return dict(workers=options.workers, startup_seconds=opened, **timing)


def time_scoop(processes: int, train_size: int | None, warmup: int, repeats: int, work: Path) -> dict:
    """The same maps under ``python -m scoop -n processes`` (a subprocess: SCOOP needs its launcher)."""
    json_path = work / f"scoop_{processes}.json"
    argv = [sys.executable, "-m", "scoop", "-n", str(processes), str(HELPER), "--map", "scoop",
            "--population", str(POPULATION), "--seed", "0", "--warmup", str(warmup), "--repeats", str(repeats),
            "--json", str(json_path)] + (["--train-size", str(train_size)] if train_size else [])
    run = harness.run_logged(argv, work / f"scoop_{processes}.log")
    record = read_json(json_path)
    keep = ("seconds", "median_seconds", "trace", "processes_per_map", "fitness")
    return dict(workers=processes, startup_seconds=None, launcher_process_seconds=run["wall_seconds"],
                **{key: record[key] for key in keep})


def markdown(result: dict) -> str:
    serial = result["maps"]["serial"]["median_seconds"]
    rows = []
    for name, m in result["maps"].items():
        startup = f"{m['startup_seconds']:.2f}" if m.get("startup_seconds") is not None else "n/a"
        other = result["sections"].get(name, {}).get("other_cpu_share")
        rows.append(f"| {name} | {m['workers']} | {startup} | {m['median_seconds']:.3f} | {max(m['seconds']):.3f} | "
                    f"{serial / m['median_seconds']:.2f}x | {min(m['processes_per_map'])}-{max(m['processes_per_map'])} | "
                    f"{'n/a' if other is None else f'{other:.1%}'} |")
    dask = result["speedups"].get("dask")
    verdict = "n/a" if dask is None else ("met" if dask >= TARGET_DASK_SPEEDUP else "**not met**")
    return "\n".join([
        "# One generation at paper settings through each backend", "",
        f"Machine: {harness.machine_line(result['machine'])}.", "",
        f"{POPULATION} individuals = {result['chunks']} chunks of {result['chunk_size']}, tasks of "
        f"{result['train_size']:,} training points; {result['warmup']} untimed and {result['repeats']} timed maps per "
        "backend. Start-up: opening the backend (its workers), paid once per run.", "",
        "| backend | processes | start-up s | median s per generation | slowest map s | over serial | "
        "processes per map | other load |",
        "|---|---:|---:|---:|---:|---:|---|---:|", *rows, "",
        f"Identical fitness across backends: {result['identical_fitness']}. Dask over serial: "
        f"{'n/a' if dask is None else f'{dask:.2f}x'} (target >= {TARGET_DASK_SPEEDUP}x: {verdict}). "
        f"Load average before: {result['load_average_before']}.", "",
        f"Command: `{result['command']}`.", ""])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="workers of each parallel backend (default 2)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed maps before timing (default 2)")
    parser.add_argument("--repeats", type=int, default=10, help="timed maps per backend (default 10)")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help=f"comma-separated subset of {','.join(BACKENDS)}, serial included (default all)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke check: tasks of {QUICK_TRAIN_SIZE:,} points, one warm-up and two timed maps")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="MINUTES",
                        help="first wait (at most this long) for the 1-minute load average to drop below --max-load")
    parser.add_argument("--max-load", type=float, default=0.5)
    parser.add_argument("--out", type=Path, help="results directory (default benchmarks/results; "
                                                 "with --quick a temporary directory)")
    args = parser.parse_args(argv)
    backends = args.backends.split(",")
    if "serial" not in backends or not set(backends) <= set(BACKENDS):
        parser.error(f"--backends: a comma-separated subset of {','.join(BACKENDS)} with serial, got {args.backends!r}")
    if args.quick:
        args.warmup, args.repeats = 1, 2
    train_size = QUICK_TRAIN_SIZE if args.quick else None
    config = preset("paper", seed=0, train_size=train_size)  # as scoop_generation.py builds it
    chunks = make_chunks(harness.glorot_genomes(config.hidden, POPULATION, seed=0), config, generation=1)
    waited = harness.wait_for_idle(args.max_load, args.wait_idle) if args.wait_idle else 0.0
    result: dict = dict(command=harness.command_line(__file__, argv), machine=harness.machine_info(),
                        load_average_before=harness.load_average(), waited_for_idle_seconds=round(waited, 1),
                        train_size=config.train_size, chunks=len(chunks), chunk_size=config.chunk_size,
                        warmup=args.warmup, repeats=args.repeats, maps={}, sections={})
    plan = [("serial", DispatchOptions("serial")), ("process", DispatchOptions("process", args.workers)),
            ("dask", DispatchOptions("dask", args.workers))]
    for name, options in (step for step in plan if step[0] in backends):
        harness.say(f"{name}: {options.workers} process(es)")
        with harness.measured_section(name, result["sections"]):
            result["maps"][name] = time_backend(options, chunks, args.warmup, args.repeats)
        harness.say(f"   map seconds {[round(s, 3) for s in result['maps'][name]['seconds']]}")
    if "scoop" in backends:
        harness.say(f"scoop: python -m scoop -n {args.workers}")
        with tempfile.TemporaryDirectory(prefix="deap_mln_backends_") as work, \
                harness.measured_section("scoop", result["sections"]):
            result["maps"]["scoop"] = time_scoop(args.workers, train_size, args.warmup, args.repeats, Path(work))
        harness.say(f"   map seconds {[round(s, 3) for s in result['maps']['scoop']['seconds']]}")
    serial = result["maps"]["serial"]["median_seconds"]
    result["speedups"] = {name: serial / m["median_seconds"] for name, m in result["maps"].items() if name != "serial"}
    result["identical_fitness"] = len({tuple(m["fitness"]) for m in result["maps"].values()}) == 1
    result["machine_after"] = harness.git_state()
    _, md_path = harness.write_results(harness.output_dir(args.out, args.quick, "backends") / "backends",
                                       result, markdown(result))
    harness.say(md_path.read_text())
    harness.say(f"wrote {md_path} and its .json")


if __name__ == "__main__":
    main()
