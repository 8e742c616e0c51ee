"""Meta-test results: per-loss summary, paired tests against cross-entropy, files and figure.

Each loss is compared with the reference loss (``ce``) over the seeds, pairing the two runs
that share a seed (same initial weights, same batches):

- n >= 6 seeds: Wilcoxon signed-rank test (two-sided, ``scipy.stats.wilcoxon``);
- 2 <= n < 6: paired t-test (two-sided, ``scipy.stats.ttest_rel``), because the signed-rank
  test cannot reach p < 0.05 with fewer than 6 pairs;
- identical accuracies on every seed: p = 1; n < 2: no test.

The mean difference is mean over seeds of (loss accuracy - reference accuracy).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deap_mln.io import write_csv, write_json, write_text
from deap_mln.metatest.train import RunRecord
from deap_mln.plotting import pyplot, save_figure

REFERENCE = "ce"
WILCOXON_MIN_N = 6
FILES = ("summary.csv", "summary.md", "per_seed.csv", "curves.csv", "curves.png", "settings.json")


@dataclass(frozen=True)
class PairedComparison:
    """A loss against the reference over paired seeds."""

    reference: str
    test: str              # "wilcoxon signed-rank", "paired t-test", "identical" or "none (n < 2)"
    n: int
    mean_difference: float  # mean of (loss - reference) test accuracy
    p_value: float          # two-sided; nan without a test


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
    """Two-sided paired test of ``values`` against ``reference_values`` (same seeds, same order)."""
    from scipy import stats

    a, b = np.asarray(values, dtype=float), np.asarray(reference_values, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired test needs equal numbers of runs, got {len(a)} and {len(b)}")
    n, diff = len(a), a - b
    mean_diff = float(diff.mean()) if n else math.nan
    if n < 2:
        return PairedComparison(reference, "none (n < 2)", n, mean_diff, math.nan)
    if np.all(diff == 0):
        return PairedComparison(reference, "identical", n, 0.0, 1.0)
    if n >= WILCOXON_MIN_N:
        return PairedComparison(reference, "wilcoxon signed-rank", n, mean_diff, float(stats.wilcoxon(a, b).pvalue))
    return PairedComparison(reference, "paired t-test", n, mean_diff, float(stats.ttest_rel(a, b).pvalue))


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
    return "n/a" if math.isnan(p) else (f"{p:.2e}" if p < 1e-3 else f"{p:.3f}")


def summary_row(s: LossSummary) -> dict:
    """One row of summary.csv."""
    c = s.comparison
    return dict(loss=s.loss, runs=s.runs, mean_accuracy=f"{s.mean:.6f}", std_accuracy=f"{s.std:.6f}",
                min_accuracy=f"{s.minimum:.6f}", max_accuracy=f"{s.maximum:.6f}", diverged=s.diverged,
                mean_seconds=f"{s.seconds:.3f}", reference=c.reference if c else "", test=c.test if c else "",
                mean_difference=f"{c.mean_difference:.6f}" if c else "", p_value=f"{c.p_value:.6g}" if c else "")


def markdown_table(summaries: Sequence[LossSummary], reference: str = REFERENCE) -> str:
    """The summary as a markdown table (also what the terminal shows)."""
    lines = [f"| loss | runs | test accuracy mean | std | diff vs {reference} | test | p | diverged | s/run |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for s in summaries:
        c = s.comparison
        vs = (f"{c.mean_difference:+.4f} | {c.test} | {_p(c.p_value)}" if c else
              ("(reference) | | " if s.loss == reference else "n/a | no reference run | "))
        lines.append(f"| {s.loss} | {s.runs} | {s.mean:.4f} | {s.std:.4f} | {vs} | {s.diverged} | {s.seconds:.1f} |")
    return "\n".join(lines)


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
    settings.json: ``run_info`` (what was run, with which settings)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summaries = summarise_losses(records, reference)
    write_csv(out / "summary.csv", [summary_row(s) for s in summaries])
    write_csv(out / "per_seed.csv", [dict(loss=r.loss, seed=r.seed, final_accuracy=f"{r.final_accuracy:.6f}",
                                          diverged=int(r.diverged), seconds=f"{r.seconds:.3f}") for r in records])
    write_csv(out / "curves.csv", [dict(loss=r.loss, seed=r.seed, step=step, accuracy=f"{a:.6f}")
                                   for r in records for step, a in zip(r.steps, r.accuracy)])
    title = f"{run_info.get('model', '')} on {run_info.get('dataset', '')}"
    plot_curves(records, out / "curves.png", title=f"{title}: test accuracy (mean +- 1 std)")
    table = markdown_table(summaries, reference)
    settings = ", ".join(f"{k} {run_info[k]}" for k in ("optimizer", "steps", "batch_size", "lr", "mln_lr") if k in run_info)
    note = (f"Paired over seeds against {reference}: Wilcoxon signed-rank for n >= {WILCOXON_MIN_N}, "
            f"else paired t-test; p two-sided." if any(s.comparison for s in summaries)
            else f"No paired tests: {reference} was not among the losses.")
    write_text(out / "summary.md",
        f"# Meta-test: {title}\n\nData: {run_info.get('data_source', '')}\n\nSettings: {settings}.\n\n"
        f"{table}\n\n{note}\n")
    write_json(out / "settings.json", run_info)
    return table
