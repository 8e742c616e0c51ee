"""Run under SCOOP's launcher by tests/test_parallel.py: which process computes which item.

    python -m scoop -n 2 tests/scoop_dispatch_probe.py OUT.json MAPS ITEMS

Maps a function that sleeps briefly (a stand-in for a chunk's training) and returns its
item and process id over ``range(ITEMS)``, ``MAPS`` times, through deap_mln's SCOOP
backend, and writes the launcher's process id and every map's results to OUT.json.
"""
import json
import os
import sys
import time
from pathlib import Path

from deap_mln.parallel import evaluation_map


def where(item: int) -> list[int]:
    time.sleep(0.2)
    return [item, os.getpid()]


if __name__ == "__main__":
    out, maps, items = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    with evaluation_map("scoop") as map_fn:
        runs = [list(map_fn(where, range(items))) for _ in range(maps)]
    out.write_text(json.dumps(dict(launcher=os.getpid(), runs=runs)))
