"""The tables of numbers in README.md and docs/*.md, generated from the committed results.

    python benchmarks/doc_tables.py            # rewrite every generated block in the docs
    python benchmarks/doc_tables.py --check    # exit 1, naming each doc and table that differs
    python benchmarks/doc_tables.py --list     # every table id and the results files it reads

A doc asks for a generated table with two marker comments; everything between them belongs
to this script::

    <!-- table: league/digits -->
    <!-- end table -->

Each id in :data:`TABLES` names the results files under ``benchmarks/results/`` it reads and
how it renders them. Where a benchmark has a table function (``league.markdown_table``,
``throughput.markdown``, ``deap_mln.mln.variants.markdown_report``, the meta-test's
``markdown_table``) the table is that function's output on the committed JSON or CSV, so each
benchmark has one table formatter; a doc may show a subset of its columns and rows
(:meth:`MarkdownTable.select`), never re-formatted numbers. Where the committed JSON is older
than its formatter, the table is taken from the benchmark's own committed ``.md``. Paired
comparisons are recomputed from ``per_seed.csv`` with :func:`deap_mln.stats.compare_paired`.

``--check`` also refuses a table of numbers outside a generated block unless a comment right
above it says what it is: ``<!-- historical: COMMIT what -->`` (numbers from a run whose files
are not committed, or that the current code no longer reproduces; COMMIT is the commit that
produced them) or ``<!-- not results: why -->`` (defaults, definitions, sizes: nothing measured).
"""
from __future__ import annotations

import argparse
import csv
import importlib
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import harness

from deap_mln.io import read_json

REPO_ROOT = harness.REPO_ROOT
RESULTS = harness.RESULTS_DIR
DOCS = ("README.md", "docs/*.md")
COMMAND = "python benchmarks/doc_tables.py"
BLOCK = re.compile(r"^<!-- table: (?P<id>[\w./-]+) -->\n(?P<body>.*?)^<!-- end table -->$", re.M | re.S)
MARKER = re.compile(r"^<!-- (historical: [0-9a-f]{7,40}\b|not results: ).*-->$")
NOT_MEASURED = "not yet measured"


# ------------------------------------------------------------------------------ markdown tables


@dataclass(frozen=True)
class MarkdownTable:
    """A markdown table: its header, the alignment row and the body rows, as cell strings."""

    header: list[str]
    align: list[str]
    rows: list[list[str]] = field(default_factory=list)

    @staticmethod
    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().removeprefix("|").removesuffix("|"))]

    @classmethod
    def parse_all(cls, text: str) -> list[MarkdownTable]:
        """Every table in ``text``, in order (a table: consecutive lines starting with ``|``)."""
        tables, block = [], []
        for line in [*text.splitlines(), ""]:
            if line.startswith("|"):
                block.append(line)
                continue
            if len(block) >= 2:
                tables.append(cls(cls.cells(block[0]), cls.cells(block[1]), [cls.cells(b) for b in block[2:]]))
            block = []
        return tables

    def render(self) -> str:
        lines = ["|" + "|".join(f" {cell} " if cell else " " for cell in row) + "|" for row in [self.header, *self.rows]]
        return "\n".join([lines[0], "|" + "|".join(self.align) + "|", *lines[1:]])

    def column(self, name: str) -> int:
        if name not in self.header:
            raise KeyError(f"no column {name!r}; the table has {self.header}")
        return self.header.index(name)

    def select(self, columns: Sequence[str] | None = None, rows: Sequence[str] | None = None,
               where: Mapping[str, str] | None = None, labels: Mapping[str, str] | None = None,
               headers: Mapping[str, str] | None = None) -> MarkdownTable:
        """A view of the table: ``columns`` by header, in that order; ``rows`` by their first
        cell, in that order (each must exist); ``where``: rows whose named columns hold these
        values; ``labels`` renames rows (their first cell) and ``headers`` columns. No number is changed."""
        body = [r for r in self.rows if all(r[self.column(c)] == v for c, v in (where or {}).items())]
        if rows is not None:
            first = {r[0]: r for r in body}
            missing = [name for name in rows if name not in first]
            if missing:
                raise KeyError(f"no row {missing[0]!r}; the table has {list(first)}")
            body = [first[name] for name in rows]
        if labels:
            body = [[labels.get(r[0], r[0]), *r[1:]] for r in body]
        index = [self.column(c) for c in columns] if columns is not None else list(range(len(self.header)))
        body = [[r[i] for i in index] for r in body]
        header = [(headers or {}).get(self.header[i], self.header[i]) for i in index]
        return replace(self, header=header, align=[self.align[i] for i in index], rows=body)


