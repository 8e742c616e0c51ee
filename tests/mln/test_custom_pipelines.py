"""Runs the code of docs/custom_pipelines.md, block after block, in one namespace."""
import random
import re
from pathlib import Path

import numpy as np

DOC = Path(__file__).resolve().parents[2] / "docs" / "custom_pipelines.md"


def test_the_documented_pipelines_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    random.seed(0)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 6
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    state = namespace["state"]
    fitness = [ind.fitness.values[0] for ind in state.population]
    assert state.generation == 2 and all(0.0 <= f <= 1.0 for f in fitness)  # accuracies now
    assert len(namespace["population"]) == 6 and namespace["hof"][0].fitness.valid
    assert (tmp_path / "my_loss.pt").is_file()
    # initial genomes are within Glorot bounds < 1; offspring were clipped
    assert np.abs(np.asarray(namespace["best"])).max() <= 1.0
