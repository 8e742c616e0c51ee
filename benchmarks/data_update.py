"""Does the dynamic update help on a data set's meta-tasks? The measurement behind the data preset default.

    python benchmarks/data_update.py                  # digits, quick budget, 3 seeds, 2 workers
    python benchmarks/data_update.py --start random --out benchmarks/results/data_update_random_start
    python benchmarks/data_update.py --budget smoke --seeds 1 --out /tmp/du   # pipeline check, seconds

Writes ``bench.json``, ``report.md`` and the figures (:func:`deap_mln.mln.variants.compare_variants`)
and ``trainings.json`` / ``trainings.md``: per evolved row the median generations, classifier
trainings by kind as the league counts them (:func:`league.mln_trainings`: a candidate that fails
the K-class check is not trained; each meta-gradient step of each offspring is one training),
candidates failed per generation, the kept loss's validation score and seconds per generation.

On ``--data`` meta-tasks (:mod:`deap_mln.mln.data_update`: the validation cross-entropy of the
fitness's own training, its first ``update_truncation`` steps unrolled) the hybrid with Algorithm
1's update at its default alpha (20) and at alpha 2, against the hybrid without the update at
the same generations, and the hybrid with the update at as many classifier trainings as the one
without (``hybrid-equal-trainings``: each meta-gradient step of each offspring counts as one
training, as the league counts them, so it runs fewer generations); CE as a reference row.
Every row starts from the data preset's initial population (networks distilled from known
losses), or with ``--start random`` from Glorot networks.
Every row is scored on the same held-out tasks per seed (trained on samples of the search part,
scored on the held-out part of the training part;
:func:`deap_mln.mln.variants.compare_variants`, as ``deap-mln bench --data digits`` does).
"""
from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import harness
import league

from deap_mln.io import LOGBOOK_FILE, RESULT_FILE, SCORES_FILE, read_json
from deap_mln.mln import variants

ROWS = ["hybrid", "hybrid-no-update", "hybrid-equal-trainings", "hybrid-lr2"]
STARTS = ("known", "random")  # initial_population of every row: the data preset's, or Glorot networks
_GIVEN = {row: dict(variants.VARIANTS[row]) for row in ("hybrid", "hybrid-no-update")}


def equal_training_generations(budget: str) -> int:
    """Generations of the hybrid with the update that train as many classifiers as ``budget``'s
    generations without it: (mu + lambda) x tasks per generation against that plus lambda x
    update steps (validations are alike for both and left out)."""
    config = variants.job_config(budget, "hybrid", 0)
    per_generation = (config.mu + config.lambda_) * config.tasks_per_eval
    return max(1, config.generations * per_generation // (per_generation + config.lambda_ * config.update_steps))


BUDGET_ENV, START_ENV = "DATA_UPDATE_BUDGET", "DATA_UPDATE_START"  # for the spawned job processes (they
# inherit the environment)


def register_rows(budget: str, start: str) -> None:
    """The variants only this measurement uses, for ``budget``; with ``start`` random every row
    starts from Glorot networks (this process's registry only)."""
    start_from = {"initial_population": "random"} if start == "random" else {}
    for row, given in _GIVEN.items():
        variants.VARIANTS[row] = {**given, **start_from}
    hybrid = variants.VARIANTS["hybrid"]
    variants.VARIANTS["hybrid-lr2"] = {**hybrid, "update_lr": 2.0}
    variants.VARIANTS["hybrid-equal-trainings"] = {**hybrid, "generations": equal_training_generations(budget)}


# At import time, so that the spawned job processes, which import this script as their main
# module without running main(), know them too.
register_rows(os.environ.get(BUDGET_ENV, "quick"), os.environ.get(START_ENV, "known"))


def training_rows(out: Path, rows: list[str]) -> list[dict]:
    """What each evolved row spent and kept, medians over its seeds' run directories."""
    table = []
    for row in rows:
        runs = sorted(p.parent for p in (out / "runs").glob(f"{row}-seed*/{RESULT_FILE}"))
        facts = []
        for run in runs:
            logbook = harness.read_csv_rows(run / LOGBOOK_FILE)[1:]  # generation 0 has no offspring
            spent = league.mln_trainings(run)
            facts.append(dict(generations=len(logbook), trainings=sum(spent.values()), update=spent["update"],
                              failed=statistics.mean(int(r["failed"]) for r in logbook),
                              validation=read_json(run / SCORES_FILE, "scores")["kept"]["validation"],
                              seconds=statistics.mean(float(r["seconds"]) for r in logbook)))
        if facts:
            table.append(dict(variant=row, seeds=len(facts),
                              **{k: statistics.median(f[k] for f in facts) for k in facts[0]}))
    return table


def trainings_markdown(table: list[dict], command: str) -> str:
    lines = ["| variant | seeds | generations | trainings (update) | failed per generation | kept loss's validation "
             "| s per generation |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['seeds']} | {r['generations']:.0f} | {r['trainings']:.0f} ({r['update']:.0f}) | "
              f"{r['failed']:.1f} | {r['validation']:.4f} | {r['seconds']:.1f} |" for r in table]
    return "\n".join([f"`{command}`: medians over seeds (run directories under runs/, not kept). Seconds were measured "
                      "on the shared 2-core machine (load 3-10 while these ran).", "", *lines, ""])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", choices=variants.BUDGETS, default="quick")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--start", choices=STARTS, default="known", help="initial population of every row")
    parser.add_argument("--variants", nargs="+", choices=ROWS, default=ROWS, help="the first is the reference")
    parser.add_argument("--out", type=Path, default=harness.RESULTS_DIR / "data_update")
    args = parser.parse_args(argv)
    os.environ[BUDGET_ENV], os.environ[START_ENV] = args.budget, args.start
    register_rows(args.budget, args.start)
    variants.compare_variants(args.variants, args.seeds, args.budget, args.out, workers=args.workers, references=("ce",),
                              data=args.data)
    table, command = training_rows(args.out, args.variants), harness.command_line(__file__, argv)
    harness.write_results(args.out / "trainings", {"command": command, "rows": table}, trainings_markdown(table, command))
    harness.say((args.out / "report.md").read_text() + "\n" + (args.out / "trainings.md").read_text())


if __name__ == "__main__":
    main()
