"""The measurement harness every benchmark shares: machine facts, load, timing, results files.

Benchmarks run as scripts from the repository root (``python benchmarks/NAME.py``), so Python
puts ``benchmarks/`` first on ``sys.path`` and a benchmark imports this module as ``harness``;
so do the worker processes of the process pool (``spawn`` hands them the parent's path) and of
SCOOP (it runs the same script).

What it offers, one function per idea:

- where results go: :data:`RESULTS_DIR`, :func:`output_dir` (smoke runs go to a temporary
  directory), :func:`write_results` (``NAME.json`` + ``NAME.md``, atomically),
  :func:`command_line` (the command that produced them), :func:`read_csv_rows` (a run's logbook);
- what was measured on: :func:`machine_info`, :func:`machine_line`, :func:`git_state`;
- how busy the machine was: :func:`load_average`, :func:`wait_for_idle`, :class:`OtherLoad`
  and :func:`measured_section` (CPU time of processes outside the benchmark), :func:`other_load_table`;
- timing: :func:`timed`, :func:`time_maps` with :func:`traced_call` (which process ran each
  item of a map, and when), :func:`run_logged` (a subprocess's wall time and peak memory);
- the workload most benchmarks time: :func:`glorot_genomes`.
"""
from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

import deap_mln
from deap_mln.io import read_json, write_json, write_text
from deap_mln.mln.network import glorot_genome

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
GIB_IN_KIB = 2**20

T = TypeVar("T")
R = TypeVar("R")


def say(text: str) -> None:
    """Print one progress line at once (benchmarks run for minutes, often with output to a log)."""
    print(text, flush=True)


# ------------------------------------------------------------------------------ results files


def output_dir(given: Path | None, quick: bool, name: str) -> Path:
    """The results directory: ``given``; else a new temporary one for a smoke run (``quick``),
    so smoke runs never overwrite measured results; else :data:`RESULTS_DIR`. Created."""
    if given is not None:
        out = given
    elif quick:
        out = Path(tempfile.mkdtemp(prefix=f"deap_mln_{name}_quick_"))
    else:
        out = RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_results(name_or_stem: str | Path, data: Any, markdown: str) -> tuple[Path, Path]:
    """Write ``data`` to ``STEM.json`` and ``markdown`` to ``STEM.md``, each atomically; the two paths.

    A ``Path`` is the stem itself (``out / "throughput"``); a ``str`` is a name under
    :data:`RESULTS_DIR` (``"backends"``). The stem's folder is created.
    """
    stem = name_or_stem if isinstance(name_or_stem, Path) else RESULTS_DIR / name_or_stem
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = stem.parent / f"{stem.name}.json", stem.parent / f"{stem.name}.md"
    write_json(json_path, data)
    write_text(md_path, markdown if markdown.endswith("\n") else markdown + "\n")
    return json_path, md_path


def command_line(script: str | Path, argv: Sequence[str] | None = None) -> str:
    """The shell command that ran ``script`` (a benchmark's ``__file__``) with ``argv``
    (default: this process's arguments), relative to the repository root."""
    args = list(argv) if argv is not None else sys.argv[1:]
    return shlex.join(["python", os.path.relpath(Path(script).resolve(), REPO_ROOT), *args])


def finished_job(path: Path, identity: dict) -> dict | None:
    """A resumable benchmark's finished job: the facts in ``path`` (None when it is not there);
    ValueError when the file was written for another job ``identity``."""
    if not path.is_file():
        return None
    facts = read_json(path)
    if facts.get("identity") != identity:
        raise ValueError(f"{path} was written for {facts.get('identity')}, not {identity}: move it away to rerun")
    return facts


