"""Shared fixtures: a tiny configuration that exercises every code path in seconds."""
from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from deap_mln.mln.config import EvolutionConfig

# One thread: the tests' tensors are small, and several threads on a busy machine spin
# each other out (seen here: 100x slower steps under load).
torch.set_num_threads(1)


def tiny_config(**overrides) -> EvolutionConfig:
    """Small MLN, small tasks, small population: the same algorithm at a toy budget."""
    values = dict(hidden=(8, 8), pool_size=2_000, train_size=400, val_size=200, tasks_per_eval=2,
                  inner_epochs=5, mu=6, lambda_=6, chunk_size=6, generations=3, patience=0,
                  initial_sigma=0.05, checkpoint_every=1)
    values.update(overrides)
    return EvolutionConfig(**values).validate()


@pytest.fixture
def config() -> EvolutionConfig:
    return tiny_config()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@contextlib.contextmanager
def benchmark_module(name: str) -> Iterator:
    """A script of benchmarks/ imported as it imports its neighbours (``harness`` a top-level module)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))
