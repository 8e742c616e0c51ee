"""League v2: the verdict against the best fixed loss on three real data sets under two optimizers,
every search scored by the faithful fitness of the cell's own training.

    python benchmarks/league_v2.py --jobs 2 --commit-every 20   # the whole league (about 4 hours: below)
    python benchmarks/league_v2.py --report                     # the tables from the job files alone
    python benchmarks/league_v2.py --smoke                      # the pipeline in a few minutes
    python benchmarks/league_v2.py --probe                      # per-training times behind the budget

**Cells**: digits, MNIST-1D and MNIST (the 8,000 / 2,000 split of ``../shared/data/mnist``, found by
itself) x Adam and SGD with momentum 0.9. The cell's *spec* is what the meta-test trains: mlp3, the
data set's default steps, batch 500, the cell's optimizer at CE's tuned rate in that cell (from the
cell's CE reference job, which therefore runs first).

**Rows** of a cell, every one meta-tested under the tuned protocol (each loss at its own rate, from a
bracketing search on a validation split of the training part) with seeds 0-9:

- *reference*: :data:`REFERENCES`, tuned once per cell (``ls-tuned``: label smoothing with its epsilon
  tuned together with its rate on the same validation split);
- *evolved*: :data:`DATA_FAMILIES`, each evolved per seed on the cell's data set with the faithful
  fitness of the cell's spec (:data:`FITNESS`): ``mln-hybrid`` / ``mln-es`` (the MLN wing,
  ``tasks_source`` the data set), ``gp``, ``taylorglo``;
- *universal*: :data:`UNIVERSAL`, v1's ``mln-universal`` (Algorithm 1 on synthetic binary tasks,
  v1's budget) and ``edl``, evolved once per seed and meta-tested in every cell;
- *transfer*: ``FAMILY<-SOURCE``: the loss FAMILY evolved on another data set SOURCE (same optimizer,
  same seed) meta-tested here, two per family and cell. By default only the best data-driven family's
  (:func:`transfer_family`: the best mean own-row accuracy over the cells, decided once every own row
  has finished; ``--transfer all`` for every family, at the cost ``--estimate`` gives).

**Budget**: every data-driven search may train at most :data:`BUDGET` *spec trainings*: one faithful
evaluation trains ``fraction`` x the spec's steps on each of ``fitness_splits`` splits at each rate
tried, so a search makes BUDGET / (fraction x splits x rates) shortened trainings (200 at 10%, one
split, one rate). They are counted as league.py counts: only trained candidates (a candidate refused
by a check before training, or served from GP's cache, costs none), the MLN's validations included.
``--probe`` measured this machine's CPU seconds per spec training spent by a search
(``benchmarks/results/league_v2/probe.json``, taken at load 6-10, so likely above an idle machine's):
MLN 1.6-3.2, GP 1.3-4.3 and TaylorGLO 1.8-6.3, beside 0.7-1.9 for one CE training of the spec; so at
BUDGET = 20 a search costs about 23-58 CPU-s on digits, 43-70 on MNIST-1D and 58-99 on MNIST (an MLN
search's includes 12 CPU-s of distilling its known start). On MNIST-1D GP and TaylorGLO measured
12-14 CPU-s per spec training because every faithful evaluation reads the data again
(``deap_mln.training.splits.faithful_data`` does not cache: 1.2 CPU-s per read of MNIST-1D); the
figures above assume it reads them once per search.

**Time estimate** (:func:`estimate` from the probe, ``--estimate``; 2 workers): meta-tests 15,500
CPU-s (references, and every evolved, universal and transfer row's one-seed meta-tests, each with its
own rate search), searches 13,700 CPU-s (4 families x 6 cells x 10 seeds), universal searches 150:
about 29,300 CPU-s, **4.1 hours** with ``--jobs 2`` (5.4 hours while ``faithful_data`` reads the data
per evaluation; 5.2 hours with ``--transfer all``). ``league.md`` reports what the jobs took.

**Statistics** per cell: each row's paired difference from CE and from ls-tuned (bootstrap 95%
interval, exact sign-flip p), Holm-adjusted within the cell over each comparison's rows. The
**target** (:func:`league_target`): (a) in every cell the best evolved row is not significantly worse
than the best reference row (paired sign-flip p >= 0.05, unadjusted, or a non-negative difference);
(b) in at least 2 cells an evolved row beats CE and ls-tuned, each at Holm p < 0.05; (c) in at least
3 cells the MLN hybrid is the best family or the 95% interval of its paired difference from the best
family (evolved or universal rows) reaches 0.

**Jobs and resuming**: every job writes a small JSON file under ``--out/jobs/`` when it finishes (its
``identity`` and facts, with the git commit that ran it); a rerun skips finished jobs and refuses a
job file written for other settings. ``--commit-every MINUTES`` commits ``--out/jobs`` by path as
jobs finish, so a later session on a fresh machine resumes from what landed. Run and meta-test
directories go under ``--out/work/`` (not committed), but a search's loss file of at most
:data:`KEPT_LOSS_BYTES` (GP's and TaylorGLO's) is kept beside its job file and committed with it; a
meta-test whose evolved loss file is not on this machine restores that copy (if its SHA-256 is the
job's) or else evolves the loss again first (the searches are seeded; a loss that comes out
different is recorded). The tables (``league.json``, ``league.md``, ``league.png``) are a pure function of the job
files (:func:`cell_tables`).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import multiprocessing
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
import league

from deap_mln.io import BEST_LOSS_FILE, LOGBOOK_FILE, read_json, write_json
from deap_mln.stats import compare_paired, holm_adjust
from deap_mln.training.splits import MEASURED_FITNESS

DATASETS = ("digits", "mnist1d", "mnist")
OPTIMIZERS = ("adam", "sgd")
CELLS = tuple(f"{d}/{o}" for d in DATASETS for o in OPTIMIZERS)
MODEL, BATCH_SIZE = "mlp3", 500
SEEDS = tuple(range(10))
REFERENCES = ("ce", "ls", "ls-tuned", "mse", "focal", "poly1", "baikal", "ngl")
LS_TUNED = "ls-tuned"
DATA_FAMILIES = ("mln-hybrid", "mln-es", "gp", "taylorglo")
UNIVERSAL = ("mln-universal", "edl")
# The faithful-fitness setting of every search, in one place: the presets' measured default
# (deap_mln.training.splits.MEASURED_FITNESS, chosen by benchmarks/results/fidelity/fidelity.json):
# the spec for 10% of its steps at the spec's rate, one split.
FITNESS: dict[str, Any] = dict(fraction=MEASURED_FITNESS["fraction"], rates=MEASURED_FITNESS["rates"], fitness_splits=1)
BUDGET = 20            # spec trainings per search (module docstring): 200 shortened trainings at fraction 0.1
ALPHA = 0.05
TARGET_CELLS_BEAT = 2  # target (b): cells where an evolved loss beats CE and ls-tuned
TARGET_CELLS_MLN = 3   # target (c): cells where the MLN hybrid is within the best family's interval
CODE_PATHS = ("deap_mln", "benchmarks/league_v2.py", "benchmarks/league.py", "benchmarks/harness.py")
JOBS_DIR, WORK_DIR = "jobs", "work"
KEPT_LOSS_BYTES = 64 * 1024  # a search's loss file up to this size is kept with its job file (GP, TaylorGLO: 2 KB;
                             # an MLN's, 0.7 MB with its compiled table, is evolved again where it is needed)


@dataclass(frozen=True)
class Plan:
    """What one pass measures."""

    cells: tuple[str, ...] = CELLS
    seeds: tuple[int, ...] = SEEDS
    budget: int = BUDGET                # spec trainings per data-driven search
    steps: int = 0                      # 0: each data set's default steps (meta-test and spec)
    references: tuple[str, ...] = REFERENCES
    families: tuple[str, ...] = DATA_FAMILIES
    universal: tuple[str, ...] = UNIVERSAL
    universal_budget: int = league.BUDGET  # v1's trainings of synthetic tasks for mln-universal
    transfer: str = "best"              # best: the best family's transfer rows only; all: every family's
    fitness: tuple[tuple[str, Any], ...] = tuple(FITNESS.items())

    def cell_steps(self, dataset: str) -> int:
        from deap_mln.training.trainer import default_steps

        return self.steps or default_steps(dataset)

    def source_cells(self) -> tuple[str, ...]:
        """The cells whose searches the plan's transfer rows read: every data set under the plan's optimizers."""
        optimizers = [o for o in OPTIMIZERS if any(cell_parts(c)[1] == o for c in self.cells)]
        return tuple(f"{d}/{o}" for d in DATASETS for o in optimizers)


def cell_parts(cell: str) -> tuple[str, str]:
    dataset, optimizer = cell.split("/")
    return dataset, optimizer


def transfer_row(family: str, source: str) -> str:
    """The name of the row that meta-tests ``family``'s loss evolved on data set ``source``."""
    return f"{family}<-{source}"


