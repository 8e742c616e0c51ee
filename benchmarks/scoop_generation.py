"""Time one generation's fitness evaluations through a map: SCOOP's or the builtin one.

Helper of ``benchmarks/throughput.py`` (section 1d); it can also be run by hand::

    python -m scoop -n 2 benchmarks/scoop_generation.py --json /tmp/scoop2.json   # launcher + 1 worker
    python -m scoop -n 2 benchmarks/scoop_generation.py --map scoop-futures --json /tmp/f2.json  # plain futures.map
    python -m scoop -n 1 benchmarks/scoop_generation.py --json /tmp/scoop1.json   # launcher alone
    python benchmarks/scoop_generation.py --map builtin --json /tmp/serial.json   # one process, builtin map
    python benchmarks/scoop_generation.py --map process --json /tmp/pool2.json    # deap_mln's process pool, 2 workers

SCOOP 0.7.2.0's ``-n`` counts the launching process, which also runs work: ``-n 2`` is two
computing processes. The script builds ``--population`` Glorot genomes, splits them with
``deap_mln.mln.fitness.make_chunks`` (chunks of ``config.chunk_size``, as a real generation
does) and times maps of ``deap_mln.mln.fitness.evaluate_chunk`` over them with
``harness.time_maps``, through deap_mln's map for that backend (``--map scoop``:
:func:`deap_mln.parallel.evaluation_map`, as ``deap-mln evolve`` does), which also records
which process ran each chunk, and when: ``--warmup`` untimed maps first (worker start-up,
imports, the task pool cache), then ``--repeats`` timed maps. Only the map is timed. It
writes the times and the fitness values (to check that every map gives the same numbers)
to ``--json``.

It never calls ``sys.exit(0)``: SCOOP reports even SystemExit(0) as an error.
"""
from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

import harness

from deap_mln.io import write_json
from deap_mln.mln.config import preset
from deap_mln.mln.fitness import evaluate_chunk, make_chunks
from deap_mln.parallel import evaluation_map


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", choices=("scoop", "scoop-futures", "builtin", "process"), default="scoop",
                        help="scoop: deap_mln's SCOOP backend (what evolve uses under the launcher); "
                             "scoop-futures: plain scoop.futures.map, for comparison; "
                             "process: deap_mln's local process pool (deap-mln evolve --workers N)")
    parser.add_argument("--workers", type=int, default=2, help="process-pool workers (with --map process)")
    parser.add_argument("--json", type=Path, required=True, help="where to write the timings")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--train-size", type=int, help="override the preset's train_size (smoke runs)")
    parser.add_argument("--population", type=int, default=50, help="individuals per generation (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the genomes and of the run config")
    parser.add_argument("--warmup", type=int, default=2, help="untimed maps before timing")
    parser.add_argument("--repeats", type=int, default=3, help="timed maps")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    config = preset(args.preset, seed=args.seed, train_size=args.train_size)
    chunks = make_chunks(harness.glorot_genomes(config.hidden, args.population, args.seed), config, generation=1)
    with contextlib.ExitStack() as stack:
        if args.map == "scoop":
            map_fn = stack.enter_context(evaluation_map("scoop"))
        elif args.map == "scoop-futures":
            from scoop import futures
            map_fn = futures.map
        elif args.map == "process":
            map_fn = stack.enter_context(evaluation_map("process", args.workers))
        else:
            map_fn = map
        record = harness.time_maps(map_fn, evaluate_chunk, chunks, args.warmup, args.repeats)
    record["fitness"] = [f for chunk in record.pop("results") for f in chunk]
    record.update(map=args.map, workers=args.workers if args.map == "process" else None, population=args.population,
                  chunks=len(chunks), chunk_size=config.chunk_size, train_size=config.train_size,
                  inner_steps=config.inner_steps, warmup=args.warmup, root_pid=os.getpid())
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.json, record)
    harness.say(f"{args.map}: {len(chunks)} chunks of {config.chunk_size}, map seconds "
                f"{[round(x, 3) for x in record['seconds']]}, processes per map {record['processes_per_map']}")


if __name__ == "__main__":
    main()
