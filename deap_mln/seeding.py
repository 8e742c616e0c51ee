"""Explicit seeds: every random stream is a named child of the run seed.

``generator(seed, "task", generation, index)`` always gives the same stream for the
same key, whichever process asks and in whatever order, which is what makes runs
reproducible with any number of workers.
"""
from __future__ import annotations

import zlib

import numpy as np
import torch


def _key_words(key: tuple) -> list[int]:
    words = []
    for part in key:
        if isinstance(part, str):
            words.append(zlib.crc32(part.encode()))
        else:
            words.append(int(part))
    return words


def seed_sequence(seed: int, *key: int | str) -> np.random.SeedSequence:
    """SeedSequence for the stream named by ``key`` under the run ``seed``."""
    return np.random.SeedSequence([int(seed), *_key_words(key)])


def generator(seed: int, *key: int | str) -> np.random.Generator:
    """numpy Generator for the stream named by ``key``."""
    return np.random.default_rng(seed_sequence(seed, *key))


def torch_generator(seed: int, *key: int | str) -> torch.Generator:
    """CPU torch Generator for the stream named by ``key``."""
    g = torch.Generator()
    g.manual_seed(int(seed_sequence(seed, *key).generate_state(1, dtype=np.uint64)[0] >> 1))
    return g