def safe(name: str) -> str:
    """A row name as a file or folder name."""
    return name.replace("<-", "-from-").replace(":", "_").replace("/", "-")


# ------------------------------------------------------------------------------ searches


@dataclass(frozen=True)
class Evolution:
    """One search: a data-driven family on a cell's data with the cell's spec (``spec_lr`` bound
    from CE's reference job), or a universal family (``dataset`` None) that never sees the data."""

    family: str
    seed: int
    dataset: str | None = None
    optimizer: str | None = None
    budget: int = BUDGET
    steps: int = 0
    spec_lr: float = 0.0
    fitness: tuple[tuple[str, Any], ...] = tuple(FITNESS.items())

    @property
    def cell(self) -> str:
        return f"{self.dataset}/{self.optimizer}" if self.dataset else "universal"

    def identity(self) -> dict:
        return plain(dict(job="evolution", **dataclasses.asdict(self)))

    def faithful_fields(self) -> dict[str, Any]:
        """The FaithfulFields of every data-driven family's config: the cell's spec, shortened by :data:`FITNESS`."""
        return dict(fitness_training="faithful", model=MODEL, optimizer=self.optimizer, spec_steps=self.steps,
                    spec_batch_size=BATCH_SIZE, spec_lr=self.spec_lr, **dict(self.fitness))

    def shortened_trainings(self) -> int:
        """The budget in the searches' shortened trainings: spec trainings / fraction."""
        return int(round(self.budget / dict(self.fitness)["fraction"]))


def _evolve_mln(algorithm: str) -> Callable[[Evolution, Path], dict]:
    def run(search: Evolution, out: Path) -> dict:
        from deap_mln.mln.config import preset
        from deap_mln.mln.run import evolve

        fields = search.faithful_fields()
        probe = preset("quick", tasks_source=search.dataset, **fields)
        # a validation or evaluation of one split costs one training per rate tried
        units = search.shortened_trainings() // league.evaluation_trainings(probe, str(search.dataset))
        generations = league.mln_generations(units, fields["fitness_splits"])
        config = preset("quick", **league.MLN_SIZES, algorithm=algorithm, seed=search.seed,
                        tasks_source=search.dataset, generations=generations, **fields)
        evolve(config, out, backend="serial", progress=lambda line: None)
        return league.training_facts(league.mln_trainings(out)) | dict(
            generations=generations, initial_population=getattr(config, "initial_population", "random"))
    return run


