"""Run under SCOOP's launcher by tests/test_fault_tolerance.py: an evolution that loses its worker.

    DEAP_MLN_FAULT_DIR=DIR python -m scoop -n 2 tests/scoop_fault_probe.py OUT TIMEOUT

Evolves ``tiny_config(chunk_size=3)`` into OUT through deap_mln's SCOOP backend with a chunk
time limit of TIMEOUT seconds, evaluating through a chunk function that kills the first
worker (never the launcher) to run a chunk of generation 2.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `tests` importable here and on the workers

import deap_mln.mln.toolbox  # noqa: E402
from deap_mln.mln.run import evolve  # noqa: E402
from deap_mln.parallel import DispatchOptions  # noqa: E402
from tests import fault_injection  # noqa: E402
from tests.conftest import tiny_config  # noqa: E402

deap_mln.mln.toolbox.evaluate_chunk = fault_injection.evaluate_chunk_dying_once

if __name__ == "__main__":
    os.environ[fault_injection.SPARED_PID] = str(os.getpid())  # workers are started before: only this one is spared
    out, timeout = Path(sys.argv[1]), float(sys.argv[2])
    evolve(tiny_config(chunk_size=3), out, backend=DispatchOptions("scoop", chunk_timeout=timeout), progress=None)
