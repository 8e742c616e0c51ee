"""One paper-settings generation (50 individuals = 2 chunks of 25) through the serial map and
the process pool (``--workers 2``): wall time of the map and identical fitness.

    python benchmarks/pool_generation.py          # about 1 minute; writes benchmarks/results/pool_generation.{json,md}
    python benchmarks/pool_generation.py --quick  # smoke check (smaller tasks), results to a temporary directory

Each map gets ``--warmup`` untimed maps (worker start-up, imports, the task pool), then
``--repeats`` timed ones (``harness.time_maps``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import harness

from deap_mln.mln.config import preset
from deap_mln.mln.fitness import evaluate_chunk, make_chunks
from deap_mln.parallel import evaluation_map

QUICK_TRAIN_SIZE = 2_000  # --quick: tasks of 2,000 points instead of the paper's 50,000


def markdown(result: dict) -> str:
    rows = [f"| {b} | {m['workers']} | {m['median_seconds']:.3f} |" for b, m in result["maps"].items()]
    return "\n".join([
        f"| map | processes | median seconds per generation ({result['repeats']} repeats) |", "|---|---:|---:|", *rows,
        "", f"Process pool over serial: {result['speedup']:.2f}x; identical fitness: {result['identical_fitness']}; "
            f"load average before: {result['load_average_before']}. Command: `{result['command']}`.", ""])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="process-pool workers (default 2)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed maps before timing (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed maps (default 5)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke check: tasks of {QUICK_TRAIN_SIZE:,} points, one warm-up and one timed map")
    parser.add_argument("--out", type=Path, help="results directory (default benchmarks/results; "
                                                 "with --quick a temporary directory)")
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.repeats = 1, 1
    config = preset("paper", seed=0, train_size=QUICK_TRAIN_SIZE if args.quick else None,
                    val_size=QUICK_TRAIN_SIZE if args.quick else None)
    chunks = make_chunks(harness.glorot_genomes(config.hidden, 50, seed=0), config, generation=1)
    result: dict = dict(command=harness.command_line(__file__, argv), machine=harness.machine_info(),
                        load_average_before=harness.load_average(), train_size=config.train_size,
                        warmup=args.warmup, repeats=args.repeats, maps={})
    fitness = {}
    for backend, workers in (("serial", 1), ("process", args.workers)):
        with evaluation_map(backend, workers) as map_fn:
            timing = harness.time_maps(map_fn, evaluate_chunk, chunks, args.warmup, args.repeats)
        fitness[backend] = timing.pop("results")
        result["maps"][backend] = dict(workers=workers, **timing)
    result["speedup"] = result["maps"]["serial"]["median_seconds"] / result["maps"]["process"]["median_seconds"]
    result["identical_fitness"] = fitness["serial"] == fitness["process"]
    _, md_path = harness.write_results(harness.output_dir(args.out, args.quick, "pool_generation") / "pool_generation",
                                       result, markdown(result))
    harness.say(md_path.read_text())
    harness.say(f"wrote {md_path} and its .json")


if __name__ == "__main__":
    main()
