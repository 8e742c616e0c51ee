"""Cost of training with an evolved loss: cross-entropy vs the MLN vs its compiled table.

Run from the repository root (the package installed)::

    python benchmarks/deploy_overhead.py --loss runs/q/best_loss.pt   # about 3 minutes on 2 cores
    python benchmarks/deploy_overhead.py --quick                       # smoke check, seconds

Times one training step (forward, backward, Adam step) on random 10-class 28x28 batches of
256 for LeNet-5 (``deap_mln.training.models``, "lenet") and a 784-256-10 MLP, each with

* ``ce``: ``nn.CrossEntropyLoss``;
* ``mln``: :class:`deap_mln.mln.MLNLoss` with the paper-size MLN (175,718 parameters),
  the saved loss of ``--loss`` or, without it, a Glorot-initialised one;
* ``compiled``: :class:`deap_mln.deploy.compiled.CompiledMLNLoss` of the same MLN at ``--resolution``.

All in one process with ``torch.set_num_threads(--threads)`` (default 2). After a warm-up,
each repeat times a block of steps of every loss in turn (the order rotates between repeats,
so load from other processes falls on all of them alike); the reported time per step is the
median over repeats. The load average before and after is recorded: this machine may be
shared. It also measures the compiled table's error against the network
(:func:`deap_mln.deploy.compiled.compile_error`) and the compile time.

Writes ``deploy_overhead.json`` and ``deploy_overhead.md`` (stem: ``--name``) to ``--out``
(default ``benchmarks/results``; with ``--quick`` a temporary directory). ``--compare-schemes``
adds the interpolation-scheme comparison of docs/deploy.md (Hermite against bilinear tables).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import harness
import numpy as np
import torch
from torch import nn

from deap_mln.deploy.compiled import (
    DEFAULT_RESOLUTION,
    CompiledMLNLoss,
    compile_error,
    mln_pair_function,
    probe_points,
    tabulate,
    value_and_gradient,
)
from deap_mln.mln.network import (
    PAPER_HIDDEN,
    MLNLoss,
    genome_to_module,
    load_loss_record,
)
from deap_mln.training.models import build_model

LOSSES = ("ce", "mln", "compiled")


def mlp(input_shape, num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), 256), nn.ReLU(),
                         nn.Linear(256, num_classes))


MODELS = {"lenet5": lambda: build_model("lenet", (1, 28, 28), 10), "mlp_784_256_10": lambda: mlp((1, 28, 28), 10)}


def make_step(model: nn.Module, loss: nn.Module, batches):
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    state = {"i": 0}

    def step() -> float:
        x, y = batches[state["i"] % len(batches)]
        state["i"] += 1
        opt.zero_grad(set_to_none=True)
        value = loss(model(x), y)
        value.backward()
        opt.step()
        return value

    return step


def time_model(name: str, losses: dict[str, nn.Module], batch: int, warmup: int, steps: int, repeats: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(batch, 1, 28, 28, generator=gen), torch.randint(0, 10, (batch,), generator=gen))
               for _ in range(8)]
    runners = {}
    for label, loss in losses.items():
        torch.manual_seed(0)
        runners[label] = make_step(MODELS[name](), loss, batches)
    for run in runners.values():
        for _ in range(warmup):
            run()
    per_step: dict[str, list[float]] = {label: [] for label in runners}
    labels = list(runners)
    for r in range(repeats):
        for label in labels[r % len(labels):] + labels[:r % len(labels)]:
            run = runners[label]
            tic = time.perf_counter()
            for _ in range(steps):
                value = run()
            float(value.detach())
            per_step[label].append((time.perf_counter() - tic) / steps)
    out = {}
    for label, times in per_step.items():
        q1, _, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0],) * 3
        out[label] = dict(median_ms=statistics.median(times) * 1e3, min_ms=min(times) * 1e3,
                          iqr_ms=[q1 * 1e3, q3 * 1e3], repeats_ms=[t * 1e3 for t in times])
    for label in out:
        out[label]["ratio_to_ce"] = out[label]["median_ms"] / out["ce"]["median_ms"]
    return out


def bilinear(tables: dict, p_true: torch.Tensor, p_false: torch.Tensor) -> list[torch.Tensor]:
    """The simpler scheme: bilinear interpolation of the value table and of the two derivative tables."""
    last = tables["values"].shape[0] - 1
    x, y = p_true * last, p_false * last
    i, j = x.floor().clamp(0, last - 1), y.floor().clamp(0, last - 1)
    u, v = x - i, y - j
    i, j = i.long(), j.long()
    return [t[i, j] * (1 - u) * (1 - v) + t[i + 1, j] * u * (1 - v)
            + t[i, j + 1] * (1 - u) * v + t[i + 1, j + 1] * u * v
            for t in (tables["values"], tables["d_true"], tables["d_false"])]


def compare_schemes(mln: nn.Module, resolutions, probes: int) -> list[dict]:
    """Hermite (the library's) against bilinear values + bilinear derivative tables, same tables, same probes."""
    p_true, p_false = probe_points(probes)
    exact = value_and_gradient(mln_pair_function(mln), p_true, p_false)
    rows = []
    for r in resolutions:
        tables, seconds = harness.timed(tabulate, mln_pair_function(mln), r)
        hermite = compile_error(mln, CompiledMLNLoss(tables), probes=probes)
        approx = bilinear(tables, p_true, p_false)
        value_error = (approx[0] - exact[0]).abs()
        grad_error = torch.maximum((approx[1] - exact[1]).abs(), (approx[2] - exact[2]).abs())
        scale, span = hermite["gradient_scale"], hermite["value_range"]
        rows.append(dict(resolution=r, tabulate_seconds=seconds, hermite=hermite, bilinear=dict(
            relative_value_error=float(value_error.max()) / span,
            relative_gradient_error=float(grad_error.max()) / scale,
            p99_relative_gradient_error=float(torch.quantile(grad_error.float(), 0.99)) / scale,
            mean_relative_gradient_error=float(grad_error.mean()) / scale)))
        harness.say(f"resolution {r}: hermite {rows[-1]['hermite']['relative_value_error']:.2e}, "
                    f"bilinear {rows[-1]['bilinear']['relative_value_error']:.2e} (value, of range)")
    return rows


def markdown(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    lines = ["# Deploying evolved losses: training-step overhead", "",
             f"{harness.machine_line(m)}; torch threads {s['threads']}. "
             f"Load average (1, 5, 15 min) before {report['load_before']}, after {report['load_after']}. "
             f"Command: `{report['command']}`.", "",
             f"One step = forward + backward + Adam step on a random batch of {s['batch']} 28x28 images, 10 classes; "
             f"median over {s['repeats']} repeats of {s['steps']} steps after {s['warmup']} warm-up steps "
             f"(IQR in brackets); on a loaded machine the fastest repeat is the least disturbed one. "
             f"MLN: {report['mln']['source']} ({report['mln']['parameters']:,} parameters); "
             f"compiled: {s['resolution']} x {s['resolution']} bicubic Hermite table "
             f"(compiled in {report['compile_seconds']:.1f} s).", "",
             "| model | loss | ms / step, median [IQR] | ratio to CE | fastest repeat, ms | ratio to CE |",
             "|---|---|---|---|---|---|"]
    for model, rows in report["timings"].items():  # empty with --skip-timing
        for label in LOSSES:
            r = rows[label]
            lines.append(f"| {model} | {label} | {r['median_ms']:.2f} [{r['iqr_ms'][0]:.2f}, {r['iqr_ms'][1]:.2f}] "
                         f"| {r['ratio_to_ce']:.2f} | {r['min_ms']:.2f} | {r['min_ms'] / rows['ce']['min_ms']:.2f} |")
    e = report["compile_error"]
    lines += ["", f"Compiled table against the network on {e['probes']:,} random points of the triangle "
                  f"p_true + p_false <= 1 (a fifth of them on p_false = 1 - p_true): max value error "
                  f"{e['max_value_error']:.2e} = {e['relative_value_error']:.1e} of the loss's range "
                  f"({e['value_range']:.3g}); gradient error max {e['relative_gradient_error']:.1e}, "
                  f"99th percentile {e['p99_relative_gradient_error']:.1e}, mean "
                  f"{e['mean_relative_gradient_error']:.1e} of the largest partial derivative "
                  f"({e['gradient_scale']:.3g}).", ""]
    if report.get("schemes"):
        lines += ["Interpolation schemes on the same tables and probes (errors relative to the loss's range and to "
                  "the largest partial derivative):", "",
                  "| resolution | tabulate s | scheme | max value error | gradient error max | p99 | mean |",
                  "|---|---|---|---|---|---|---|"]
        for row in report["schemes"]:
            for scheme in ("hermite", "bilinear"):
                e = row[scheme]
                lines.append(f"| {row['resolution']} | {row['tabulate_seconds']:.1f} | {scheme} | "
                             f"{e['relative_value_error']:.1e} | {e['relative_gradient_error']:.1e} | "
                             f"{e['p99_relative_gradient_error']:.1e} | {e['mean_relative_gradient_error']:.1e} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loss", type=Path, help="saved MLN (e.g. a run's best_loss.pt); default: Glorot paper MLN")
    parser.add_argument("--resolution", type=int, default=DEFAULT_RESOLUTION)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--probes", type=int, default=200_000, help="points for the compiled table's error")
    parser.add_argument("--compare-schemes", type=int, nargs="*", metavar="R",
                        help="also compare Hermite with bilinear tables at these resolutions (default 65 129 257 513)")
    parser.add_argument("--skip-timing", action="store_true", help="only the error measurements")
    parser.add_argument("--out", type=Path, help="results directory (default benchmarks/results; "
                                                 "with --quick a temporary directory)")
    parser.add_argument("--name", default="deploy_overhead", help="file name stem of the results (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="tiny settings, results to a temporary directory")
    args = parser.parse_args(argv)
    if args.quick:
        args.resolution, args.warmup, args.steps, args.repeats, args.probes = 33, 1, 2, 2, 2_000
        args.compare_schemes = [9, 17] if args.compare_schemes is not None else None
    out = harness.output_dir(args.out, args.quick, "deploy_overhead")
    report = dict(command=harness.command_line(__file__, argv), machine=harness.machine_info(),
                  load_before=harness.load_average())
    torch.set_num_threads(args.threads)
    report["settings"] = dict(threads=torch.get_num_threads(), batch=args.batch, warmup=args.warmup, steps=args.steps,
                              repeats=args.repeats, resolution=args.resolution)
    if args.loss:
        record = load_loss_record(args.loss)
        mln = genome_to_module(record["genome"].numpy(), record["hidden"])
        meta = record["metadata"]
        source = f"{args.loss} ({meta.get('method', '?')}, fitness {meta.get('fitness', float('nan')):.4g})"
    else:
        mln = genome_to_module(harness.glorot_genomes(PAPER_HIDDEN, 1, seed=0)[0])
        source = "Glorot-initialised paper MLN (seed 0)"
    for p in mln.parameters():
        p.requires_grad_(False)  # the loss is fixed while a classifier trains
    report["mln"] = dict(source=source, parameters=sum(p.numel() for p in mln.parameters()), hidden=list(mln.hidden))
    compiled, report["compile_seconds"] = harness.timed(CompiledMLNLoss.from_mln, mln, args.resolution)
    losses = {"ce": nn.CrossEntropyLoss(), "mln": MLNLoss(mln), "compiled": compiled}
    report["timings"] = {}
    for name in ([] if args.skip_timing else MODELS):
        report["timings"][name] = time_model(name, losses, args.batch, args.warmup, args.steps, args.repeats)
        harness.say(f"{name}: " + ", ".join(f"{k} {v['median_ms']:.2f} ms ({v['ratio_to_ce']:.2f}x)"
                                            for k, v in report["timings"][name].items()))
    report["compile_error"] = compile_error(mln, compiled, probes=args.probes)
    if args.compare_schemes is not None:
        report["schemes"] = compare_schemes(mln, args.compare_schemes or (65, 129, 257, 513), args.probes)
    report["load_after"] = harness.load_average()
    json_path, md_path = harness.write_results(out / args.name, report, markdown(report))
    harness.say(markdown(report))
    harness.say(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
