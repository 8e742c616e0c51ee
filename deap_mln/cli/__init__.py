"""Command line: argument parsing only; every command calls a library function."""
from deap_mln.cli.main import main

__all__ = ["main"]
