"""Time one generation's fitness evaluations through a map: SCOOP's or the builtin one.

Helper of ``benchmarks/throughput.py`` (section 1d); it can also be run by hand::

    python -m scoop -n 2 benchmarks/scoop_generation.py --json /tmp/scoop2.json   # launcher + 1 worker
    python -m scoop -n 2 benchmarks/scoop_generation.py --map scoop-futures --json /tmp/f2.json  # plain futures.map
    python -m scoop -n 1 benchmarks/scoop_generation.py --json /tmp/scoop1.json   # launcher alone
    python benchmarks/scoop_generation.py --map builtin --json /tmp/serial.json   # one process, builtin map
    python benchmarks/scoop_generation.py --map process --json /tmp/pool2.json    # deap_mln's process pool, 2 workers

SCOOP 0.7.2.0's ``-n`` counts the launching process, which also runs work: ``-n 2`` is two
computing processes. The script builds ``--population`` Glorot genomes, splits them with
``deap_mln.fitness.make_chunks`` (chunks of ``config.chunk_size``, as a real generation does)
and maps ``deap_mln.fitness.evaluate_chunk`` over them with deap_mln's map for that backend
(``--map scoop``: :func:`deap_mln.parallel.evaluation_map`, as ``deap-mln evolve`` does) (wrapped to also record which
process ran each chunk, and when): ``--warmup`` untimed maps first
(worker start-up, imports, the task pool cache), then ``--repeats`` timed maps. Only the
map is timed. It writes the times and the fitness values (to check that every map gives
the same numbers) to ``--json``.

It never calls ``sys.exit(0)``: SCOOP reports even SystemExit(0) as an error.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from pathlib import Path

import numpy as np

from deap_mln.mln.config import preset
from deap_mln.mln.fitness import evaluate_chunk, make_chunks
from deap_mln.mln.network import glorot_genome
from deap_mln.parallel import evaluation_map


def traced_chunk(chunk):
    """``evaluate_chunk`` plus where and when it ran: (fitness list, pid, start, end) in epoch seconds."""
    start = time.time()
    fitness = evaluate_chunk(chunk)
    return fitness, os.getpid(), start, time.time()


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


def time_maps(map_fn, chunks, warmup: int, repeats: int) -> dict:
    """Untimed warm-up maps, then timed ones: times, fitness, and which process ran each chunk, when."""
    for _ in range(warmup):
        list(map_fn(traced_chunk, chunks))
    seconds, fitness, trace = [], None, []
    for _ in range(repeats):
        tic, t0 = time.perf_counter(), time.time()
        results = list(map_fn(traced_chunk, chunks))
        seconds.append(time.perf_counter() - tic)
        trace.append([dict(pid=pid, start=round(a - t0, 3), end=round(b - t0, 3)) for _, pid, a, b in results])
        flat = [f for chunk, *_ in results for f in chunk]
        if fitness is not None and flat != fitness:
            raise RuntimeError("two maps over the same chunks gave different fitness values")
        fitness = flat
    return dict(seconds=seconds, median_seconds=float(np.median(seconds)), fitness=fitness, trace=trace,
                processes_per_map=[len({t["pid"] for t in one}) for one in trace])


def main() -> None:
    args = build_parser().parse_args()
    config = preset(args.preset, seed=args.seed, train_size=args.train_size)
    rng = np.random.default_rng(args.seed)
    genomes = [glorot_genome(config.hidden, rng) for _ in range(args.population)]
    chunks = make_chunks(genomes, config, generation=1)
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
        record = time_maps(map_fn, chunks, args.warmup, args.repeats)
    record.update(map=args.map, workers=args.workers if args.map == "process" else None, population=args.population,
                  chunks=len(chunks), chunk_size=config.chunk_size, train_size=config.train_size,
                  inner_steps=config.inner_steps, warmup=args.warmup, root_pid=os.getpid())
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{args.map}: {len(chunks)} chunks of {config.chunk_size}, map seconds "
          f"{[round(x, 3) for x in record['seconds']]}, processes per map {record['processes_per_map']}")


if __name__ == "__main__":
    main()