def nth_table(text: str, index: int, what: str) -> MarkdownTable:
    tables = MarkdownTable.parse_all(text)
    if index >= len(tables):
        raise ValueError(f"{what} has {len(tables)} tables, not {index + 1}")
    return tables[index]


def relative(path: Path) -> str:
    """``path`` relative to the repository root where it lies inside it."""
    return path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else str(path)


# ------------------------------------------------------------------------------ what a table is made from


@dataclass(frozen=True)
class DocTable:
    """A generated table: the results files it reads (relative to ``benchmarks/results``) and
    the function that renders them. ``optional``: a missing file renders a placeholder
    saying it was not yet measured instead of failing (the demo's own results)."""

    sources: tuple[str, ...]
    render: Callable[[], str]
    optional: bool = False

    def text(self) -> str:
        missing = [s for s in self.sources if not (RESULTS / s).exists()]
        if missing and self.optional:
            return f"*{NOT_MEASURED}: `{relative(RESULTS / missing[0])}` does not exist yet.*"
        if missing:
            raise FileNotFoundError(f"{relative(RESULTS / missing[0])} is missing")
        return self.render()


def benchmark(name: str) -> Any:
    """A benchmark script of this folder as a module (they import ``harness`` the same way)."""
    return importlib.import_module(name)


def from_function(module: str, stem: str, index: int, **select: Any) -> DocTable:
    """Table ``index`` of ``module.markdown(results/STEM.json)``: the benchmark's own formatter."""
    def render() -> str:
        text = benchmark(module).markdown(read_json(RESULTS / f"{stem}.json"))
        return nth_table(text, index, f"{module}.markdown({stem}.json)").select(**select).render()
    return DocTable((f"{stem}.json",), render)


def from_results_md(path: str, index: int, **select: Any) -> DocTable:
    """Table ``index`` of a committed results ``.md``, as its benchmark wrote it: for results
    whose JSON predates the benchmark's current formatter."""
    def render() -> str:
        return nth_table((RESULTS / path).read_text(), index, path).select(**select).render()
    return DocTable((path,), render)


def from_variants(folder: str, index: int, **select: Any) -> DocTable:
    """Table ``index`` of :func:`deap_mln.mln.variants.markdown_report` on ``folder/bench.json``
    (what ``deap-mln bench`` and the variant benchmarks write as ``report.md``)."""
    def render() -> str:
        from deap_mln.mln.variants import markdown_report

        text = markdown_report(read_json(RESULTS / folder / "bench.json"))
        return nth_table(text, index, f"{folder}/bench.json").select(**select).render()
    return DocTable((f"{folder}/bench.json",), render)


def league_rows(folder: str, dataset: str) -> tuple[list[dict], int]:
    data = read_json(RESULTS / folder / "league.json")
    return data["tables"][dataset], len(data["seeds"])


def from_league(folder: str, dataset: str, **select: Any) -> DocTable:
    """One data set's table of ``benchmarks/league.py`` (its ``markdown_table``) from ``league.json``."""
    def render() -> str:
        rows, seeds = league_rows(folder, dataset)
        text = benchmark("league").markdown_table(rows, seeds)
        return nth_table(text, 0, f"league.markdown_table({folder}/league.json)").select(**select).render()
    return DocTable((f"{folder}/league.json",), render)