def read_csv_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header (a run's ``logbook.csv``), as dicts of strings."""
    with Path(path).open(newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------ the machine


def git_state(paths: Sequence[str] = ("deap_mln",)) -> dict:
    """Which code was measured: the commit and the files under ``paths`` changed since (lines of
    ``git status --porcelain``; they may be edited while a long benchmark runs, so benchmarks
    record this before and after)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        return done.stdout.rstrip("\n") if done.returncode == 0 else ""  # keep porcelain's leading blanks

    try:
        return dict(git_commit=git("rev-parse", "HEAD") or None,
                    git_dirty=git("status", "--porcelain", "--", *paths).splitlines())
    except OSError:  # no git on this machine
        return dict(git_commit=None, git_dirty=None)


def _proc_line(path: str, prefix: str) -> str | None:
    """The first line of a /proc file that starts with ``prefix``, or None (not Linux, no such line)."""
    try:
        return next((line for line in Path(path).read_text().splitlines() if line.startswith(prefix)), None)
    except OSError:
        return None


def machine_info() -> dict:
    """Date, CPU, memory, Python and package versions, torch's default thread count and the git state."""
    info: dict[str, Any] = dict(
        date=dt.datetime.now().astimezone().isoformat(timespec="seconds"), hostname=platform.node(),
        platform=platform.platform(), machine=platform.machine(), cpu_count=os.cpu_count(),
        python=platform.python_version(), torch=torch.__version__, numpy=np.__version__,
        deap_mln=deap_mln.__version__, torch_default_threads=torch.get_num_threads())
    for name in ("deap", "scoop", "scipy", "matplotlib"):
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = None
    cpu = _proc_line("/proc/cpuinfo", "model name")
    info["cpu_model"] = cpu.split(":", 1)[1].strip() if cpu else platform.processor() or None
    mem = _proc_line("/proc/meminfo", "MemTotal")
    info["mem_total_gib"] = round(int(mem.split()[1]) / GIB_IN_KIB, 1) if mem else None
    info.update(git_state())
    return info


def machine_line(info: dict) -> str:
    """One sentence for a report's header from :func:`machine_info` (older result files may lack keys)."""
    memory = f", {info['mem_total_gib']} GiB" if info.get("mem_total_gib") else ""
    versions = ", ".join(f"{name} {info[name]}" for name in ("torch", "deap", "scoop") if info.get(name))
    code = f"commit {(info.get('git_commit') or '?')[:10]}"
    if info.get("git_dirty"):  # lines of `git status --porcelain`: two status letters, a space, the path
        code += f", with uncommitted changes to {', '.join(line[3:] for line in info['git_dirty'])}"
    return (f"{info.get('date', '?')}; {info.get('cpu_model', '?')}, {info.get('cpu_count', '?')} CPUs{memory}; "
            f"Python {info.get('python', '?')}, {versions}; code: {code}")


# ------------------------------------------------------------------------------ load of the machine


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages, rounded to 0.01."""
    return [round(x, 2) for x in os.getloadavg()]


def wait_for_idle(max_load: float, minutes: float, poll_seconds: float = 15.0) -> float:
    """Wait until the 1-minute load average is below ``max_load`` (at most ``minutes``); seconds waited."""
    tic = time.perf_counter()
    while os.getloadavg()[0] >= max_load and time.perf_counter() - tic < minutes * 60:
        say(f"   waiting for an idle machine: load {load_average()}")
        time.sleep(poll_seconds)
    return time.perf_counter() - tic


def process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, CPU clock ticks used so far) of every process (Linux /proc)."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                table[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))  # ppid, utime + stime
            except (OSError, IndexError, ValueError):  # the process ended while we read
                continue
    return table


def process_tree(table: dict[int, tuple[int, int]], root: int) -> set[int]:
    """``root`` and all its descendants in a :func:`process_table`."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += children.get(pid, [])
    return tree


class _Sampler:
    """A daemon thread that calls ``sample()`` when a ``with`` block starts, every ``interval``
    seconds in it, and once more when it ends."""

    def __init__(self, interval: float):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        self.sample()
        while not self._stop.wait(self.interval):
            self.sample()
        self.sample()  # the part of the last interval before the block ended

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class OtherLoad(_Sampler):
    """Wall time, load average and the CPU time *other* processes use during a ``with`` block.

    Every ``interval`` seconds it reads every process's CPU time and charges each increase to
    this benchmark (this process and its descendants: SCOOP workers, evolution runs) or to the
    rest of the machine; ``other_cpu_share`` in :attr:`summary` is the rest's share of all
    cores' capacity over the block. A process that ends between samples loses its last interval.
    """

    def __init__(self, interval: float = 1.0):
        super().__init__(interval)
        self.other_ticks = self.own_ticks = 0
        self.summary: dict = {}

    def sample(self) -> None:
        now = process_table()
        mine = process_tree(now, os.getpid())
        for pid, (_, ticks) in now.items():
            if pid in mine:  # a new process of ours: all its time is ours
                self.own_ticks += max(0, ticks - self._last[pid][1] if pid in self._last else ticks)
            elif pid in self._last:  # a process first seen now that is not ours counts from now on
                self.other_ticks += max(0, ticks - self._last[pid][1])
        self._last = now

    def __enter__(self) -> OtherLoad:
        self.load_before, self._last, self._tic = load_average(), process_table(), time.perf_counter()
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        wall = time.perf_counter() - self._tic
        hz = os.sysconf("SC_CLK_TCK")
        other, own = self.other_ticks / hz, self.own_ticks / hz
        self.summary = dict(load_before=self.load_before, wall_seconds=round(wall, 2), own_cpu_seconds=round(own, 2),
                            other_cpu_seconds=round(other, 2),
                            other_cpu_share=round(other / (wall * (os.cpu_count() or 1)), 4))


@contextlib.contextmanager
def measured_section(name: str, sections: dict) -> Iterator[None]:
    """Measure the ``with`` block with :class:`OtherLoad`, store its summary as ``sections[name]``
    and print one line about it."""
    with OtherLoad() as load:
        yield
    sections[name] = s = load.summary
    say(f"   [{name}: {s['wall_seconds']:.0f} s; other processes used {s['other_cpu_seconds']:.1f} CPU-s "
        f"({s['other_cpu_share']:.1%} of the machine); this benchmark {s['own_cpu_seconds']:.1f} CPU-s]")


def other_load_table(sections: dict) -> list[str]:
    """Markdown lines: a heading and a table of the :func:`measured_section` summaries."""
    lines = ["## Other load on the machine during each section", "",
             "CPU time of processes outside this benchmark's process tree, sampled each second, "
             "as a share of all cores' capacity over the section.", "",
             "| section | wall time | load average before | other processes' CPU | share of the machine |",
             "|---|---:|---|---:|---:|"]
    for name, x in sections.items():
        lines.append(f"| {name} | {x['wall_seconds']:.0f} s | {x['load_before']} | {x['other_cpu_seconds']:.1f} s | "
                     f"{x['other_cpu_share']:.1%} |")
    return lines


class PeakTreeMemory(_Sampler):
    """The largest summed resident memory (KiB) of a process and its descendants, sampled in a ``with`` block."""

    def __init__(self, pid: int, interval: float = 0.5):
        super().__init__(interval)
        self.pid, self.peak_kib = pid, 0

    def sample(self) -> None:
        total = 0
        for pid in process_tree(process_table(), self.pid):
            line = _proc_line(f"/proc/{pid}/status", "VmRSS:")
            total += int(line.split()[1]) if line else 0
        self.peak_kib = max(self.peak_kib, total)


# ------------------------------------------------------------------------------ timing


def timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """``fn(*args, **kwargs)`` and the seconds it took."""
    tic = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - tic


def traced_call(fn: Callable[[T], R], item: T) -> tuple[R, int, float, float]:
    """``fn(item)`` and where and when it ran: (result, pid, start, end), times in epoch seconds."""
    start = time.time()
    result = fn(item)
    return result, os.getpid(), start, time.time()


def time_maps(map_fn: Callable, fn: Callable[[T], R], items: Iterable[T], warmup: int, repeats: int) -> dict:
    """Time ``map_fn(fn, items)``: ``warmup`` untimed maps (worker start-up, imports, caches), then
    ``repeats`` timed ones, which must all give the same results.

    Returns the seconds of each timed map and their median, the results, and per map which
    process ran each item and when (seconds from the map's start), and how many processes took part.
    """
    items, traced = list(items), functools.partial(traced_call, fn)
    for _ in range(warmup):
        list(map_fn(traced, items))
    seconds, results, trace = [], None, []
    for _ in range(repeats):
        tic, t0 = time.perf_counter(), time.time()
        runs = list(map_fn(traced, items))
        seconds.append(time.perf_counter() - tic)
        trace.append([dict(pid=pid, start=round(a - t0, 3), end=round(b - t0, 3)) for _, pid, a, b in runs])
        if results is not None and [r for r, *_ in runs] != results:
            raise RuntimeError("two maps over the same items gave different results")
        results = [r for r, *_ in runs]
    return dict(seconds=seconds, median_seconds=float(np.median(seconds)), results=results, trace=trace,
                processes_per_map=[len({t["pid"] for t in one}) for one in trace])


def _parse_time_v(text: str) -> dict:
    """Peak RSS (KiB) and wall time (s) from the report of GNU ``/usr/bin/time -v``."""
    out: dict[str, float] = {}
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        out["max_rss_kib"] = int(m.group(1))
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if m:
        seconds = 0.0
        for part in m.group(1).split(":"):
            seconds = seconds * 60 + float(part)
        out["elapsed_seconds"] = seconds
    return out


def run_logged(argv: Sequence[str], log_path: Path, *, measure_memory: bool = False, cwd: Path = REPO_ROOT) -> dict:
    """Run ``argv`` in ``cwd`` with its output to ``log_path``; RuntimeError naming the log if it fails.

    Returns ``wall_seconds``; with ``measure_memory`` also the peak resident memory of the largest
    process (``max_rss_gib``, from GNU ``/usr/bin/time -v`` where it exists, else getrusage) and
    of the whole process tree (``peak_tree_rss_gib``, sampled twice a second).
    """
    gnu_time = measure_memory and Path("/usr/bin/time").exists()
    command = (["/usr/bin/time", "-v"] if gnu_time else []) + list(argv)
    tic = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True)
        memory = PeakTreeMemory(proc.pid)
        with memory if measure_memory else contextlib.nullcontext():
            code = proc.wait()
    result: dict[str, Any] = dict(wall_seconds=time.perf_counter() - tic)
    if code != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed (exit {code}); see {log_path}")
    if measure_memory:
        result.update(peak_tree_rss_gib=memory.peak_kib / GIB_IN_KIB,
                      measured_with="/usr/bin/time -v" if gnu_time else "getrusage")
        if gnu_time:
            t = _parse_time_v(log_path.read_text())
            result.update(max_rss_gib=t.get("max_rss_kib", 0) / GIB_IN_KIB,
                          time_v_elapsed_seconds=t.get("elapsed_seconds"))
        else:
            import resource
            result["max_rss_gib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / GIB_IN_KIB
    return result


# ------------------------------------------------------------------------------ workload


def glorot_genomes(hidden: Sequence[int], n: int, seed: int) -> np.ndarray:
    """``n`` Glorot-initialised MLN genomes (rows), drawn from ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    return np.stack([glorot_genome(hidden, rng) for _ in range(n)])
