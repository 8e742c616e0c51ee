"""Configs: typed JSON round trips; a wrong-typed or unknown field is a one-line error, exit 2."""
import json

import pytest

import deap_mln
from deap_mln.cli import main
from deap_mln.configs import coerce_field
from deap_mln.gp.config import GPConfig, gp_preset
from deap_mln.mln.config import PRESETS, EvolutionConfig, preset


@pytest.mark.parametrize("config", [preset(name) for name in PRESETS] + [GPConfig(), gp_preset("standard")])
def test_configs_survive_a_json_round_trip(config, tmp_path):
    config.save(tmp_path / "config.json")
    again = type(config).load(tmp_path / "config.json")
    assert again == config and again.to_dict() == config.to_dict()
    assert json.loads((tmp_path / "config.json").read_text()) == config.to_dict()


@pytest.mark.parametrize("field, value, message", [
    ("mu", "abc", "config field mu must be an integer, got 'abc'"),
    ("mu", 2.5, "config field mu must be an integer"),
    ("mu", True, "config field mu must be an integer"),
    ("tau", "0.2", "config field tau must be a number"),
    ("dynamic_update", 1, "config field dynamic_update must be true or false"),
    ("algorithm", 3, "config field algorithm must be a string"),
    ("hidden", [8, "x"], "config field hidden must be a list of ints"),
    ("hidden", 8, "config field hidden must be a list of ints"),
    ("edl_regimes", ["a", 1, 1, 1], "config field edl_regimes must be a list of floats"),
])
def test_a_wrong_typed_json_value_is_named(field, value, message):
    with pytest.raises(ValueError, match="^" + message):
        EvolutionConfig.from_dict({field: value})


def test_json_numbers_are_read_as_the_field_types():
    config = EvolutionConfig.from_dict({"tau": 1, "hidden": [8, 8], "edl_regimes": [1, 1, 1, 1]})
    assert config.tau == 1.0 and isinstance(config.tau, float)
    assert config.hidden == (8, 8) and config.edl_regimes == (1.0, 1.0, 1.0, 1.0)
    assert coerce_field("lr", float, 3) == 3.0


@pytest.mark.parametrize("text, expected", [
    ('{"mu": "abc"}', "config field mu must be an integer, got 'abc'"),
    ('{"no_such_field": 1}', "unknown EvolutionConfig fields: no_such_field"),
    ('{"mu": -1}', "mu must be at least 1, got -1"),
    ('[1, 2]', "EvolutionConfig must be a JSON object, got list"),
    ('{"mu": ', "is not valid JSON"),
])
def test_a_bad_config_file_is_one_line_and_exit_2(tmp_path, capsys, text, expected):
    path = tmp_path / "bad.json"
    path.write_text(text)
    assert main(["evolve", "--config", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing written


def test_a_missing_config_file_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["evolve", "--config", str(tmp_path / "none.json"), "--out", str(tmp_path / "run")]) == 2
    assert "no EvolutionConfig file at" in capsys.readouterr().err


def test_a_wrong_typed_gp_config_is_refused():
    with pytest.raises(ValueError, match="config field steps must be an integer"):
        GPConfig.from_dict({"steps": "many"})


def test_replace_checks_types_and_ranges():
    config = preset("quick")
    assert config.replace(mu=3).mu == 3 and config.mu == 25
    with pytest.raises(ValueError, match="must be an integer"):
        config.replace(mu="3")


def test_the_package_root_exports_what_it_lists():
    assert set(deap_mln.__all__) == {"__version__", *deap_mln._EXPORTS}
    for name in deap_mln._EXPORTS:
        assert getattr(deap_mln, name) is not None
    with pytest.raises(AttributeError):
        deap_mln.no_such_name  # noqa: B018


def test_every_config_field_is_documented():
    import dataclasses
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs"
    for cls, page in ((EvolutionConfig, "configuration.md"), (GPConfig, "gp.md")):
        text = (docs / page).read_text()
        missing = [f.name for f in dataclasses.fields(cls) if f"`{f.name}`" not in text]
        assert not missing, f"{page} does not describe {missing}"
