"""The deap-mln command: every subcommand parses and helps; flags reach the library as given;
every error is one line with one prefix and a documented exit code."""
import contextlib
import subprocess
import sys

import pytest

import deap_mln.mln.run as mln_run
from deap_mln.cli import main
from deap_mln.cli.main import COMMANDS, EXIT_EVALUATION_FAILED, PREFIX, build_parser
from deap_mln.mln.config import EvolutionConfig
from deap_mln.resilient_map import EvaluationFailed
from tests.conftest import tiny_config
from tests.mln.test_run import TINY_FLAGS

SUBCOMMANDS = ("evolve", "pretrain-edl", "show", "bench", "meta-test", "evolve-gp", "evolve-taylor", "export", "plot")


def test_every_subcommand_is_registered_and_helps(capsys):
    choices = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(choices) == set(SUBCOMMANDS) and len(COMMANDS) == 8
    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: deap-mln {name}" in capsys.readouterr().out


def test_python_dash_m_runs_the_same_command():
    done = subprocess.run([sys.executable, "-m", "deap_mln", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("deap_mln ")


@pytest.mark.parametrize("argv, message", [
    (["evolve", "--out", "x", "--mu", "0"], "evolve: argument --mu: expected a positive integer, got '0'"),
    (["evolve", "--out", "x", "--hidden", "8,a"], "evolve: argument --hidden: expected comma-separated values such as 32,64,128"),
    (["evolve", "--out", "x", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["evolve", "--out", "x", "--population", "7"], "--population must be even"),
    (["evolve", "--out", "x", "--preset", "quick", "--config", "c.json"], "--config and --preset are alternatives"),
    (["evolve"], "evolve: the following arguments are required: --out"),
    (["export", "x", "--format", "table", "--resolution", "1"], "export: argument --resolution: expected an integer >= 2"),
    (["nonsense"], "invalid choice: 'nonsense'"),
    ([], "the following arguments are required: command"),
])
def test_bad_flags_are_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert_one_error_line(err, message)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv, message", [
    (["show", "nowhere"], "nowhere is not a run directory"),                         # ValueError
    (["evolve", "--out", "run", "--resume"], "no EvolutionConfig file at"),          # FileNotFoundError
    (["evolve", "--out", "run", "--config", "missing.json"], "no EvolutionConfig file at"),
    (["meta-test", "--loss", "nowhere.pt", "--dataset", "digits", "--out", "mt"], "no such loss file"),
])
def test_bad_input_is_one_line_with_the_same_prefix_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert_one_error_line(capsys.readouterr().err, message)


def test_a_run_that_already_exists_is_refused_with_the_same_prefix(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.npz").write_bytes(b"")
    assert main(["evolve", "--out", "run", "--quiet", *TINY_FLAGS]) == 2  # FileExistsError
    assert_one_error_line(capsys.readouterr().err, "already holds a run")


@pytest.mark.parametrize("flag", [["--seed", "4"], ["--preset", "paper"], ["--config", "c.json"], ["--population", "4"]])
def test_resume_refuses_every_flag_that_would_change_the_run(flag, capsys, tmp_path):
    assert main(["evolve", "--out", str(tmp_path), "--resume", *flag]) == 2
    assert_one_error_line(capsys.readouterr().err, f"drop {flag[0]}")


def test_a_run_that_fails_after_its_retries_exits_3_and_resumes(capsys, tmp_path, monkeypatch):
    real_map, run = mln_run.evaluation_map, tmp_path / "run"

    @contextlib.contextmanager
    def failing_after_first_checkpoint(backend, workers):
        with real_map(backend, workers) as map_fn:
            def map_or_fail(fn, items):
                if (run / "checkpoint.npz").exists():
                    raise EvaluationFailed("chunk 1 of 2 failed 4 times, last: a worker process died; giving up (--retries 3)")
                return map_fn(fn, items)
            yield map_or_fail

    monkeypatch.setattr(mln_run, "evaluation_map", failing_after_first_checkpoint)  # the first checkpoint, then a failure
    argv = ["evolve", "--out", str(run), "--quiet", "--backend", "serial", *TINY_FLAGS]
    assert main(argv) == EXIT_EVALUATION_FAILED == 3
    err = capsys.readouterr().err
    assert_one_error_line(err, "a worker process died")
    assert "keeps its last checkpoint" in err and "--resume" in err
    monkeypatch.undo()
    assert main(["evolve", "--out", str(run), "--quiet", "--backend", "serial", "--resume"]) == 0
    assert (run / "best_loss.pt").is_file()


def assert_one_error_line(err: str, message: str) -> None:
    """``err`` is one line: the CLI's one prefix, then a message that holds ``message``, no program name twice."""
    assert err.startswith(PREFIX) and err.count("\n") == 1, err
    assert message in err and err.count("deap-mln") == 1 and "error:" not in err[len(PREFIX):], err


def test_a_config_file_keeps_its_seed_unless_seed_is_given(tmp_path, monkeypatch):
    seen: list[EvolutionConfig] = []
    monkeypatch.setattr("deap_mln.mln.run.evolve", lambda config, out, **kwargs: seen.append(config) or _stop())
    tiny_config(seed=7).save(tmp_path / "c.json")
    for argv, seed in ((["--config", str(tmp_path / "c.json")], 7), (["--config", str(tmp_path / "c.json"), "--seed", "2"], 2),
                       (["--preset", "quick"], 0)):
        with pytest.raises(_Stopped):
            main(["evolve", "--out", str(tmp_path / "run"), *argv])
        assert seen[-1].seed == seed
    assert seen[0].hidden == (8, 8) and seen[2].hidden == (32, 64, 128, 256, 512)


class _Stopped(Exception):
    pass


def _stop():
    raise _Stopped


def test_evolve_taylor_writes_a_run(tmp_path, capsys):
    assert main(["evolve-taylor", "--out", str(tmp_path / "t"), "--generations", "1", "--lambda", "2",
                 "--steps", "3", "--quiet", "--backend", "serial"]) == 0
    assert "deap_mln.taylor_loss/1" in capsys.readouterr().out
    assert (tmp_path / "t" / "best_loss.pt").is_file()