def _evolve_gp(search: Evolution, out: Path) -> dict:
    from deap_mln.gp.config import gp_preset
    from deap_mln.gp.run import evolve_gp

    fields = search.faithful_fields()
    probe = gp_preset("quick", dataset=search.dataset, **fields)
    per_evaluation = fields["fitness_splits"] * league.evaluation_trainings(probe, str(search.dataset))
    # max_evaluations stops after the generation that reaches it: the facts say what was spent
    config = gp_preset("quick", seed=search.seed, dataset=search.dataset, generations=1_000,
                       max_evaluations=max(1, search.shortened_trainings() // per_evaluation), **fields)
    evolve_gp(config, out, backend="serial", progress=lambda line: None)
    return league.training_facts(league.gp_trainings(out, per_evaluation)) | dict(
        generations=len(harness.read_csv_rows(out / LOGBOOK_FILE)) - 1)


def _evolve_taylor(search: Evolution, out: Path) -> dict:
    from deap_mln.taylor.config import taylor_preset
    from deap_mln.taylor.run import evolve_taylor

    fields = search.faithful_fields()
    probe = taylor_preset("quick", dataset=search.dataset, **fields)
    per_evaluation = fields["fitness_splits"] * league.evaluation_trainings(probe, str(search.dataset))
    generations = max(1, search.shortened_trainings() // per_evaluation // probe.lambda_)
    config = taylor_preset("quick", seed=search.seed, dataset=search.dataset, generations=generations, **fields)
    evolve_taylor(config, out, backend="serial", progress=lambda line: None)
    return league.training_facts(league.taylor_trainings(out, per_evaluation)) | dict(generations=generations)


def _evolve_universal(search: Evolution, out: Path) -> dict:
    """v1's universal families as they are (league.FAMILIES), with v1's budget and brief training."""
    return league.FAMILIES[search.family].evolve("synthetic", search.seed, search.budget, league.BRIEF, out)


SEARCHES: dict[str, Callable[[Evolution, Path], dict]] = {
    "mln-hybrid": _evolve_mln("hybrid"), "mln-es": _evolve_mln("es"), "gp": _evolve_gp, "taylorglo": _evolve_taylor,
    "mln-universal": _evolve_universal, "edl": _evolve_universal,
}
DESCRIPTIONS = {
    "mln-hybrid": "MLN, hybrid ES-GA (Algorithm 1 without the dynamic update), faithful fitness on the cell's data",
    "mln-es": "MLN, ES-only, faithful fitness on the cell's data",
    "gp": "efficiency-based GP (starts from CE, Baikal, NGL, squared error), faithful fitness",
    "taylorglo": "TaylorGLO: DEAP CMA-ES over the 8 Taylor parameters (starts from squared error), faithful fitness",
    "mln-universal": "Adaptive-MLN (Algorithm 1) on synthetic binary tasks, v1's budget: never sees the data",
    "edl": "EDL: data-free ranking pretraining, chaotic ES: trains no classifier",
}


# ------------------------------------------------------------------------------ jobs (run in worker processes)


def plain(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples as lists), so identities compare with job files."""
    return json.loads(json.dumps(value))




def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created): two workers never evolve into one directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def evolution_job(search: Evolution, job_path: Path, run_dir: Path, rerun: bool = False) -> dict:
    """Evolve ``search``'s loss into ``run_dir`` (one thread); its facts to ``job_path``. ``rerun``:
    evolve again although the job finished (its loss file is not on this machine)."""
    identity = search.identity()
    done = harness.finished_job(job_path, identity)
    if done is not None and not rerun:
        return done
    import torch

    torch.set_num_threads(1)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an interrupted job leaves a partial directory
    run_dir.mkdir(parents=True)
    code = harness.git_state(CODE_PATHS)
    cpu, wall = time.process_time(), time.perf_counter()
    facts = SEARCHES[search.family](search, run_dir)
    facts |= dict(cpu_seconds=round(time.process_time() - cpu, 2), wall_seconds=round(time.perf_counter() - wall, 2),
                  loss_sha256=sha256(run_dir / BEST_LOSS_FILE), **code)
    if search.dataset is not None:
        facts["spec_trainings"] = round(facts["trainings"] * dict(search.fitness)["fraction"], 2)
        facts["budget_shortened_trainings"] = search.shortened_trainings()
    if done is not None:
        facts["evolved_again"] = dict(previous_loss_sha256=done["loss_sha256"],
                                      identical=done["loss_sha256"] == facts["loss_sha256"])
    job_path.parent.mkdir(parents=True, exist_ok=True)
    if (run_dir / BEST_LOSS_FILE).stat().st_size <= KEPT_LOSS_BYTES:
        shutil.copyfile(run_dir / BEST_LOSS_FILE, kept_loss(job_path))
    write_json(job_path, dict(identity=identity, **facts))
    return read_json(job_path)


def kept_loss(job_path: Path) -> Path:
    """Where a search's small loss file is kept beside its job file (committed with it)."""
    return job_path.with_suffix(".pt")


def restore_loss(source_job: Path, source_dir: Path) -> bool:
    """Put a finished search's kept loss file back in its run directory, if it is the one the job
    recorded (same SHA-256): a later session then meta-tests it without evolving it again."""
    kept = kept_loss(source_job)
    if not (kept.is_file() and source_job.is_file() and read_json(source_job).get("loss_sha256") == sha256(kept)):
        return False
    source_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(kept, source_dir / BEST_LOSS_FILE)
    return True


@dataclass(frozen=True)
class MetaTest:
    """One row's meta-test in one cell: a reference (``loss``, every seed in one job) or an evolved
    loss of one seed (``source``: the search that evolved it)."""

    row: str
    kind: str                     # reference, evolved, universal or transfer
    dataset: str
    optimizer: str
    seeds: tuple[int, ...]
    steps: int
    loss: str = ""                # a reference loss's name
    source: Evolution | None = None

    @property
    def cell(self) -> str:
        return f"{self.dataset}/{self.optimizer}"

    def identity(self) -> dict:
        return plain(dict(job="meta-test", row=self.row, kind=self.kind, dataset=self.dataset, optimizer=self.optimizer,
                          seeds=self.seeds, steps=self.steps, model=MODEL, batch_size=BATCH_SIZE, loss=self.loss,
                          source=None if self.source is None else self.source.identity()))


def meta_test_job(test: MetaTest, job_path: Path, out: Path, source_job: Path | None = None,
                  source_dir: Path | None = None) -> dict:
    """Meta-test ``test`` (tuned protocol, one thread) into ``out``; its facts to ``job_path``. An
    evolved loss whose file is missing is evolved again first (its search read from ``source_job``)."""
    identity = test.identity()
    if (done := harness.finished_job(job_path, identity)) is not None:
        return done
    from deap_mln.metatest.run import meta_test

    loss, digest = test.loss, None
    if test.source is not None:
        assert source_job is not None and source_dir is not None
        with locked(source_dir.parent / f"{source_dir.name}.lock"):
            if not (source_dir / BEST_LOSS_FILE).is_file() and not restore_loss(source_job, source_dir):
                evolution_job(test.source, source_job, source_dir, rerun=True)
        loss, digest = str(source_dir / BEST_LOSS_FILE), sha256(source_dir / BEST_LOSS_FILE)
    if out.exists():
        shutil.rmtree(out)
    code = harness.git_state(CODE_PATHS)
    cpu = time.process_time()
    result = meta_test([loss], test.dataset, out, model=MODEL, seeds=len(test.seeds), first_seed=test.seeds[0],
                       steps=test.steps, batch_size=BATCH_SIZE, optimizer=test.optimizer, protocol="tuned", threads=1)
    facts = league.meta_test_facts(result)
    tuning = result.run_info.get("tuning", {}).get("per_loss", {}).get(facts["label"], {})
    job_path.parent.mkdir(parents=True, exist_ok=True)
    write_json(job_path, dict(identity=identity, **facts, tuning=tuning, loss_sha256=digest,
                              cpu_seconds=round(time.process_time() - cpu, 2), **code))
    return read_json(job_path)


# ------------------------------------------------------------------------------ the plan of jobs


@dataclass
class Job:
    key: str
    label: str                                  # the progress line's words
    fn: Callable[..., dict]
    args: tuple
    needs: tuple[str, ...] = ()
    bind: Callable[[dict[str, dict]], tuple] | None = None  # the args, given the facts of the jobs it needs


class Layout:
    """Where a pass's job files and work directories go."""

    def __init__(self, out: Path):
        self.out, self.jobs, self.work = out, out / JOBS_DIR, out / WORK_DIR

    def evolution(self, search: Evolution) -> tuple[Path, Path]:
        folder = search.cell.replace("/", "-")
        return (self.jobs / folder / "evolution" / search.family / f"seed-{search.seed}.json",
                self.work / "runs" / folder / search.family / f"seed-{search.seed}")

    def meta_test(self, test: MetaTest) -> tuple[Path, Path]:
        folder, row = test.cell.replace("/", "-"), safe(test.row)
        if test.kind == "reference":
            return (self.jobs / folder / "references" / f"{row}.json", self.work / "meta" / folder / "references" / row)
        seed = test.seeds[0]
        return (self.jobs / folder / "meta-test" / row / f"seed-{seed}.json",
                self.work / "meta" / folder / row / f"seed-{seed}")


def evolution_of(identity: dict) -> Evolution:
    """The search an evolution job's identity names."""
    fields = {k: v for k, v in identity.items() if k in Evolution.__dataclass_fields__}
    return Evolution(**fields | dict(fitness=tuple(tuple(item) for item in fields["fitness"])))


def reference_key(cell: str, name: str) -> str:
    return f"reference {name} {cell}"


def evolution_key(family: str, cell: str, seed: int) -> str:
    return f"evolve {family} {cell} seed {seed}"


def meta_key(row: str, cell: str, seed: int) -> str:
    return f"meta-test {row} {cell} seed {seed}"


def _ce_rate(cell: str) -> Callable[[dict[str, dict]], float]:
    return lambda done: float(done[reference_key(cell, "ce")]["lr"])


def search_job(plan: Plan, layout: Layout, family: str, cell: str, seed: int) -> Job:
    dataset, optimizer = cell_parts(cell)
    search = Evolution(family, seed, dataset, optimizer, plan.budget, plan.cell_steps(dataset), fitness=plan.fitness)
    rate = _ce_rate(cell)

    def bind(done: dict[str, dict]) -> tuple:
        bound = dataclasses.replace(search, spec_lr=rate(done))
        return (bound, *layout.evolution(bound))
    return Job(evolution_key(family, cell, seed), f"{family} {cell} seed {seed}", evolution_job, (),
               (reference_key(cell, "ce"),), bind)


def universal_job(plan: Plan, layout: Layout, family: str, seed: int) -> Job:
    search = Evolution(family, seed, budget=plan.universal_budget, fitness=())  # v1's search: no faithful fitness
    return Job(evolution_key(family, "universal", seed), f"{family} universal seed {seed}", evolution_job,
               (search, *layout.evolution(search)))


def evolved_meta_job(plan: Plan, layout: Layout, row: str, kind: str, cell: str, seed: int, family: str,
                     source_cell: str) -> Job:
    """The meta-test in ``cell`` of ``family``'s loss evolved with ``seed`` in ``source_cell`` ("universal")."""
    dataset, optimizer = cell_parts(cell)
    source_key = evolution_key(family, source_cell, seed)

    def bind(done: dict[str, dict]) -> tuple:
        search = evolution_of(done[source_key]["identity"])
        test = MetaTest(row, kind, dataset, optimizer, (seed,), plan.cell_steps(dataset), source=search)
        return (test, *layout.meta_test(test), *layout.evolution(search))
    return Job(meta_key(row, cell, seed), f"meta-test {row} {cell} seed {seed}", meta_test_job, (), (source_key,), bind)


def plan_jobs(plan: Plan, layout: Layout) -> list[Job]:
    """Every job but the best family's transfer rows (:func:`transfer_jobs`), in the order they should
    run: the CE references (the searches need their rates), the other references and the universal
    searches, then seed by seed each family's searches and their own meta-tests."""
    jobs: list[Job] = []
    for cell in dict.fromkeys([*plan.cells, *plan.source_cells()]):  # CE first: the searches' spec rate
        if cell in plan.cells or plan.families:  # a source cell's CE: the rate of the searches transfer rows read
            dataset, optimizer = cell_parts(cell)
            test = MetaTest("ce", "reference", dataset, optimizer, plan.seeds, plan.cell_steps(dataset), loss="ce")
            jobs.append(Job(reference_key(cell, "ce"), f"reference ce {cell}", meta_test_job,
                            (test, *layout.meta_test(test))))
    for cell in plan.cells:
        dataset, optimizer = cell_parts(cell)
        for name in plan.references:
            if name != "ce":
                test = MetaTest(name, "reference", dataset, optimizer, plan.seeds, plan.cell_steps(dataset), loss=name)
                jobs.append(Job(reference_key(cell, name), f"reference {name} {cell}", meta_test_job,
                                (test, *layout.meta_test(test))))
    jobs += [universal_job(plan, layout, family, seed) for seed in plan.seeds for family in plan.universal]
    searched = plan.cells if plan.transfer == "best" else plan.source_cells()
    for seed in plan.seeds:
        for family in plan.families:
            jobs += [search_job(plan, layout, family, cell, seed) for cell in searched]
            jobs += [evolved_meta_job(plan, layout, family, "evolved", cell, seed, family, cell) for cell in plan.cells]
        jobs += [evolved_meta_job(plan, layout, family, "universal", cell, seed, family, "universal")
                 for family in plan.universal for cell in plan.cells]
    if plan.transfer == "all":
        jobs += [job for family in plan.families for job in transfer_jobs(plan, layout, family, jobs)]
    return jobs


def transfer_jobs(plan: Plan, layout: Layout, family: str, planned: Sequence[Job]) -> list[Job]:
    """The transfer rows of ``family`` in every cell, with the searches they read that ``planned`` lacks."""
    keys = {job.key for job in planned}
    jobs: list[Job] = []
    for seed in plan.seeds:
        for cell in plan.cells:
            dataset, optimizer = cell_parts(cell)
            for source in DATASETS:
                if source == dataset:
                    continue
                source_cell = f"{source}/{optimizer}"
                if evolution_key(family, source_cell, seed) not in keys:
                    jobs.append(search_job(plan, layout, family, source_cell, seed))
                    keys.add(jobs[-1].key)
                jobs.append(evolved_meta_job(plan, layout, transfer_row(family, source), "transfer", cell, seed,
                                             family, source_cell))
    return jobs


def transfer_family(done: dict[str, dict], plan: Plan) -> str | None:
    """The data-driven family whose own rows have the best mean accuracy over the plan's cells and
    seeds (ties: the first of :data:`DATA_FAMILIES`); None until every own row has finished."""
    means = {}
    for family in plan.families:
        values = []
        for cell in plan.cells:
            for seed in plan.seeds:
                facts = done.get(meta_key(family, cell, seed))
                if facts is None:
                    return None
                values.append(facts["accuracy"][str(seed)])
        means[family] = statistics.mean(values)
    return max(plan.families, key=lambda f: (means[f], -plan.families.index(f))) if means else None


# ------------------------------------------------------------------------------ scheduling


@dataclass
class Progress:
    total: int
    finished: int = 0
    ran: int = 0
    reused: int = 0
    failed: list[str] = field(default_factory=list)


def run_jobs(jobs: list[Job], workers: int, extend: Callable[[dict[str, dict]], list[Job]],
             total: int, on_finish: Callable[[], None] = lambda: None) -> tuple[dict[str, dict], Progress]:
    """Run ``jobs`` in their order in ``workers`` spawned processes, each once the jobs it needs
    have finished (a job whose file holds its facts is reused at once); ``extend(done)`` may add
    jobs as others finish. A failed job is reported and its dependants skipped; the others go on."""
    done: dict[str, dict] = {}
    progress = Progress(total)
    pending = list(jobs)
    running: dict[Any, tuple[Job, float]] = {}
    pending += extend(done)
    failed: set[str] = set()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        while pending or running:
            moved = True
            while moved:  # reuse finished jobs and submit ready ones, in order
                moved = False
                for job in list(pending):
                    if any(k in failed for k in job.needs):
                        pending.remove(job)
                        failed.add(job.key)
                        progress.failed.append(job.key)
                        harness.say(f"   skipped {job.label}: a job it needs failed")
                        moved = True
                        continue
                    if not all(k in done for k in job.needs):
                        continue
                    args = job.bind(done) if job.bind else job.args
                    facts = harness.finished_job(args[1], args[0].identity())
                    if facts is not None:
                        pending.remove(job)
                        done[job.key] = facts
                        progress.finished += 1
                        progress.reused += 1
                        pending += extend(done)
                        moved = True
                    elif len(running) < workers:
                        pending.remove(job)
                        running[pool.submit(job.fn, *args)] = (job, time.perf_counter())
                        moved = True
            if not running:
                break
            complete, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in complete:
                job, started = running.pop(future)
                try:
                    done[job.key] = facts = future.result()
                    progress.finished += 1
                    progress.ran += 1
                    harness.say(f"[{progress.finished}/{progress.total}] {job.label}: "
                                f"{time.perf_counter() - started:.0f} s ({facts.get('cpu_seconds', 0):.0f} CPU s)")
                except Exception as error:  # noqa: BLE001  (one failed job must not stop the others)
                    failed.add(job.key)
                    progress.failed.append(job.key)
                    harness.say(f"   FAILED {job.label}: {type(error).__name__}: {error}")
                pending += extend(done)
            on_finish()
    return done, progress


def count_jobs(plan: Plan, layout: Layout) -> int:
    """Jobs of a whole pass: the planned ones and one family's transfer rows (every family's with ``all``)."""
    planned = plan_jobs(plan, layout)
    if plan.transfer == "all" or not plan.families:
        return len(planned)
    return len(planned) + len(transfer_jobs(plan, layout, plan.families[0], planned))


def run_league(plan: Plan, layout: Layout, workers: int, commit_minutes: float = 0) -> Progress:
    jobs = plan_jobs(plan, layout)
    chosen: list[str] = []

    def extend(done: dict[str, dict]) -> list[Job]:
        if plan.transfer != "best" or chosen or not plan.families:
            return []
        family = transfer_family(done, plan)
        if family is None:
            return []
        chosen.append(family)
        harness.say(f"   transfer rows: {family}, the best family's own rows over the cells")
        return transfer_jobs(plan, layout, family, jobs)

    last = [time.perf_counter()]

    def on_finish() -> None:
        if commit_minutes and time.perf_counter() - last[0] >= commit_minutes * 60:
            commit_jobs(layout)
            last[0] = time.perf_counter()

    total = count_jobs(plan, layout)
    harness.say(f"league v2: {total} jobs, {len(plan.cells)} cells x {len(plan.seeds)} seeds, budget {plan.budget} "
                f"spec trainings per search, {workers} worker(s), into {layout.out}")
    _, progress = run_jobs(jobs, workers, extend, total, on_finish)
    if commit_minutes:
        commit_jobs(layout)
    harness.say(f"   this pass ran {progress.ran} jobs and reused {progress.reused}"
                + (f"; {len(progress.failed)} failed or skipped" if progress.failed else ""))
    return progress


def commit_jobs(layout: Layout) -> None:
    """Commit the finished jobs' files by path (nothing else), so a later session resumes from them."""
    try:
        jobs = layout.jobs.resolve().relative_to(harness.REPO_ROOT)
    except ValueError:
        harness.say(f"   not committed: {layout.jobs} is outside the repository")
        return
    if not layout.jobs.is_dir():
        return
    count = len(list(layout.jobs.rglob("*.json")))
    add = subprocess.run(["git", "add", "--", str(jobs)], cwd=harness.REPO_ROOT, capture_output=True, text=True)
    commit = subprocess.run(["git", "commit", "-q", "-m", f"league v2: {count} finished jobs", "--", str(jobs)],
                            cwd=harness.REPO_ROOT, capture_output=True, text=True)
    if add.returncode or (commit.returncode and "nothing" not in commit.stdout + commit.stderr):
        harness.say(f"   commit of {jobs} failed: {(add.stderr + commit.stderr).strip()[:300]}")
    elif commit.returncode == 0:
        harness.say(f"   committed {jobs} ({count} job files)")


# ------------------------------------------------------------------------------ the pure part: tables


def collect(layout: Layout) -> list[dict]:
    """Every finished job's facts under ``layout``'s jobs folder."""
    return [read_json(path) for path in sorted(layout.jobs.rglob("*.json"))]


def _paired(values: list[float], reference: list[float]) -> dict:
    result = compare_paired(values, reference)
    return dict(diff=result.mean_difference, ci=[result.ci_low, result.ci_high], p=result.p_value, test=result.test,
                wins=sum(a > b for a, b in zip(values, reference, strict=True)),
                losses=sum(a < b for a, b in zip(values, reference, strict=True)))


def _mean_of(searches: list[dict], key: str) -> float | None:
    values = [s[key] for s in searches if s.get(key) is not None]
    return statistics.mean(values) if values and len(values) == len(searches) else None


def cell_tables(jobs: Sequence[dict], cells: Sequence[str], seeds: Sequence[int]) -> list[dict]:
    """One entry per cell of ``cells``: its rows (every row measured on all ``seeds``), each with
    its accuracies by seed, the paired comparison with CE and with ls-tuned (Holm within the cell,
    per comparison) and what its searches cost; a pure function of the jobs' facts. Seeds are taken
    in increasing order, so neither the order of ``seeds`` nor that of ``jobs`` changes a number."""
    seeds = sorted(seeds)
    searches = {(j["identity"]["family"], j["identity"]["dataset"], j["identity"]["optimizer"], j["identity"]["seed"]): j
                for j in jobs if j["identity"]["job"] == "evolution"}
    out = []
    for cell in cells:
        dataset, optimizer = cell_parts(cell)
        tests: dict[str, list[dict]] = {}
        for job in jobs:
            ident = job["identity"]
            if ident["job"] == "meta-test" and ident["dataset"] == dataset and ident["optimizer"] == optimizer:
                tests.setdefault(ident["row"], []).append(job)
        rows, unfinished = [], []
        for name, measured in tests.items():
            merged = {seed: value for job in measured for seed, value in job["accuracy"].items()}
            if any(str(s) not in merged for s in seeds):
                unfinished.append(name)
                continue
            ident = measured[0]["identity"]
            row: dict[str, Any] = dict(
                loss=name, kind=ident["kind"], accuracy=[merged[str(s)] for s in seeds],
                lr=sorted({j["lr"] for j in measured}), at_edge=sum(bool(j["at_edge"]) for j in measured),
                rate_searches=len(measured), check_failed=any(j["check_failed"] for j in measured),
                seconds_per_run=(sum(j["seconds_per_run"] * len(j["identity"]["seeds"]) for j in measured)
                                 / sum(len(j["identity"]["seeds"]) for j in measured)),
                meta_test_cpu_seconds=sum(j.get("cpu_seconds", 0.0) for j in measured))
            if ident["source"] is not None:
                src = ident["source"]
                found = [searches.get((src["family"], src["dataset"], src["optimizer"], s)) for s in seeds]
                spent = [s for s in found if s is not None]
                if len(spent) == len(seeds):
                    row |= dict(family=src["family"], source=src["dataset"] or "universal",
                                trainings=_mean_of(spent, "trainings"), spec_trainings=_mean_of(spent, "spec_trainings"),
                                search_cpu_seconds=_mean_of(spent, "cpu_seconds"),
                                evolved_again=sum(bool(s.get("evolved_again")) for s in spent))
            if name == LS_TUNED:
                row["epsilon"] = sorted({j["tuning"].get("epsilon") for j in measured if j["tuning"].get("epsilon")})
            row["mean"] = statistics.mean(row["accuracy"])
            row["sd"] = statistics.stdev(row["accuracy"]) if len(seeds) > 1 else math.nan
            rows.append(row)
        by_name = {r["loss"]: r for r in rows}
        for key, reference in (("vs_ce", "ce"), ("vs_ls_tuned", LS_TUNED)):
            base = by_name.get(reference)
            others = [r for r in rows if base is not None and r is not base]
            for r in others:
                r[key] = _paired(r["accuracy"], base["accuracy"])  # type: ignore[index]
            for r, adjusted in zip(others, holm_adjust([r[key]["p"] for r in others]), strict=True):
                r[key]["p_holm"] = adjusted
            if base is not None:
                base[key] = dict(diff=0.0, ci=[0.0, 0.0], p=math.nan, test="itself", wins=0, losses=0, p_holm=math.nan)
            for r in rows:
                r.setdefault(key, None)
        order = {k: i for i, k in enumerate(("reference", "evolved", "universal", "transfer"))}
        rows.sort(key=lambda r: (order.get(r["kind"], 9), -r["mean"]))
        out.append(dict(dataset=dataset, optimizer=optimizer, seeds=list(seeds), rows=rows, unfinished=sorted(unfinished),
                        complete=bool(rows) and not unfinished and "ce" in by_name and LS_TUNED in by_name))
    return out


def _significant(comparison: dict | None, sign: int) -> bool:
    return (comparison is not None and not math.isnan(comparison["p_holm"]) and comparison["p_holm"] < ALPHA
            and sign * comparison["diff"] > 0)


def league_target(cells: Sequence[dict]) -> dict:
    """The issue's target, from :func:`cell_tables`' entries, each part met or not with its numbers."""
    best_vs_fixed: list[dict[str, Any]] = []
    beats: list[dict[str, Any]] = []
    mln: list[dict[str, Any]] = []
    for cell in cells:
        name = f"{cell['dataset']}/{cell['optimizer']}"
        evolved = [r for r in cell["rows"] if r["kind"] != "reference"]
        fixed = [r for r in cell["rows"] if r["kind"] == "reference"]
        if evolved and fixed:
            best_e, best_f = max(evolved, key=lambda r: r["mean"]), max(fixed, key=lambda r: r["mean"])
            paired = _paired(best_e["accuracy"], best_f["accuracy"])
            worse = not math.isnan(paired["p"]) and paired["p"] < ALPHA and paired["diff"] < 0
            best_vs_fixed.append(dict(cell=name, best_evolved=best_e["loss"], best_fixed=best_f["loss"],
                                      diff=paired["diff"], ci=paired["ci"], p=paired["p"], met=not worse,
                                      complete=cell.get("complete", True)))
        else:
            best_vs_fixed.append(dict(cell=name, met=False, reason="no rows"))
        winners = [dict(loss=r["loss"], vs_ce=r["vs_ce"]["diff"], p_holm_ce=r["vs_ce"]["p_holm"],
                        vs_ls_tuned=r["vs_ls_tuned"]["diff"], p_holm_ls_tuned=r["vs_ls_tuned"]["p_holm"])
                   for r in evolved if _significant(r["vs_ce"], 1) and _significant(r["vs_ls_tuned"], 1)]
        beats.append(dict(cell=name, winners=winners, met=bool(winners)))
        families = [r for r in cell["rows"] if r["kind"] in ("evolved", "universal")]
        hybrid = next((r for r in families if r["loss"] == "mln-hybrid"), None)
        if hybrid is None or not families:
            mln.append(dict(cell=name, met=False, reason="no mln-hybrid row"))
            continue
        best = max(families, key=lambda r: r["mean"])
        if best is hybrid:
            mln.append(dict(cell=name, best_family=best["loss"], diff=0.0, ci=[0.0, 0.0], met=True))
        else:
            paired = _paired(hybrid["accuracy"], best["accuracy"])
            high = paired["ci"][1]
            mln.append(dict(cell=name, best_family=best["loss"], diff=paired["diff"], ci=paired["ci"],
                            met=not math.isnan(high) and high >= 0))
    n_beat, n_mln = sum(c["met"] for c in beats), sum(c["met"] for c in mln)
    return dict(
        a=dict(statement="in every cell the best evolved loss (any learned row: evolved, universal or transfer) is "
                         "not significantly worse than the best fixed loss (both by mean test accuracy; paired "
                         f"sign-flip p >= {ALPHA}, unadjusted, or a non-negative difference)",
               met=bool(cells) and all(c["met"] and c.get("complete", False) for c in best_vs_fixed),
               cells=best_vs_fixed),
        b=dict(statement=f"in >= {TARGET_CELLS_BEAT} of {len(CELLS)} cells a learned row beats CE and ls-tuned, each "
                         f"at Holm p < {ALPHA}", met=n_beat >= TARGET_CELLS_BEAT, count=n_beat, cells=beats),
        c=dict(statement=f"in >= {TARGET_CELLS_MLN} cells the MLN hybrid is the best family or the 95% interval of "
                         "its paired difference from the best family reaches 0", met=n_mln >= TARGET_CELLS_MLN,
               count=n_mln, cells=mln))


def json_safe(value: Any) -> Any:
    """NaN as null, so league.json is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


# ------------------------------------------------------------------------------ report


def _f(value: float | None, fmt: str) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def _comparison(c: dict | None) -> tuple[str, str]:
    if c is None:
        return "–", "–"
    return f"{c['diff']:+.4f} [{_f(c['ci'][0], '+.4f')}, {_f(c['ci'][1], '+.4f')}]", _f(c["p_holm"], ".3f")


def markdown_cell(cell: dict) -> str:
    n = len(cell["seeds"])
    lines = [f"| loss | kind | mean test acc. (sd) | vs CE [95% CI] | p Holm vs CE | vs ls-tuned [95% CI] | p Holm vs ls-tuned "
             f"| wins / losses vs CE of {n} | lr | spec trainings | search CPU s | s / run |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in cell["rows"]:
        ce, ce_p = _comparison(r["vs_ce"])
        ls, ls_p = _comparison(r["vs_ls_tuned"])
        marks = (" (!)" if r["check_failed"] else "") + (f" (edge {r['at_edge']}/{r['rate_searches']})"
                                                         if r["at_edge"] else "")
        lr = f"{r['lr'][0]:g}" if len(r["lr"]) == 1 else f"{min(r['lr']):g}-{max(r['lr']):g}"
        if r.get("epsilon"):
            lr += f" (eps {', '.join(f'{e:g}' for e in r['epsilon'])})"
        wins = f"{r['vs_ce']['wins']} / {r['vs_ce']['losses']}" if r["vs_ce"] else "–"
        lines.append(f"| {r['loss']}{marks} | {r['kind']} | {r['mean']:.4f} ({_f(r['sd'], '.4f')}) | {ce} | {ce_p} "
                     f"| {ls} | {ls_p} | {wins} | {lr} | {_f(r.get('spec_trainings'), '.1f')} "
                     f"| {_f(r.get('search_cpu_seconds'), '.0f')} | {r['seconds_per_run']:.2f} |")
    return "\n".join(lines)


def markdown_costs(costs: dict[str, dict], families: Sequence[str]) -> str:
    """:func:`search_costs` as a table: per cell, what a search spent (mean per seed) and each family's CPU seconds."""
    lines = ["| cell | searches | spec trainings | shortened trainings | CPU s (mean) | " + " | ".join(families) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(families)]
    for name, c in costs.items():
        lines.append(f"| {name} | {c['searches']} | {c['spec_trainings']:.1f} | {c['trainings']:.0f} | "
                     f"{c['cpu_seconds']:.0f} | " + " | ".join(_f(c["by_family"].get(f), ".0f") for f in families)
                     + " |")
    return "\n".join(lines)


def markdown_summary(cells: Sequence[dict]) -> str:
    """One line per cell: CE, ls-tuned, the best fixed loss and the best row of each other kind (by
    mean test accuracy), the evolved one with its Holm-adjusted comparisons."""
    def best(rows: list[dict], kind: str) -> str:
        chosen = [r for r in rows if r["kind"] == kind]
        if not chosen:
            return "–"
        top = max(chosen, key=lambda r: r["mean"])
        return f"{top['loss']} {top['mean']:.4f}"

    lines = ["| cell | seeds | CE | ls-tuned | best fixed | best evolved | its vs CE (p Holm) | its vs ls-tuned (p Holm) "
             "| best transfer | best universal |", "|---|---:|---:|---:|---|---|---:|---:|---|---|"]
    for cell in cells:
        rows = {r["loss"]: r for r in cell["rows"]}
        evolved = [r for r in cell["rows"] if r["kind"] == "evolved"]
        top = max(evolved, key=lambda r: r["mean"]) if evolved else None
        versus = [f"{top[k]['diff']:+.4f} ({_f(top[k]['p_holm'], '.3f')})" if top and top[k] else "–"
                  for k in ("vs_ce", "vs_ls_tuned")]
        lines.append(f"| {cell['dataset']}/{cell['optimizer']} | {len(cell['seeds'])} | "
                     f"{_f(rows['ce']['mean'] if 'ce' in rows else None, '.4f')} | "
                     f"{_f(rows[LS_TUNED]['mean'] if LS_TUNED in rows else None, '.4f')} | "
                     f"{best(cell['rows'], 'reference')} | {best(cell['rows'], 'evolved')} | {versus[0]} | {versus[1]} | "
                     f"{best(cell['rows'], 'transfer')} | {best(cell['rows'], 'universal')} |")
    return "\n".join(lines)


def markdown_target(target: dict) -> list[str]:
    def verdict(part: dict) -> str:
        return "**met**" if part["met"] else "**not met**"

    lines = ["## Target", "", f"(a) {target['a']['statement']}: {verdict(target['a'])}.", ""]
    lines += [f"- {c['cell']}: " + (f"best evolved {c['best_evolved']} vs best fixed {c['best_fixed']}: "
                                    f"{c['diff']:+.4f} [{_f(c['ci'][0], '+.4f')}, {_f(c['ci'][1], '+.4f')}], "
                                    f"p {_f(c['p'], '.3f')}: {'met' if c['met'] else 'not met'}"
                                    + ("" if c["complete"] else " (cell unfinished)")
                                    if "best_evolved" in c else c.get("reason", "not finished"))
              for c in target["a"]["cells"]]
    lines += ["", f"(b) {target['b']['statement']}: {verdict(target['b'])} ({target['b']['count']} cells).", ""]
    lines += [f"- {c['cell']}: " + (", ".join(f"{w['loss']} ({w['vs_ce']:+.4f} vs CE, p {w['p_holm_ce']:.3f}; "
                                              f"{w['vs_ls_tuned']:+.4f} vs ls-tuned, p {w['p_holm_ls_tuned']:.3f})"
                                              for w in c["winners"]) or "none")
              for c in target["b"]["cells"]]
    lines += ["", f"(c) {target['c']['statement']}: {verdict(target['c'])} ({target['c']['count']} cells).", ""]
    lines += [f"- {c['cell']}: " + (f"best family {c['best_family']}; mln-hybrid {c['diff']:+.4f} "
                                    f"[{_f(c['ci'][0], '+.4f')}, {_f(c['ci'][1], '+.4f')}]: "
                                    f"{'met' if c['met'] else 'not met'}" if "best_family" in c else c["reason"])
              for c in target["c"]["cells"]]
    return lines


def plot_cells(cells: Sequence[dict], path: Path) -> None:
    """Per cell, each row's paired difference from CE: one dot per seed, the mean and its 95% interval."""
    from deap_mln.plotting import pyplot, save_figure

    plt = pyplot()
    columns = min(3, max(1, len(cells)))
    rows_n = math.ceil(len(cells) / columns) if cells else 1
    fig, axes = plt.subplots(rows_n, columns, figsize=(5.5 * columns, 6 * rows_n), squeeze=False)
    colours = dict(reference="tab:grey", evolved="tab:blue", universal="tab:purple", transfer="tab:orange")
    for ax, cell in zip(axes.flat, cells):
        ax.set_title(f"{cell['dataset']} / {cell['optimizer']}")
        ce = next((r for r in cell["rows"] if r["loss"] == "ce"), None)
        if ce is None:
            ax.text(0.5, 0.5, "not finished", transform=ax.transAxes, ha="center")
            continue
        ordered = sorted(cell["rows"], key=lambda r: r["vs_ce"]["diff"])
        for y, row in enumerate(ordered):
            colour = colours.get(row["kind"], "black")
            diffs = [a - c for a, c in zip(row["accuracy"], ce["accuracy"], strict=True)]
            ax.scatter(diffs, [y] * len(diffs), s=8, alpha=0.35, color=colour)
            low, high = row["vs_ce"]["ci"]
            if not (math.isnan(low) or math.isnan(high)):
                ax.plot([low, high], [y, y], color=colour, lw=2)
            ax.scatter([row["vs_ce"]["diff"]], [y], marker="D", color=colour, zorder=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(range(len(ordered)), [r["loss"] for r in ordered], fontsize=7)
        ax.set_xlabel("test accuracy minus CE's, same seed")
    for ax in list(axes.flat)[len(cells):]:
        ax.axis("off")
    fig.suptitle("grey: reference; blue: evolved on the cell's data;\npurple: universal; orange: transfer",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def search_costs(jobs: Sequence[dict], plan: Plan) -> dict[str, dict]:
    """Per cell, the data-driven searches' mean spec trainings, shortened trainings and CPU seconds."""
    costs = {}
    for cell in plan.source_cells():
        dataset, optimizer = cell_parts(cell)
        spent = [j for j in jobs if j["identity"]["job"] == "evolution" and j["identity"]["dataset"] == dataset
                 and j["identity"]["optimizer"] == optimizer]
        if spent:
            costs[cell] = dict(searches=len(spent), spec_trainings=statistics.mean(j["spec_trainings"] for j in spent),
                               trainings=statistics.mean(j["trainings"] for j in spent),
                               cpu_seconds=statistics.mean(j["cpu_seconds"] for j in spent),
                               by_family={f: statistics.mean(j["cpu_seconds"] for j in spent
                                                             if j["identity"]["family"] == f)
                                          for f in plan.families if any(j["identity"]["family"] == f for j in spent)})
    return costs


PROBE_FILE = "benchmarks/results/league_v2/probe.json"


def planned_estimate(plan: Plan) -> dict | None:
    """:func:`estimate` of ``plan`` from the committed probe's times (None without them)."""
    path = harness.REPO_ROOT / PROBE_FILE
    if plan.steps or not path.is_file():  # the probe timed each data set's default steps
        return None
    probed = read_json(path)["cells"]
    if any(cell not in probed for cell in plan.cells):
        return None
    return dict(as_is=estimate(probed, plan), data_cached=estimate(probed, plan, data_cached=True))


def write_report(plan: Plan, layout: Layout, command: str, seconds: float | None) -> dict:
    """Aggregate the job files under ``layout`` into league.json, league.md and league.png."""
    jobs = collect(layout)
    cells = cell_tables(jobs, plan.cells, plan.seeds)
    target = league_target(cells)
    costs = search_costs(jobs, plan)
    cpu = dict(evolution=sum(j["cpu_seconds"] for j in jobs if j["identity"]["job"] == "evolution"),
               meta_test=sum(j.get("cpu_seconds", 0.0) for j in jobs if j["identity"]["job"] == "meta-test"))
    commits = league.job_commits(jobs)
    forecast = planned_estimate(plan)
    chosen = sorted({r["family"] for c in cells for r in c["rows"] if r["kind"] == "transfer" and "family" in r})
    result = dict(
        cells=cells, target=target, command=command, plan=dict(dataclasses.asdict(plan), fitness=dict(plan.fitness)),
        budget=dict(spec_trainings=plan.budget, shortened_trainings=int(round(plan.budget / dict(plan.fitness)["fraction"])),
                    fitness=dict(plan.fitness), per_cell=costs),
        transfer_families=chosen, families_described=DESCRIPTIONS, job_cpu_seconds=cpu,
        commits=dict(aggregation=harness.git_state(CODE_PATHS), jobs=commits), machine=harness.machine_info(),
        pass_seconds=seconds, jobs=len(jobs), estimate=forecast)
    result = json_safe(result)
    parts = [f"# League v2: {len(plan.cells)} cells, {len(plan.seeds)} seeds, {plan.budget} spec trainings per search",
             "", f"`{command}`" + (f" — this pass {seconds / 60:.1f} min" if seconds is not None else "")
             + f"; the jobs took {cpu['evolution'] / 3600:.2f} h of one core in searches and "
             f"{cpu['meta_test'] / 3600:.2f} h in meta-tests. {league.commits_line(commits)}"
             + (f" Estimated before the run from {PROBE_FILE}'s times: {forecast['data_cached']['hours_on_2_workers']} h "
                f"on 2 workers ({forecast['as_is']['hours_on_2_workers']} h while GP and TaylorGLO read the data "
                "at every evaluation)." if forecast else ""), "",
             f"Each search: at most {plan.budget} trainings of the cell's spec (mlp3, batch {BATCH_SIZE}, the data set's "
             f"steps, the cell's optimizer at CE's tuned rate), spent as "
             f"{result['budget']['shortened_trainings']} faithful evaluations of {dict(plan.fitness)} "
             "(only trained candidates count). *spec trainings*: what a row's searches spent, mean per seed; "
             "*search CPU s*: one thread, mean per seed. *vs CE*, *vs ls-tuned*: mean paired difference with a "
             "bootstrap 95% interval; *p Holm*: exact sign-flip p, Holm-adjusted over the cell's rows per comparison. "
             "(!): flagged by the K-class check; (edge k/n): k of n rate searches ended at an edge of the grid. "
             f"Transfer rows: {', '.join(chosen) if chosen else 'none yet'}.", ""]
    parts += ["## Per cell, the best of each kind", "", markdown_summary(cells), ""]
    parts += markdown_target(target) + [""]
    if costs:
        parts += ["## What a search cost", "", markdown_costs(costs, plan.families), ""]
    for cell in cells:
        parts += [f"## {cell['dataset']} / {cell['optimizer']}", ""]
        parts += [markdown_cell(cell), ""] if cell["rows"] else ["Not started.", ""]
        if cell["unfinished"]:
            parts += [f"Unfinished rows: {', '.join(cell['unfinished'])}.", ""]
    harness.write_results(layout.out / "league", result, "\n".join(parts))
    plot_cells([c for c in cells if c["rows"]], layout.out / "league.png")
    return result


# ------------------------------------------------------------------------------ the probe


# distillation of the MLN's known start per search (benchmarks/results/warm_start/warm_start.md: 11.9)
WARM_START_CPU = 12.0
CACHED_FLOOR = 1.5     # estimate(data_cached=True): a GP / TaylorGLO spec training costs at least this many CE ones
PROBE_BUDGETS = (2, 5)  # spec trainings of the probe's two small searches per family and cell


def probe(out: Path, plan: Plan) -> dict:
    """CPU seconds on this machine, per cell: one training of the spec with CE; per family two small
    searches (:data:`PROBE_BUDGETS`), whose difference gives the CPU seconds per spec training spent
    and the rest a fixed cost per search (data, files, figures); a one-seed meta-test of a formula
    loss (Baikal) and of an MLN (``digits_task``). Then :func:`estimate` at ``plan``."""
    import torch
    from torch import nn

    from deap_mln.data.source import load_source
    from deap_mln.metatest.run import meta_test
    from deap_mln.training.trainer import USUAL_RATES, ClassifierTraining, TrainingSpec

    torch.set_num_threads(1)
    mln_loss = str(harness.REPO_ROOT / "benchmarks/results/digits_task/best_loss.pt")
    work = out / WORK_DIR / "probe"
    cells: dict[str, dict] = {}
    for cell in plan.cells:
        dataset, optimizer = cell_parts(cell)
        steps = plan.cell_steps(dataset)
        data = load_source(dataset)
        spec = TrainingSpec(model=MODEL, steps=steps, batch_size=BATCH_SIZE, optimizer=optimizer,
                            lr=USUAL_RATES[optimizer])
        ClassifierTraining(data, nn.CrossEntropyLoss(), 0, spec).train(20)  # warm-up
        tic = time.process_time()
        run = ClassifierTraining(data, nn.CrossEntropyLoss(), 0, spec)
        run.train(steps)
        run.accuracy()
        entry: dict[str, Any] = dict(spec_training=round(time.process_time() - tic, 3), searches={})
        tic = time.process_time()
        load_source(dataset)  # what a GP / TaylorGLO faithful evaluation pays to read the data (not cached)
        entry["data_load"] = round(time.process_time() - tic, 3)
        for family in plan.families:
            measured = []
            for budget in PROBE_BUDGETS:
                search = Evolution(family, 0, dataset, optimizer, budget, steps, USUAL_RATES[optimizer], plan.fitness)
                folder = work / cell.replace("/", "-") / f"{family}-{budget}"
                if folder.exists():
                    shutil.rmtree(folder)
                folder.mkdir(parents=True)
                tic = time.process_time()
                facts = SEARCHES[family](search, folder)
                measured.append((facts["trainings"] * dict(plan.fitness)["fraction"], time.process_time() - tic))
            (spent_a, cpu_a), (spent_b, cpu_b) = measured
            per = (cpu_b - cpu_a) / (spent_b - spent_a) if spent_b > spent_a else cpu_b / max(spent_b, 0.1)
            per = max(per, 0.0)
            entry["searches"][family] = dict(measured=[[round(a, 2), round(b, 2)] for a, b in measured],
                                             per_spec_training=round(per, 3),
                                             fixed=round(max(0.0, cpu_a - per * spent_a), 2))
        for name, loss in (("formula", "baikal"), ("mln", mln_loss)):
            tic = time.process_time()
            meta_test([loss], dataset, work / cell.replace("/", "-") / f"meta-{name}", model=MODEL, seeds=1,
                      steps=steps, batch_size=BATCH_SIZE, optimizer=optimizer, threads=1)
            entry[f"meta_test_one_seed_{name}"] = round(time.process_time() - tic, 2)
        cells[cell] = entry
        harness.say(f"   probe {cell}: {entry}")
    result = dict(cells=cells, machine=harness.machine_info(), load=harness.load_average(),
                  estimate=estimate(cells, plan), estimate_data_cached=estimate(cells, plan, data_cached=True))
    write_json(out / "probe.json", result)
    return result


def estimate(probed: dict[str, dict], plan: Plan, ls_tuned_factor: float = 5.0, universal_cpu: float = 15.0,
             data_cached: bool = False, warm_start_cpu: float = WARM_START_CPU) -> dict:
    """CPU seconds of the league at ``plan`` from :func:`probe`'s per-cell times: a reference as a
    one-seed meta-test of a formula loss and n - 1 more runs (ls-tuned ``ls_tuned_factor`` times
    that: five epsilons' rate searches); every evolved row one one-seed meta-test per seed (MLN
    rows at the MLN's time); every search its fixed cost and ``plan.budget`` spec trainings; the
    universal searches ``universal_cpu`` per seed (v1's league: mln-universal 8 CPU s, edl 5); every
    data-driven MLN search ``warm_start_cpu`` more for distilling its known start (the probe ran
    before the MLN presets started from it).
    ``data_cached``: as if GP and TaylorGLO read the data once per search, not once per evaluation
    (``deap_mln.training.splits.faithful_data`` reloads it today): the probe's time per spec training
    less the reloads, but not below :data:`CACHED_FLOOR` spec trainings' time (digits, where a reload
    is free, measured 1.0-2.4)."""
    n = len(plan.seeds)
    fitness = dict(plan.fitness)
    evaluations_per_spec_training = 1 / (fitness["fraction"] * fitness["fitness_splits"]
                                         * (3 if fitness["rates"] == "search" else 1))
    mln_rows = {"mln-hybrid", "mln-es", "mln-universal", "edl"}
    transfers = plan.families if plan.transfer == "all" else plan.families[:1]
    per_cell = {}
    for cell in plan.cells:
        p = probed[cell]
        one_ref = p["meta_test_one_seed_formula"] + (n - 1) * p["spec_training"]
        references = one_ref * (len(plan.references) - 1 + ls_tuned_factor)
        rows = [*plan.families, *plan.universal, *[f for f in transfers for _ in range(len(DATASETS) - 1)]]
        meta = n * sum(p["meta_test_one_seed_mln" if r in mln_rows else "meta_test_one_seed_formula"] for r in rows)
        reload = p.get("data_load", 0.0) * evaluations_per_spec_training if data_cached else 0.0
        searches = {}
        for f in plan.families:
            per = p["searches"][f]["per_spec_training"]
            if reload and f in ("gp", "taylorglo"):
                per = max(per - reload, min(per, CACHED_FLOOR * p["spec_training"]))
            searches[f] = p["searches"][f]["fixed"] + plan.budget * per + (warm_start_cpu if f.startswith("mln") else 0.0)
        per_cell[cell] = dict(references=round(references), evolved_meta_tests=round(meta),
                              search_each=({f: round(v, 1) for f, v in searches.items()}),
                              searches=round(n * sum(searches.values())))
    meta_total = sum(c["references"] + c["evolved_meta_tests"] for c in per_cell.values())
    search_total = sum(c["searches"] for c in per_cell.values())
    total = meta_total + search_total + n * universal_cpu
    return dict(per_cell=per_cell, meta_test_cpu_seconds=round(meta_total), search_cpu_seconds=round(search_total),
                universal_cpu_seconds=n * universal_cpu, total_cpu_seconds=round(total),
                hours_on_2_workers=round(total / 2 / 3600, 2))


# ------------------------------------------------------------------------------ main


def unknown_references(references: Sequence[str]) -> list[str]:
    """The reference names the meta-test does not resolve here (code older than ls-tuned)."""
    from deap_mln.metatest.baselines import is_baseline

    return [r for r in references if not is_baseline(r)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="seeds 0 .. N-1 (default 10)")
    parser.add_argument("--budget", type=int, default=BUDGET, help=f"spec trainings per search (default {BUDGET})")
    parser.add_argument("--transfer", choices=("best", "all"), default="best",
                        help="transfer rows of the best data-driven family only (default) or of every family")
    parser.add_argument("--jobs", type=int, default=1, help="jobs in parallel processes, one thread each")
    parser.add_argument("--commit-every", type=float, default=0, metavar="MINUTES",
                        help="commit --out/jobs by path at most every MINUTES as jobs finish (0: never)")
    parser.add_argument("--report", action="store_true", help="only aggregate the finished jobs' files")
    parser.add_argument("--probe", action="store_true", help="measure per-training times and the league's estimate")
    parser.add_argument("--estimate", action="store_true",
                        help="the league's estimate at these settings from the probe's times (--out/probe.json)")
    parser.add_argument("--smoke", action="store_true",
                        help="digits/adam, 2 seeds, 40 steps, budget 2 spec trainings, to a temporary directory")
    parser.add_argument("--out", type=Path, help="results directory (default benchmarks/results/league_v2)")
    args = parser.parse_args()
    if min(args.seeds, args.budget, args.jobs) < 1:
        parser.error("--seeds, --budget and --jobs must be at least 1")
    plan = Plan(cells=tuple(c for c in CELLS if c in args.cells), seeds=tuple(range(args.seeds)), budget=args.budget,
                transfer=args.transfer)
    if args.smoke:
        plan = dataclasses.replace(plan, cells=("digits/adam",), seeds=(0, 1), budget=2, steps=40, universal_budget=60)
    out = args.out or (harness.output_dir(None, True, "league_v2") if args.smoke else harness.RESULTS_DIR / "league_v2")
    out.mkdir(parents=True, exist_ok=True)
    layout = Layout(out)
    command = harness.command_line(__file__)
    if args.probe or args.estimate:
        probed = probe(out, plan)["cells"] if args.probe else read_json(out / "probe.json")["cells"]
        for cached in (False, True):
            harness.say(f"{'data read once per search' if cached else 'as the library is'}: "
                        f"{estimate(probed, plan, data_cached=cached)}")
        return
    missing = unknown_references(plan.references)
    if missing and not args.report:
        sys.exit(f"league_v2: the meta-test does not know {', '.join(missing)}; the league compares with it")
    seconds = None
    if not args.report:
        tic = time.perf_counter()
        run_league(plan, layout, args.jobs, args.commit_every)
        seconds = time.perf_counter() - tic
    result = write_report(plan, layout, command, seconds)
    harness.say((layout.out / "league.md").read_text())
    harness.say(f"target: a {result['target']['a']['met']}, b {result['target']['b']['met']}, "
                f"c {result['target']['c']['met']}")


if __name__ == "__main__":
    main()