# ------------------------------------------------------------------------------ meta-tests from per_seed.csv


def exact_accuracies(values: Sequence[float], written_digits: int = 6, max_test_size: int = 100_000) -> list[float]:
    """Accuracies as the meta-test computed them, from their rounded copies in ``per_seed.csv``.

    An accuracy is k / N for the N test points, and the sign-flip test treats sums of
    differences that agree to 1e-9 as ties; rounded to 6 decimals they no longer agree, which
    moves p (0.281 instead of 0.438 for MSE on digits). The smallest N <= ``max_test_size`` for
    which every value lies within rounding of some k / N is the test size (or a divisor of it),
    and k / N restores the original floats. No such N: the values as written."""
    tolerance = 0.5 * 10.0 ** -written_digits
    for n in range(1, max_test_size + 1):
        if all(abs(v * n - round(v * n)) <= tolerance * n + 1e-9 for v in values):
            return [round(v * n) / n for v in values]
    return list(values)


def meta_test_records(folder: str) -> list:
    """The runs of a committed meta-test (``per_seed.csv``) as the meta-test's own records."""
    from deap_mln.metatest.train import RunRecord

    with (RESULTS / folder / "per_seed.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    accuracies = exact_accuracies([float(row["final_accuracy"]) for row in rows])
    return [RunRecord(loss=row["loss"], seed=int(row["seed"]), steps=[0], accuracy=[accuracy],
                      diverged=row["diverged"] not in ("", "0"), seconds=float(row["seconds"]))
            for row, accuracy in zip(rows, accuracies, strict=True)]


def meta_test_summaries(folder: str) -> dict[str, Any]:
    """Loss name -> :class:`deap_mln.metatest.report.LossSummary`, the paired comparisons with
    CE recomputed by the project's test (exact sign-flip, bootstrap interval)."""
    from deap_mln.metatest.report import summarise_losses

    return {s.loss: s for s in summarise_losses(meta_test_records(folder))}


def from_meta_test(folder: str, **select: Any) -> DocTable:
    """A committed meta-test's table, re-summarised from ``per_seed.csv`` by the meta-test's own
    ``markdown_table`` (with the tuned rates of ``settings.json`` where it has them)."""
    def render() -> str:
        from deap_mln.metatest.report import markdown_table, summarise_losses

        settings = read_json(RESULTS / folder / "settings.json")
        text = markdown_table(summarise_losses(meta_test_records(folder)), rates=settings.get("learning_rates"))
        return nth_table(text, 0, f"{folder}/per_seed.csv").select(**select).render()
    return DocTable((f"{folder}/per_seed.csv", f"{folder}/settings.json"), render)


def paired_text(summary: Any) -> str:
    """A loss's difference from CE and its sign-flip p, or why there is no test."""
    c = summary.comparison
    if c.p_value != c.p_value:  # nan: too few seeds
        return f"{c.mean_difference:+.4f}, no test possible ({c.n} seeds)"
    return f"{c.mean_difference:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}], p = {c.p_value:.3g}"


def accuracy_text(summary: Any) -> str:
    return f"{summary.mean:.4f} ± {summary.std:.4f}"


# ------------------------------------------------------------------------------ tables of one doc


REPRODUCTION_META_TESTS = [  # (row label, folder under reproduction/)
    ("synthetic-linear, perceptron", "synthetic-linear"),
    ("synthetic-nonlinear, mlp3", "synthetic-nonlinear"),
    ("digits (real, 8x8), mlp3", "digits"),
    ("MNIST (real images), LeNet-5", "mnist"),
]


def reproduction_table2() -> str:
    """docs/reproduction.md's Table 2: each evolved loss at the paper's MLN rate and at CE's,
    CE and MSE, from the eight committed meta-tests, paired with CE by the sign-flip test."""
    lines = ["| dataset, model | seeds | evolved, lr 1e-4 (paper) | vs CE | evolved, lr 1e-3 | vs CE | CE | MSE | vs CE |",
             "|---|---:|---|---|---|---|---|---|---|"]
    for label, name in REPRODUCTION_META_TESTS:
        paper = meta_test_summaries(f"reproduction/meta_test_{name}")
        equal = meta_test_summaries(f"reproduction/meta_test_{name}_mln-lr-1e-3")
        evolved = next(k for k in paper if k.endswith("best_loss.pt"))
        lines.append(f"| {label} | {paper['ce'].runs} | {accuracy_text(paper[evolved])} | {paired_text(paper[evolved])} "
                     f"| {accuracy_text(equal[evolved])} | {paired_text(equal[evolved])} | {accuracy_text(paper['ce'])} "
                     f"| {accuracy_text(paper['mse'])} | {paired_text(paper['mse'])} |")
    return "\n".join(lines)


def reproduction_fig5() -> str:
    """docs/reproduction.md's Fig. 5 numbers from the two committed quick-preset logbooks."""
    lines = ["| tasks | best fitness, generation 0 | best fitness, last generation | best of the run | "
             "seconds (sum over the logbook's generations) |", "|---|---:|---:|---:|---:|"]
    for kind in ("linear", "nonlinear"):
        rows = harness.read_csv_rows(RESULTS / "reproduction" / f"evolve-{kind}" / "logbook.csv")
        best = [float(r["best"]) for r in rows]
        lines.append(f"| {kind} | {best[0]:.4f} | {best[-1]:.4f} (generation {rows[-1]['gen']}) | {max(best):.4f} "
                     f"| {sum(float(r['seconds']) for r in rows):.1f} |")
    return "\n".join(lines)


def edl_meta_tests() -> str:
    """docs/edl.md: the pretrained EDL loss against CE on the two committed meta-tests."""
    lines = ["| task | seeds | EDL loss | cross-entropy | EDL - CE [95% CI], sign-flip p |", "|---|---:|---|---|---|"]
    for label, folder in (("digits, mlp3, 500 steps", "meta_test_digits"),
                          ("synthetic-linear, perceptron, 1,000 steps", "meta_test_synthetic")):
        s = meta_test_summaries(f"edl_mutation/{folder}")
        edl = next(k for k in s if k.endswith("best_loss.pt"))
        lines.append(f"| {label} | {s['ce'].runs} | {accuracy_text(s[edl])} | {accuracy_text(s['ce'])} "
                     f"| {paired_text(s[edl])} |")
    return "\n".join(lines)


DEMO_LABELS = {"ce": "CE", "ls": "label smoothing", "mse": "MSE", "focal": "focal"}


def demo_label(loss: str) -> str:
    """A demo loss's name for prose: the run directory of an evolved loss, else the reference's name."""
    return f"`{Path(loss).parent.as_posix()}`" if loss.endswith(".pt") else DEMO_LABELS.get(loss, loss)


def demo_paragraph() -> str:
    """README: what ``make demo`` took and gave, from ``benchmarks/results/demo/``."""
    demo = read_json(RESULTS / "demo" / "demo.json")
    ranked = sorted(meta_test_summaries("demo/meta_test").values(), key=lambda s: -s.mean)
    steps = "; ".join(f"{s['name']} {s['seconds']:.0f} s" for s in demo["steps"] if s["seconds"] >= 1)
    accuracies = ", ".join(f"{demo_label(s.loss)} {s.mean:.3f}" for s in ranked)
    versus = "; ".join(f"{demo_label(s.loss)} {paired_text(s)}" for s in ranked if s.comparison is not None)
    return (f"Measured by `{demo['command']}` ({harness.machine_line(demo['machine'])}): "
            f"{demo['total_seconds']:.0f} s after install ({steps}). Mean test accuracy over "
            f"{ranked[0].runs} seeds: {accuracies}. Against CE, paired by seed: {versus}. "
            f"Files: `benchmarks/results/demo/`.")


# ------------------------------------------------------------------------------ league v2


LEAGUE_V2 = "league_v2/league.json"


def league_v2_cell(data: Mapping[str, Any], cell: str) -> dict | None:
    """The entry of ``league.json``'s ``cells`` for ``cell`` ("dataset/optimizer"), None where the report has none."""
    return next((e for e in data["cells"] if f"{e['dataset']}/{e['optimizer']}" == cell), None)


def seeds_text(data: Mapping[str, Any]) -> str:
    """How many seeds the league's tables hold, saying so when the run has not finished them all."""
    planned, seeds = len(data["plan"]["seeds"]), len(data["cells"][0]["seeds"]) if data["cells"] else 0
    full = benchmark("league_v2").SEEDS
    return f"{seeds} seeds" if planned >= len(full) else f"{seeds} of the league's {len(full)} seeds (a partial report)"


def from_league_v2_cell(cell: str, **select: Any) -> DocTable:
    """One cell's table of ``benchmarks/league_v2.py`` (its ``markdown_cell``) from ``league.json``."""
    def render() -> str:
        entry = league_v2_cell(read_json(RESULTS / LEAGUE_V2), cell)
        if entry is None or not entry["rows"]:
            return f"*{NOT_MEASURED}: no row of {cell} has finished all of the report's seeds.*"
        text = benchmark("league_v2").markdown_cell(entry)
        return nth_table(text, 0, f"league_v2.markdown_cell({LEAGUE_V2})").select(**select).render()
    return DocTable((LEAGUE_V2,), render, optional=True)


def league_v2_target() -> str:
    """The target's verdict, part by part, as ``benchmarks/league_v2.py`` writes it (without its heading)."""
    data = read_json(RESULTS / LEAGUE_V2)
    lines = benchmark("league_v2").markdown_target(data["target"])
    return f"From {seeds_text(data)}.\n\n" + "\n".join(lines[2:])


def league_v2_summary() -> str:
    """Per cell, the best row of each kind against CE and ls-tuned, as ``benchmarks/league_v2.py`` writes it."""
    data = read_json(RESULTS / LEAGUE_V2)
    return benchmark("league_v2").markdown_summary(data["cells"])


def league_v2_costs() -> str:
    """What a search cost per cell, as ``benchmarks/league_v2.py`` writes it."""
    data = read_json(RESULTS / LEAGUE_V2)
    return benchmark("league_v2").markdown_costs(data["budget"]["per_cell"], data["plan"]["families"])


def league_v2_paragraph() -> str:
    """README: per cell, the best evolved loss against the best fixed one, and the target's verdict."""
    data = read_json(RESULTS / LEAGUE_V2)
    target = data["target"]
    verdicts = []
    for part in target["a"]["cells"]:
        if "best_evolved" not in part:
            continue
        mean = {r["loss"]: r["mean"] for r in league_v2_cell(data, part["cell"])["rows"]}  # type: ignore[index]
        p = "no test possible" if part["p"] is None else f"p {part['p']:.3f}"
        verdicts.append(f"{part['cell']}: {part['best_evolved']} {mean[part['best_evolved']]:.3f} against "
                        f"{part['best_fixed']} {mean[part['best_fixed']]:.3f} ({part['diff']:+.4f}, {p})")
    met = {k: "met" if target[k]["met"] else "not met" for k in ("a", "b", "c")}
    return (f"League v2 (`{data['command']}`, {seeds_text(data)}, {data['budget']['spec_trainings']} spec trainings "
            f"per search; `benchmarks/results/league_v2/league.md`), the best learned loss (evolved on the cell's data, "
            f"universal or transfer) against the best fixed loss per cell, mean test accuracy and paired sign-flip p: "
            f"{'; '.join(verdicts) or 'none finished'}. "
            f"Target: (a) no cell where the best learned loss is significantly worse, {met['a']}; (b) a learned loss "
            f"beating CE and tuned label smoothing (Holm p < 0.05) in {target['b']['count']} cells (2 wanted), "
            f"{met['b']}; (c) the MLN hybrid within the best family's interval in {target['c']['count']} cells "
            f"(3 wanted), {met['c']}.")


# ------------------------------------------------------------------------------ every table of the docs


VARIANT_COLUMNS = ["variant", "seeds", "held-out fitness median [IQR]", "held-out accuracy median", "reached",
                   "evals to threshold (median)", "s/run"]
LEAGUE_COLUMNS = ["loss", "kind", "mean test acc. (sd)", "vs CE [95% CI]", "wins / losses of 10", "p (Holm)",
                  "Adam lr", "evolution CPU s", "s / run (x CE)"]
LEAGUE_TARGET_COLUMNS = ["loss", "mean test acc. (sd)", "vs CE [95% CI]", "wins / losses of 10", "p (Holm)",
                         "evolution CPU s"]
LEAGUE_TARGET_ROWS = ["mln-universal", "mln-kclass", "mln-hybrid", "mln-es", "gp (!)", "taylorglo", "ce", "mse",
                      "focal", "ls"]
LEAGUE_V2_COLUMNS = ["loss", "kind", "mean test acc. (sd)", "vs CE [95% CI]", "p Holm vs CE", "vs ls-tuned [95% CI]",
                     "p Holm vs ls-tuned", "lr", "spec trainings", "search CPU s"]
META_TEST_COLUMNS = ["loss", "lr", "runs", "test accuracy mean", "std", "diff vs ce [95% CI]", "test", "p", "s/run"]

TABLES: dict[str, DocTable] = {
    # docs/league.md and docs/reproduction.md
    "league/digits": from_league("league", "digits", columns=LEAGUE_COLUMNS),
    "league/mnist1d": from_league("league", "mnist1d", columns=LEAGUE_COLUMNS),
    "league/long-fitness": from_league("league_long_fitness", "mnist1d", columns=LEAGUE_COLUMNS,
                                       rows=["ce", "taylorglo", "gp (!)", "mln-hybrid"]),
    "league/target-digits": from_league("league", "digits", columns=LEAGUE_TARGET_COLUMNS, rows=LEAGUE_TARGET_ROWS),
    "league/target-mnist1d": from_league("league", "mnist1d", columns=LEAGUE_TARGET_COLUMNS, rows=LEAGUE_TARGET_ROWS),
    # docs/reproduction.md
    "reproduction/fig5": DocTable(("reproduction/evolve-linear/logbook.csv", "reproduction/evolve-nonlinear/logbook.csv"),
                                  reproduction_fig5),
    "reproduction/table2": DocTable(tuple(f"reproduction/meta_test_{name}{suffix}/per_seed.csv"
                                          for _, name in REPRODUCTION_META_TESTS for suffix in ("", "_mln-lr-1e-3")),
                                    reproduction_table2),
    "reproduction/table3": from_variants("es_vs_hybrid_paper", 0, columns=VARIANT_COLUMNS),
    "reproduction/table3-paired": from_variants("es_vs_hybrid_paper", 1),
    "reproduction/digits-task": from_meta_test("digits_task", columns=META_TEST_COLUMNS,
                                               labels={"runs/digits-task/best_loss.pt": "evolved on digits (MLN)"}),
    # docs/benchmarks.md
    "benchmarks/update-rules": from_variants("update_rules", 0, columns=VARIANT_COLUMNS),
    "benchmarks/update-rules-paired": from_variants("update_rules", 1),
    "benchmarks/es-vs-hybrid-quick": from_results_md("es_vs_hybrid/report.md", 0),
    "benchmarks/es-vs-hybrid-quick-tests": from_results_md("es_vs_hybrid/report.md", 1),
    "benchmarks/edl-mutation": from_results_md("edl_mutation/report.md", 0),
    "benchmarks/edl-mutation-tests": from_results_md("edl_mutation/report.md", 1),
    # docs/edl.md
    "edl/meta-test": DocTable(tuple(f"edl_mutation/{f}/per_seed.csv" for f in ("meta_test_digits", "meta_test_synthetic")),
                              edl_meta_tests),
    # docs/gp.md
    "fidelity/default": from_results_md("fidelity/fidelity.md", 0),
    "gp/efficiency": from_results_md("gp_efficiency.md", 0),
    "gp/known-losses": from_results_md("gp_efficiency.md", 1),
    # docs/method.md
    "method/tasks-per-evaluation": from_function("algorithm1", "algorithm1_tasks/algorithm1", 0),
    "method/kclass-cost": from_function("kclass_path", "kclass_path", 0),
    "method/kclass-resolution": from_function("kclass_path", "kclass_path", 1),
    "method/warm-start": from_function("warm_start", "warm_start/warm_start", 0),
    # docs/parallel.md
    "parallel/backends": from_function("backends", "backends", 0),
    "parallel/scoop": from_function("throughput", "throughput", 1, rows=[
        "deap_mln SCOOP backend (`evaluation_map(\"scoop\")`), `python -m scoop -n 2`",
        "plain `scoop.futures.map`, `python -m scoop -n 2` (for contrast)"],
        columns=["map", "processes", "median", "speedup over builtin", "processes that ran a chunk, per map"]),
    # docs/performance.md
    "performance/throughput": from_function("throughput", "throughput", 0),
    "performance/generation": from_function("throughput", "throughput", 1),
    "performance/agreement": from_function("throughput", "throughput", 2),
    "performance/scaling": from_function("throughput", "throughput", 3),
    "performance/paper-run": from_function("throughput", "throughput", 4),
    "performance/deploy-idle-2core": from_function("deploy_overhead", "deploy_overhead_idle_2core", 0),
    "performance/deploy-quiet-host": from_function("deploy_overhead", "deploy_overhead_quiet_host", 0),
    "performance/deploy-shared-2threads": from_function("deploy_overhead", "deploy_overhead", 0),
    "performance/deploy-shared-1thread": from_function("deploy_overhead", "deploy_overhead_threads1", 0),
    # docs/deploy.md
    "deploy/schemes": from_function("deploy_overhead", "deploy_overhead", 1),
    "deploy/cost": from_function("deploy_overhead", "deploy_overhead_quiet_host", 0),
    # docs/league.md and README.md: league v2
    **{f"league-v2/{cell.replace('/', '-')}": from_league_v2_cell(cell, columns=LEAGUE_V2_COLUMNS)
       for cell in benchmark("league_v2").CELLS},
    "league-v2/summary": DocTable((LEAGUE_V2,), league_v2_summary, optional=True),
    "league-v2/target": DocTable((LEAGUE_V2,), league_v2_target, optional=True),
    "league-v2/costs": DocTable((LEAGUE_V2,), league_v2_costs, optional=True),
    "league-v2/readme": DocTable((LEAGUE_V2,), league_v2_paragraph, optional=True),
    # README.md
    "demo/readme": DocTable(("demo/demo.json", "demo/meta_test/per_seed.csv"), demo_paragraph, optional=True),
}


# ------------------------------------------------------------------------------ the docs


def doc_paths(root: Path = REPO_ROOT) -> list[Path]:
    return [p for pattern in DOCS for p in sorted(root.glob(pattern))]


def block_body(table_id: str, tables: Mapping[str, DocTable] = TABLES) -> str:
    """What belongs between a table's markers: a comment naming its sources, then the table."""
    spec = tables[table_id]
    sources = ", ".join(relative(RESULTS / s) for s in spec.sources)
    return (f"<!-- generated by `{COMMAND}` from {sources}: change the results, not this table -->\n"
            f"{spec.text()}\n")


def regenerate(text: str, tables: Mapping[str, DocTable] = TABLES) -> tuple[str, list[str]]:
    """``text`` with every generated block rewritten; the ids of blocks that changed.
    An id not in ``tables`` is a KeyError naming it."""
    changed: list[str] = []

    def fill(m: re.Match) -> str:
        table_id = m["id"]
        if table_id not in tables:
            raise KeyError(f"unknown table id {table_id!r} (known: {', '.join(sorted(tables))})")
        body = block_body(table_id, tables)
        if body != m["body"]:
            changed.append(table_id)
        return f"<!-- table: {table_id} -->\n{body}<!-- end table -->"

    return BLOCK.sub(fill, text), changed


def unmarked_tables(text: str) -> list[int]:
    """Line numbers (1-based) of tables of numbers outside generated blocks that no
    ``historical:`` or ``not results:`` comment introduces."""
    lines = text.splitlines()
    generated = set()
    for m in BLOCK.finditer(text):
        start = text.count("\n", 0, m.start())
        generated.update(range(start, start + m.group(0).count("\n") + 1))
    found, fenced = [], False
    for i, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        starts = line.lstrip().startswith("|") and (i == 0 or not lines[i - 1].lstrip().startswith("|"))
        if fenced or not starts or i in generated:
            continue
        table = []
        for row in lines[i + 2:]:
            if not row.lstrip().startswith("|"):
                break
            table.append(row)
        if not any(re.search(r"\d", row) for row in table):
            continue
        above = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        if not MARKER.match(above.strip()):
            found.append(i + 1)
    return found


def check_docs(paths: Iterable[Path], tables: Mapping[str, DocTable] = TABLES) -> list[str]:
    """One line per problem: a generated table that differs from its results, an unknown id,
    a table of numbers that is neither generated nor marked. Empty: the docs are up to date."""
    problems = []
    for path in paths:
        name, text = relative(path), path.read_text()
        try:
            _, changed = regenerate(text, tables)
        except KeyError as error:
            problems.append(f"{name}: {error.args[0]}")
            continue
        problems += [f"{name}: table {t} differs from {', '.join(relative(RESULTS / s) for s in tables[t].sources)}"
                     for t in changed]
        problems += [f"{name}:{line}: a table of numbers that is not generated; generate it (a `<!-- table: ID -->` "
                     f"block) or say what it is (`<!-- historical: COMMIT ... -->` or `<!-- not results: ... -->`)"
                     for line in unmarked_tables(text)]
    return problems


def write_docs(paths: Iterable[Path], tables: Mapping[str, DocTable] = TABLES) -> list[str]:
    """Regenerate every block in ``paths``; ``doc: table`` for each that changed."""
    written = []
    for path in paths:
        text, changed = regenerate(path.read_text(), tables)
        if changed:
            harness.write_text(path, text)
            written += [f"{relative(path)}: {t}" for t in changed]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="change nothing; exit 1 if a doc differs from its results")
    mode.add_argument("--list", action="store_true", help="print every table id and the results files it reads")
    args = parser.parse_args(argv)
    if args.list:
        used = {m["id"]: relative(p) for p in doc_paths() for m in BLOCK.finditer(p.read_text())}
        for table_id, spec in TABLES.items():
            print(f"{table_id}  [{used.get(table_id, 'not used')}]  <- {', '.join(spec.sources)}")
        return 0
    if args.check:
        problems = check_docs(doc_paths())
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print(f"{len(problems)} problem(s); `{COMMAND}` rewrites the generated tables", file=sys.stderr)
        return 1 if problems else 0
    for line in write_docs(doc_paths()):
        print(f"wrote {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
