"""--data and --label: the one way every command that trains takes its data."""
from __future__ import annotations

import argparse

from deap_mln.data.source import SOURCES_HELP


def add_data_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *aliases: str,
                       required: bool = False, default_help: str = "") -> None:
    """``--data SOURCE`` (with older flag names as ``aliases``) and ``--label COLUMN``."""
    parser.add_argument("--data", *aliases, dest="data", metavar="SOURCE", required=required,
                        help=f"{SOURCES_HELP}{default_help}")
    parser.add_argument("--label", metavar="COLUMN", help="a CSV source's label column (default: the last)")
