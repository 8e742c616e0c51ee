"""argparse value types and the parser class shared by every deap-mln subcommand.

A bad value is a one-line error with exit code 2 (:class:`UsageError`), never a usage dump
or a traceback.
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NoReturn, TypeVar

N = TypeVar("N", int, float)


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are :class:`UsageError` (one line) instead of a usage dump.

    The message names the subcommand (``evolve: argument --mu: ...``); the CLI puts its one
    prefix, ``deap-mln: error: ``, in front.
    """

    def error(self, message: str) -> NoReturn:
        command = self.prog.partition(" ")[2]  # "evolve" of "deap-mln evolve"; "" for the top-level parser
        raise UsageError(f"{command}: {message}" if command else message)


def _number(text: str, cast: Callable[[str], N], ok: Callable[[N], bool], what: str) -> N:
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "a non-negative integer")


def int_at_least_two(text: str) -> int:
    return _number(text, int, lambda v: v >= 2, "an integer >= 2")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: v > 0 and math.isfinite(v), "a positive number")


def comma_separated(cast: Callable[[str], N], example: str) -> Callable[[str], tuple[N, ...]]:
    """A type for lists such as ``32,64,128``: a tuple of ``cast`` values."""
    def parse(text: str) -> tuple[N, ...]:
        try:
            return tuple(cast(t) for t in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated values such as {example}, got {text!r}") from None
    return parse
