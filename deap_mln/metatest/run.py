"""A whole meta-test: losses x seeds on one data set and model, and its report files.

:func:`meta_test` is what ``deap-mln meta-test`` runs; benchmarks and user code call it
directly. It checks everything it can (loss names and files, the data, the model's fit to
the data) before the first classifier is trained, so bad input costs nothing. Every loss
read from a file gets the K-class check (:func:`deap_mln.mln.check.check_loss`) for the data
set's number of classes; one that fails it is flagged (``warnings``, ``settings.json``) and
still trained.

The protocol (:data:`deap_mln.metatest.train.PROTOCOLS`) sets each loss's learning rate; under
``tuned`` every loss is first tuned on a validation split of the training data, then trained
at its rate on the whole training split and scored on the test split like the others. A loss
whose rate search ends at an edge of the rates it tried (not bracketed) is flagged: a warning,
``(edge)`` beside its rate in the table, ``lr_at_edge`` in summary.csv, ``at_edge`` in
settings.json. The reference ``ls-tuned`` (tuned protocol only) chooses its label-smoothing
epsilon with its rate (:func:`deap_mln.metatest.train.tune_label_smoothing`); settings.json
records the choice (``tuning``, ``label_smoothing``) and the table labels its row with it.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from deap_mln.data.source import Source, check_source, load_source, source_name
from deap_mln.metatest.baselines import LS_TUNED, LossSpec, is_baseline, resolve_loss
from deap_mln.metatest.report import write_report
from deap_mln.metatest.train import (
    BASELINE_LR,
    BATCH_SIZE,
    CURVE_POINTS,
    FLAT_RUNGS,
    LR_BOUNDS,
    MLN_LR,
    PROTOCOLS,
    TUNING_FIRST_SEED,
    TUNING_SEEDS,
    LabelSmoothingSearch,
    LearningRateSearch,
    MetaTestSettings,
    RunRecord,
    paper_learning_rate,
    run_meta_test,
    tune_label_smoothing,
    tune_learning_rate,
    validation_split,
)
from deap_mln.mln.check import RULE, check_loss
from deap_mln.training.trainer import SGD_MOMENTUM, ModelBuilder, check_device, default_steps


@dataclass
class MetaTestResult:
    """The runs of a meta-test, its markdown table and where its files are."""

    records: list[RunRecord]
    table: str
    out_dir: Path
    seconds: float
    run_info: dict
    warnings: list[str]  # one line per loss file that fails the K-class check, per rate search ended at an edge


def meta_test(losses: Sequence[str], dataset: Source, out_dir: str | Path, *, model: str | ModelBuilder = "mlp3",
              seeds: int = 5,
              first_seed: int = 0, steps: int | None = None, batch_size: int = BATCH_SIZE, optimizer: str = "adam",
              protocol: str = "tuned", lr: float = BASELINE_LR, mln_lr: float = MLN_LR,
              tuning_seeds: int = TUNING_SEEDS, lr_grid: Sequence[float] | None = None, mln_path: str = "table",
              eval_every: int | None = None, data_dir: str | Path | None = None, download: bool = False,
              data_seed: int = 0, threads: int | None = None, device: str = "cpu", momentum: float = SGD_MOMENTUM,
              label: str | None = None, progress: Callable[[str], None] | None = None) -> MetaTestResult:
    """Train ``model`` on ``dataset`` with every loss for ``seeds`` seeds; write the report.

    ``dataset`` is any data source of :func:`deap_mln.data.source.load_source` (a name, ``csv:PATH``
    with its ``label`` column, ``npz:PATH``, arrays); ``model`` a model name or a function
    ``(input_shape, num_classes) -> nn.Module``; SGD runs with ``momentum``.

    ``losses`` are baseline names (``ce``, ``mse``, ``focal``, ``ls``, ``ls:EPS``, ``ls-tuned``, ...)
    or saved loss files; a saved MLN trains through its compiled table (``mln_path="table"``) or
    exactly (``"exact"``). ``ls-tuned`` needs the tuned protocol: its epsilon is chosen with its rate.
    ``protocol``: ``"tuned"`` (each loss's rate chosen from ``lr_grid``, default
    :data:`~deap_mln.metatest.train.LR_GRIDS`, by mean validation accuracy over ``tuning_seeds``
    runs; ``lr`` and ``mln_lr`` unused), ``"equal"`` (every loss at ``lr``) or ``"paper"``
    (``mln_lr`` for MLN losses, ``lr`` for the others). ``steps`` defaults to the data set's
    entry of ``DEFAULT_STEPS``, ``eval_every`` to steps / 20.
    Returns the runs and the markdown table written to ``out_dir/summary.md``.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    if tuning_seeds < 1:
        raise ValueError(f"tuning seeds must be at least 1, got {tuning_seeds}")
    if threads:
        torch.set_num_threads(threads)
    check_device(device)
    specs = [resolve_loss(spec, mln_path) for spec in losses]
    labels = [loss.label for loss in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"the same loss is listed twice: {' '.join(losses)}")
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {seeds}")
    if LS_TUNED in labels and protocol != "tuned":
        raise ValueError(f"{LS_TUNED} chooses its epsilon together with its learning rate: it needs the tuned "
                         f"protocol, not {protocol} (a fixed epsilon is ls:EPS)")
    name = source_name(dataset)
    if isinstance(dataset, str):
        check_source(dataset)
    steps = steps or default_steps(name)
    settings = MetaTestSettings(model=model, steps=steps, batch_size=batch_size, optimizer=optimizer, lr=lr,
                                mln_lr=mln_lr, device=device, momentum=momentum,
                                eval_every=eval_every or max(1, steps // CURVE_POINTS))
    say = progress or (lambda line: None)
    data = load_source(dataset, label=label, data_dir=data_dir, download=download, data_seed=data_seed)
    settings.build(data.input_shape, data.num_classes)  # a shape mismatch fails before any training
    say(f"{name}: {data.source}")
    checks = {spec.label: check_loss(spec.module, data.num_classes) for spec in specs if not is_baseline(spec.label)}
    warnings = [f"warning: {label}: {check.line()} (a sane loss orders {RULE})"
                for label, check in checks.items() if not check]
    rule = {"tuned": "lr tuned per loss", "equal": f"lr {lr:g} for every loss",
            "paper": f"lr {lr:g} (MLN {mln_lr:g})"}[protocol]
    say(f"{settings.model_name}, {settings.optimizer} {settings.steps} steps, batch {settings.batch_size}, "
        f"{protocol} protocol: {rule}, {torch.get_num_threads()} threads, {seeds} seeds")
    seed_list = list(range(first_seed, first_seed + seeds))
    start = time.perf_counter()
    tuning: dict[str, LearningRateSearch] = {}
    tuning_info: dict = {}
    smoothing: LabelSmoothingSearch | None = None
    if protocol == "tuned":
        tuning_data = validation_split(data, data_seed)
        tuning_seed_list = list(range(TUNING_FIRST_SEED, TUNING_FIRST_SEED + tuning_seeds))
        say(f"tuning on {tuning_data.source}, {tuning_seeds} seeds per rate")
        for spec in specs:
            if spec.label == LS_TUNED:  # epsilon and rate together; per_loss holds the chosen epsilon's search
                smoothing = tune_label_smoothing(tuning_data, settings, tuning_seed_list, lr_grid)
                for epsilon, each in zip(smoothing.epsilons, smoothing.searches):
                    say(f"{spec.label:>12}  eps {epsilon:g}: lr {each.best:g}, validation accuracy "
                        + ", ".join(f"{rate:g} {score:.4f}" for rate, score in zip(each.rates, each.scores)))
                tuning[spec.label] = search = smoothing.search
                say(f"{spec.label:>12}  chose eps {smoothing.epsilon:g}, lr {search.best:g}")
            else:
                tuning[spec.label] = search = tune_learning_rate(tuning_data, spec, settings, tuning_seed_list,
                                                                 lr_grid)
                say(f"{spec.label:>12}  lr {search.best:g}: validation accuracy "
                    + ", ".join(f"{rate:g} {score:.4f}" for rate, score in zip(search.rates, search.scores)))
            if search.at_edge:  # also in settings.json (at_edge), the table and summary.csv (report.py)
                say(f"{spec.label:>12}  note: {search.edge_reason()}")
                warnings.append(f"warning: {spec.label}: {search.edge_reason()}: its accuracy may be understated")
        tuning_info = {"validation": tuning_data.source, "tuning_seeds": tuning_seed_list,
                       "lr_bounds": list(LR_BOUNDS), "flat_rungs": FLAT_RUNGS,
                       "seconds": round(time.perf_counter() - start, 2),
                       "per_loss": {k: s.to_dict() for k, s in tuning.items()}}
        if smoothing is not None:  # per_loss also names the epsilon of ls-tuned's search
            tuning_info["per_loss"][LS_TUNED]["epsilon"] = smoothing.epsilon
            tuning_info["label_smoothing"] = smoothing.to_dict()
            specs = [smoothing.spec() if spec.label == LS_TUNED else spec for spec in specs]
    rates = {spec.label: learning_rate(spec, settings, protocol, tuning) for spec in specs}
    records = run_meta_test(specs, data, settings, seed_list, progress=progress, rates=rates)
    seconds = time.perf_counter() - start
    run_info = {"dataset": name, "data_source": data.source, "data_seed": data_seed, "label": label,
                "class_names": list(data.class_names) if data.class_names else None,
                "losses": list(losses), "seeds": seed_list, "threads": torch.get_num_threads(),
                "torch": torch.__version__, "seconds": round(seconds, 2), **asdict(settings), "model": settings.model_name,
                "protocol": protocol, "learning_rates": rates, "tuning": tuning_info,
                "mln_paths": {spec.label: spec.mln_path for spec in specs if spec.mln},
                "loss_checks": {label: check.to_dict() for label, check in checks.items()},
                "row_labels": {LS_TUNED: f"{LS_TUNED} (eps {smoothing.epsilon:g})"} if smoothing else {}}
    if protocol != "paper":  # the paper's two rates were not used as such
        run_info["mln_lr"] = None
    if protocol == "tuned":
        run_info["lr"] = None
    out = Path(out_dir)
    table = write_report(records, out, run_info)
    return MetaTestResult(records, table, out, seconds, run_info, warnings)


def learning_rate(loss: LossSpec, settings: MetaTestSettings, protocol: str,
                  tuning: dict[str, LearningRateSearch]) -> float:
    """The rate ``loss`` trains at under ``protocol`` (``tuning``: the searches of the tuned protocol)."""
    if protocol == "tuned":
        return tuning[loss.label].best
    return settings.lr if protocol == "equal" else paper_learning_rate(loss, settings)
