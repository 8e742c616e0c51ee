"""What ``make demo`` takes and gives: each of its steps timed, and its meta-test's results.

    make install && python benchmarks/demo.py        # writes benchmarks/results/demo/
    python benchmarks/demo.py --out /tmp/demo         # elsewhere

It runs exactly the commands of the Makefile's ``demo`` target, as ``make --dry-run`` prints
them (the install is not timed: the dry run treats ``.venv/bin/.installed`` as up to date, and
the script stops if the dry run would install), one shell per command as make runs them, from
the repository root, each timed with its output to a log in ``--out/logs/``. So it measures the
demo itself, whatever the Makefile says today. Then it writes

- ``demo.json``: each step's command and seconds, the total, the machine (``harness.machine_info``);
- ``meta_test/``: the demo's meta-test files (``per_seed.csv``, ``summary.csv``, ``summary.md``,
  ``settings.json``), from which ``benchmarks/doc_tables.py`` generates the README's demo
  numbers (paired with CE by the sign-flip test);
- ``scores/``: each evolution step's ``scores.json`` (which data each score used);
- ``demo.md``: the steps and the meta-test's table.
"""
from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
from pathlib import Path

import harness

MAKE_TARGET = "demo"
STAMP = ".venv/bin/.installed"  # the install step's stamp file (the Makefile's $(BIN)/.installed)
META_TEST_FILES = ("per_seed.csv", "summary.csv", "summary.md", "settings.json")
DEFAULT_OUT = harness.RESULTS_DIR / "demo"


def recipe(root: Path = harness.REPO_ROOT, target: str = MAKE_TARGET, stamp: str = STAMP) -> list[str]:
    """The shell commands ``make TARGET`` runs, one per recipe line (backslash continuations
    joined), variables expanded by make itself; the install stamp counts as up to date.
    RuntimeError if make would install or fails."""
    done = subprocess.run(["make", "--no-print-directory", "--dry-run", f"--old-file={stamp}", target], cwd=root,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"make --dry-run {target} failed: {done.stderr.strip()}")
    commands, current = [], ""
    for line in done.stdout.splitlines():
        current += line.strip() if not current else " " + line.strip()
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        if current:
            commands.append(current)
        current = ""
    if any("pip install" in c or " -m venv " in c for c in commands):
        raise RuntimeError(f"`make {target}` would install first: run `make install`, then this script")
    return commands


def step_name(command: str) -> str:
    """A short name for a step: the deap-mln subcommand, else the program's name."""
    words = shlex.split(command)
    program = Path(words[0]).name
    return f"{program} {words[1]}" if program == "deap-mln" and len(words) > 1 else program


def option(command: str, flag: str) -> str | None:
    """The value of ``flag`` in ``command`` (``--out DIR``), or None."""
    words = shlex.split(command)
    return words[words.index(flag) + 1] if flag in words[:-1] else None


def run_steps(commands: list[str], logs: Path, root: Path = harness.REPO_ROOT) -> list[dict]:
    """Run each command with ``sh -c`` in ``root`` (as make does), timed; its output to ``logs/NN.log``."""
    logs.mkdir(parents=True, exist_ok=True)
    steps = []
    for i, command in enumerate(commands):
        harness.say(f"demo step {i + 1}/{len(commands)}: {command}")
        result = harness.run_logged(["sh", "-c", command], logs / f"{i:02d}.log", cwd=root)
        steps.append(dict(name=step_name(command), command=command, seconds=round(result["wall_seconds"], 2)))
        harness.say(f"   {result['wall_seconds']:.1f} s")
    return steps


def markdown(report: dict, meta_test_table: str) -> str:
    lines = [f"# `make {report['make_target']}`: {report['total_seconds']:.0f} s after install", "",
             f"{harness.machine_line(report['machine'])}. Command: `{report['command']}`.", "",
             "| step | command | seconds |", "|---|---|---:|"]
    lines += [f"| {s['name']} | `{s['command']}` | {s['seconds']:.1f} |" for s in report["steps"]]
    lines += [f"| total | | {report['total_seconds']:.1f} |", "", "## The meta-test", "", meta_test_table, ""]
    return "\n".join(lines)


def write_demo_results(steps: list[dict], root: Path, out: Path, command: str, machine: dict) -> dict:
    """Write ``demo.json``, ``demo.md``, ``meta_test/`` and ``scores/`` to ``out`` for ``steps``
    (dicts with name, command, seconds) that ran in ``root``; the report. The meta-test step's
    ``--out`` folder (relative to ``root``) must hold the meta-test's files."""
    meta = [s for s in steps if s["name"] == "deap-mln meta-test"]
    if len(meta) != 1 or option(meta[0]["command"], "--out") is None:
        raise ValueError("the demo must have exactly one `deap-mln meta-test ... --out DIR` step")
    source = root / option(meta[0]["command"], "--out")
    (out / "meta_test").mkdir(parents=True, exist_ok=True)
    for name in META_TEST_FILES:
        shutil.copyfile(source / name, out / "meta_test" / name)
    scores = {}
    for s in steps:
        run_dir = option(s["command"], "--out")
        if s["name"].startswith("deap-mln evolve") and run_dir and (root / run_dir / "scores.json").is_file():
            target = out / "scores" / f"{Path(run_dir).name}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / run_dir / "scores.json", target)
            scores[s["name"]] = str(target.relative_to(out))
    report = dict(command=command, make_target=MAKE_TARGET, steps=steps,
                  total_seconds=round(sum(s["seconds"] for s in steps), 2), machine=machine,
                  meta_test="meta_test", meta_test_source=str(source.relative_to(root)), scores=scores)
    summary = (out / "meta_test" / "summary.md").read_text()
    table = "\n".join(line for line in summary.splitlines() if line.startswith("|"))
    harness.write_results(out / "demo", report, markdown(report, table))
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results folder (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    commands = recipe()
    machine = harness.machine_info()  # before the steps: the code that ran them
    steps = run_steps(commands, args.out / "logs")
    report = write_demo_results(steps, harness.REPO_ROOT, args.out, harness.command_line(__file__, argv), machine)
    harness.say(f"make demo: {report['total_seconds']:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
