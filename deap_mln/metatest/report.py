"""Meta-test results: per-loss summary, paired tests against cross-entropy, files and figure.

Each loss is compared with the reference loss (``ce``) over the seeds, pairing the two runs
that share a seed (same initial weights, same batches), by :func:`deap_mln.stats.compare_paired`:
the mean over seeds of (loss accuracy - reference accuracy), its 95% percentile bootstrap
interval, and the two-sided p of an exact sign-flip test (Monte Carlo above 16 seeds).
With n < 5 seeds neither p nor interval is reported: no test of n pairs can give p below
2/2^n (0.25 for n = 3). Identical accuracies on every seed (n >= 5): p = 1.
"""
from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deap_mln.io import write_csv, write_json, write_text
from deap_mln.metatest.train import RunRecord
from deap_mln.plotting import pyplot, save_figure
from deap_mln.stats import (
    BOOTSTRAP_RESAMPLES,
    EXACT_MAX_PAIRS,
    MIN_PAIRS_FOR_TEST,
    MONTE_CARLO_DRAWS,
    compare_paired,
    min_sign_flip_p,
)

REFERENCE = "ce"
EDGE_MARK = "(edge)"  # beside the rate of a loss whose tuned rate search ended at an edge (train.search_learning_rate)
EDGE_NOTE = (f"{EDGE_MARK}: its best learning rate is the edge of the range searched: its accuracy may be understated, "
             f"as a rate beyond the edge may do better (settings.json: tuning, per_loss, stop says why the search ended).")
FILES = ("summary.csv", "summary.md", "per_seed.csv", "curves.csv", "curves.png", "settings.json")


@dataclass(frozen=True)
class PairedComparison:
    """A loss against the reference over paired seeds."""

    reference: str
    test: str              # "sign-flip (exact)", "sign-flip (Monte Carlo, ...)", "identical" or "too few seeds ..."
    n: int
    mean_difference: float  # mean of (loss - reference) test accuracy
    p_value: float          # two-sided; nan for n < 5
    ci_low: float           # 95% percentile bootstrap interval of mean_difference; nan for n < 5
    ci_high: float
    min_p_value: float      # 2/2^n: the smallest p any exact test of n paired seeds can give


@dataclass(frozen=True)
class LossSummary:
    """Final test accuracy of one loss over its seeds."""

    loss: str
    runs: int
    mean: float
    std: float       # sample standard deviation (ddof 1); 0 for one run
    minimum: float
    maximum: float
    diverged: int
    seconds: float   # mean wall time of one run
    comparison: PairedComparison | None


def paired_comparison(values: Sequence[float], reference_values: Sequence[float], reference: str = REFERENCE) -> PairedComparison:
    """``values`` against ``reference_values`` (same seeds, same order): :func:`deap_mln.stats.compare_paired`."""
    r = compare_paired(values, reference_values)
    return PairedComparison(reference, r.test, r.n, r.mean_difference, r.p_value, r.ci_low, r.ci_high, r.min_p_value)


def _by_loss(records: Sequence[RunRecord]) -> dict[str, list[RunRecord]]:
    groups: dict[str, list[RunRecord]] = {}
    for r in records:
        groups.setdefault(r.loss, []).append(r)
    for runs in groups.values():
        runs.sort(key=lambda r: r.seed)
    return groups


def summarise_losses(records: Sequence[RunRecord], reference: str = REFERENCE) -> list[LossSummary]:
    """One summary per loss, in the order losses first appear; each non-reference loss is
    compared with ``reference`` on the seeds both have (no comparison if it is absent)."""
    groups = _by_loss(records)
    ref = {r.seed: r.final_accuracy for r in groups.get(reference, [])}
    out = []
    for loss, runs in groups.items():
        acc = np.array([r.final_accuracy for r in runs])
        comparison = None
        if ref and loss != reference:
            shared = [r for r in runs if r.seed in ref]
            comparison = paired_comparison([r.final_accuracy for r in shared], [ref[r.seed] for r in shared], reference)
        out.append(LossSummary(loss, len(runs), float(acc.mean()), float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                               float(acc.min()), float(acc.max()), sum(r.diverged for r in runs),
                               float(np.mean([r.seconds for r in runs])), comparison))
    return out


