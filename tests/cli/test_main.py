"""The deap-mln command: every subcommand parses and helps; flags reach the library as given."""
import subprocess
import sys

import pytest

from deap_mln.cli import main
from deap_mln.cli.main import COMMANDS, build_parser
from deap_mln.mln.config import EvolutionConfig
from tests.conftest import tiny_config

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
    (["evolve", "--out", "x", "--mu", "0"], "argument --mu: expected a positive integer, got '0'"),
    (["evolve", "--out", "x", "--hidden", "8,a"], "expected comma-separated values such as 32,64,128"),
    (["evolve", "--out", "x", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["evolve", "--out", "x", "--population", "7"], "--population must be even"),
    (["evolve", "--out", "x", "--preset", "quick", "--config", "c.json"], "--config and --preset are alternatives"),
    (["export", "x", "--format", "table", "--resolution", "1"], "expected an integer >= 2, got '1'"),
    (["nonsense"], "invalid choice: 'nonsense'"),
])
def test_bad_flags_are_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("flag", [["--seed", "4"], ["--preset", "paper"], ["--config", "c.json"], ["--population", "4"]])
def test_resume_refuses_every_flag_that_would_change_the_run(flag, capsys, tmp_path):
    assert main(["evolve", "--out", str(tmp_path), "--resume", *flag]) == 2
    assert f"drop {flag[0]}" in capsys.readouterr().err


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
