"""One paper-settings generation (50 individuals = 2 chunks of 25) through the serial map and
the process pool (``--workers 2``): wall time of the map and identical fitness.

    python benchmarks/pool_generation.py      # about 1 minute; writes benchmarks/results/pool_generation.{json,md}
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from deap_mln.mln.config import preset
from deap_mln.mln.fitness import evaluate_chunk, make_chunks
from deap_mln.mln.network import glorot_genome
from deap_mln.parallel import evaluation_map

OUT = Path(__file__).parent / "results"


def main() -> None:
    config = preset("paper", seed=0)
    rng = np.random.default_rng(0)
    chunks = make_chunks([glorot_genome(config.hidden, rng) for _ in range(50)], config, generation=1)
    result = {"load_average_before": list(os.getloadavg()), "maps": {}}
    fitness = {}
    for backend, workers in (("serial", 1), ("process", 2)):
        with evaluation_map(backend, workers) as map_fn:
            for _ in range(2):  # warm-up: worker start-up, imports, task pool
                list(map_fn(evaluate_chunk, chunks))
            times = []
            for _ in range(5):
                tic = time.perf_counter()
                fitness[backend] = list(map_fn(evaluate_chunk, chunks))
                times.append(time.perf_counter() - tic)
        result["maps"][backend] = {"workers": workers, "seconds": times, "median_seconds": float(np.median(times))}
    result["speedup"] = result["maps"]["serial"]["median_seconds"] / result["maps"]["process"]["median_seconds"]
    result["identical_fitness"] = fitness["serial"] == fitness["process"]
    (OUT / "pool_generation.json").write_text(json.dumps(result, indent=1))
    rows = [f"| {b} | {m['workers']} | {m['median_seconds']:.3f} |" for b, m in result["maps"].items()]
    (OUT / "pool_generation.md").write_text("\n".join([
        "| map | processes | median seconds per generation (5 repeats) |", "|---|---:|---:|", *rows, "",
        f"Process pool over serial: {result['speedup']:.2f}x; identical fitness: {result['identical_fitness']}; "
        f"load average before: {result['load_average_before']}", ""]))
    print((OUT / "pool_generation.md").read_text())


if __name__ == "__main__":
    main()