def _p(p: float) -> str:
    return f"n/a (n < {MIN_PAIRS_FOR_TEST})" if math.isnan(p) else (f"{p:.2e}" if p < 1e-3 else f"{p:.3f}")


def _csv_number(x: float, fmt: str = ".6f") -> str:
    return "" if math.isnan(x) else format(x, fmt)  # no number rather than "nan": nothing was estimated


def _difference(c: PairedComparison) -> str:
    if math.isnan(c.ci_low):
        return f"{c.mean_difference:+.4f}"
    return f"{c.mean_difference:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}]"


def _rate(rates: Mapping[str, float], loss: str) -> str:
    return f"{rates[loss]:g}" if loss in rates else ""


def rates_at_edge(run_info: Mapping) -> set[str]:
    """The losses whose tuned rate search ended at an edge (``at_edge`` in ``run_info["tuning"]``)."""
    per_loss = (run_info.get("tuning") or {}).get("per_loss") or {}
    return {loss for loss, search in per_loss.items() if search.get("at_edge")}


def summary_row(s: LossSummary) -> dict:
    """One row of summary.csv."""
    c = s.comparison
    return dict(loss=s.loss, runs=s.runs, mean_accuracy=f"{s.mean:.6f}", std_accuracy=f"{s.std:.6f}",
                min_accuracy=f"{s.minimum:.6f}", max_accuracy=f"{s.maximum:.6f}", diverged=s.diverged,
                mean_seconds=f"{s.seconds:.3f}", reference=c.reference if c else "", test=c.test if c else "",
                mean_difference=_csv_number(c.mean_difference) if c else "",
                ci_low=_csv_number(c.ci_low) if c else "", ci_high=_csv_number(c.ci_high) if c else "",
                p_value=_csv_number(c.p_value, ".6g") if c else "")


def markdown_table(summaries: Sequence[LossSummary], reference: str = REFERENCE,
                   rates: Mapping[str, float] | None = None, at_edge: Collection[str] = (),
                   row_labels: Mapping[str, str] | None = None) -> str:
    """The summary as a markdown table (also what the terminal shows); with ``rates`` (loss ->
    learning rate), a column of each loss's rate follows its name, marked :data:`EDGE_MARK`
    for the losses in ``at_edge``. ``row_labels`` shows a loss under a longer label
    (``ls-tuned (eps 0.05)``)."""
    lr_head, lr_align = ("lr | ", "---:|") if rates else ("", "")
    lines = [f"| loss | {lr_head}runs | test accuracy mean | std | diff vs {reference} [95% CI] | test | p | diverged | s/run |",
             f"|---|{lr_align}---:|---:|---:|---:|---|---:|---:|---:|"]
    for s in summaries:
        c = s.comparison
        vs = (f"{_difference(c)} | {c.test} | {_p(c.p_value)}" if c else
              ("(reference) | | " if s.loss == reference else "n/a | no reference run | "))
        lr = f"{_rate(rates, s.loss)}{' ' + EDGE_MARK if s.loss in at_edge else ''} | " if rates else ""
        label = (row_labels or {}).get(s.loss, s.loss)
        lines.append(f"| {label} | {lr}{s.runs} | {s.mean:.4f} | {s.std:.4f} | {vs} | {s.diverged} | {s.seconds:.1f} |")
    return "\n".join(lines)


def statistics_note(comparisons: Sequence[PairedComparison], reference: str = REFERENCE) -> str:
    """The text under the table of summary.md: what the statistics are and what they cannot say."""
    if not comparisons:
        return f"No paired tests: {reference} was not among the losses."
    note = (f"Paired over seeds against {reference}: mean difference (loss - {reference}) in test accuracy with its "
            f"95% percentile bootstrap interval ({BOOTSTRAP_RESAMPLES:,} resamples); p is two-sided, from the exact "
            f"sign-flip (paired permutation) test of mean difference 0 over all 2^n sign patterns (Monte Carlo, "
            f"{MONTE_CARLO_DRAWS:,} patterns, above {EXACT_MAX_PAIRS} seeds). With n seeds no p below 2/2^n is possible. "
            f"The interval never leaves the range of the per-seed differences: with few seeds it is narrower than "
            f"a true 95% interval.")
    small = sorted({c.n for c in comparisons if c.n < MIN_PAIRS_FOR_TEST})
    if small:
        n = small[-1]
        note += (f"\n\nWith {n} seed{'s' if n != 1 else ''} the sample is too small for a p-value or an interval "
                 f"(needs n >= {MIN_PAIRS_FOR_TEST}): the smallest p any test of the signs could give is "
                 f"2/2^{n} = {min_sign_flip_p(n):.3g}. Run more seeds (--seeds).")
    return note


def plot_curves(records: Sequence[RunRecord], path: str | Path, title: str = "") -> None:
    """Test accuracy against training step: mean over seeds per loss, band of +-1 sample std."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (loss, runs) in enumerate(_by_loss(records).items()):
        steps = np.array(runs[0].steps)
        acc = np.array([r.accuracy for r in runs])
        mean, std = acc.mean(axis=0), (acc.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros(len(steps)))
        ax.plot(steps, mean, color=f"C{i}", label=f"{loss} (n={len(runs)})")
        ax.fill_between(steps, mean - std, mean + std, color=f"C{i}", alpha=0.2)
    ax.set_xlabel("training step")
    ax.set_ylabel("test accuracy")
    ax.set_title(title or "test accuracy over training (mean +- 1 std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def write_report(records: Sequence[RunRecord], out_dir: str | Path, run_info: dict, reference: str = REFERENCE) -> str:
    """Write :data:`FILES` into ``out_dir`` (created if needed); return the markdown table.

    summary.csv / summary.md: one row per loss; per_seed.csv: final accuracy of every run;
    curves.csv: accuracy at every evaluated step of every run; curves.png: their means;
    settings.json: ``run_info`` (what was run, with which settings). Its ``learning_rates``
    (loss -> rate), where present, become a column of the table and of summary.csv; where it
    has a tuned protocol's searches, summary.csv gets ``lr_at_edge`` (1 for a search that ended
    at an edge, else 0) and the table marks those rates :data:`EDGE_MARK`, explained under it.
    Its ``row_labels`` (loss -> label) name rows of the table (ls-tuned with its epsilon)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summaries = summarise_losses(records, reference)
    rates: dict[str, float] = run_info.get("learning_rates") or {}
    rows = [summary_row(s) for s in summaries]
    tuned = bool((run_info.get("tuning") or {}).get("per_loss"))
    at_edge = rates_at_edge(run_info)
    if rates:  # the rate column follows the loss's name
        rows = [{"loss": row["loss"], "lr": _rate(rates, row["loss"]),
                 **({"lr_at_edge": int(row["loss"] in at_edge)} if tuned else {}), **row} for row in rows]
    write_csv(out / "summary.csv", rows)
    write_csv(out / "per_seed.csv", [dict(loss=r.loss, seed=r.seed, final_accuracy=f"{r.final_accuracy:.6f}",
                                          diverged=int(r.diverged), seconds=f"{r.seconds:.3f}") for r in records])
    write_csv(out / "curves.csv", [dict(loss=r.loss, seed=r.seed, step=step, accuracy=f"{a:.6f}")
                                   for r in records for step, a in zip(r.steps, r.accuracy)])
    title = f"{run_info.get('model', '')} on {run_info.get('dataset', '')}"
    plot_curves(records, out / "curves.png", title=f"{title}: test accuracy (mean +- 1 std)")
    table = markdown_table(summaries, reference, rates, at_edge, run_info.get("row_labels"))
    settings = ", ".join(f"{k} {run_info[k]}" for k in ("protocol", "optimizer", "steps", "batch_size", "lr", "mln_lr")
                         if run_info.get(k) is not None)
    note = statistics_note([s.comparison for s in summaries if s.comparison], reference)
    edge_note = f"{EDGE_NOTE}\n\n" if at_edge else ""
    write_text(out / "summary.md",
        f"# Meta-test: {title}\n\nData: {run_info.get('data_source', '')}\n\nSettings: {settings}.\n\n"
        f"{table}\n\n{edge_note}{note}\n")
    write_json(out / "settings.json", run_info)
    return table
