"""`deap-mln export` and `deap-mln plot` on a real (tiny) run directory."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from torch import nn

from deap_mln import saved_losses
from deap_mln.cli import main
from deap_mln.deploy.compiled import FORMAT as TABLE_FORMAT
from deap_mln.deploy.compiled import CompiledMLNLoss
from deap_mln.deploy.export import export_run
from deap_mln.mln.network import LOSS_FILE_FORMAT, MLNLoss, load_loss
from deap_mln.mln.run import evolve
from deap_mln.saved_losses import load_saved_loss, write_record
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    evolve(tiny_config(generations=1, seed=5), out, progress=None)
    return out


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(0)
    return 3 * torch.randn(64, 4, generator=gen), torch.randint(0, 4, (64,), generator=gen)


def test_export_weights_round_trip_with_metadata(run_dir, tmp_path, batch):
    path, _ = export_run(run_dir, "weights", tmp_path / "w.pt")
    loss = load_saved_loss(path)
    assert isinstance(loss, MLNLoss)
    assert torch.equal(loss(*batch), load_loss(run_dir / "best_loss.pt")(*batch))
    meta = torch.load(path, weights_only=True)["metadata"]
    assert meta["architecture"]["layers"] == [4, 8, 8, 1] and meta["architecture"]["parameters"] == 123
    assert meta["method"] == "adaptive-mln/hybrid" and meta["seed"] == 5 and meta["version"]
    assert isinstance(meta["fitness"], float) and meta["config"]["hidden"] == [8, 8]


def test_export_table_round_trip_via_cli(run_dir, tmp_path, batch, capsys):
    path = tmp_path / "t.pt"
    assert main(["export", str(run_dir), "--format", "table", "--resolution", "129", "--probes", "5000",
                 "--out", str(path)]) == 0
    assert "max value error" in capsys.readouterr().out
    table = load_saved_loss(path)
    assert isinstance(table, CompiledMLNLoss) and table.resolution == 129
    meta = table.metadata
    assert meta["compile"]["resolution"] == 129 and meta["seed"] == 5 and "fitness" in meta
    assert meta["compile_error"]["relative_value_error"] < 1e-3
    exact = load_loss(run_dir / "best_loss.pt")(*batch)
    assert abs(table(*batch).item() - exact.item()) < 1e-3 * abs(exact.item())


def test_default_output_names(tmp_path, run_dir):
    run = tmp_path / "copy"
    shutil.copytree(run_dir, run)
    assert main(["export", str(run), "--format", "weights"]) == 0
    assert main(["export", str(run), "--format", "table", "--resolution", "9", "--probes", "0"]) == 0
    assert torch.load(run / "exported_weights.pt", weights_only=True)["format"] == LOSS_FILE_FORMAT
    assert torch.load(run / "exported_table.pt", weights_only=True)["format"] == TABLE_FORMAT


def test_mismatched_or_corrupt_runs_exit_2(run_dir, tmp_path, capsys):
    run = tmp_path / "bad"
    shutil.copytree(run_dir, run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "hidden": [8, 16]}))
    assert main(["export", str(run), "--format", "weights", "--out", str(tmp_path / "x.pt")]) == 2
    assert "config.json says [8, 16]" in capsys.readouterr().err
    (run / "config.json").write_text(json.dumps(config))
    record = torch.load(run / "best_loss.pt", weights_only=True)
    write_record(run / "best_loss.pt", {**record, "genome": record["genome"].double()})
    assert main(["export", str(run), "--format", "table", "--out", str(tmp_path / "x.pt")]) == 2
    assert "genome must be a 1-D float32 tensor" in capsys.readouterr().err
    (run / "best_loss.pt").write_bytes(b"\x00garbage")
    assert main(["plot", str(run)]) == 2
    err = capsys.readouterr().err
    assert "not a readable deap_mln loss file" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.pt").exists()


def test_damaged_table_file_exits_2_in_plot(run_dir, tmp_path, capsys):
    path, record = export_run(run_dir, "table", tmp_path / "t.pt", resolution=9, probes=0)
    write_record(path, {**record, "resolution": 17})
    assert main(["plot", str(path), "--out", str(tmp_path)]) == 2
    assert "stated resolution 17" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["export", "{run}", "--format", "onnx"],
    ["export", "{run}"],
    ["export", "{run}", "--format", "table", "--resolution", "1"],
    ["export", "{run}", "--format", "table", "--resolution", "x"],
    ["export", "{missing}", "--format", "weights"],
    ["plot", "{missing}"],
    ["plot", "{run}", "--points", "2"],
])
def test_bad_cli_input_exits_2(run_dir, tmp_path, capsys, argv):
    argv = [a.format(run=run_dir, missing=tmp_path / "nope") for a in argv]
    assert main(argv) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.slow
def test_plot_writes_the_figures(run_dir, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["plot", str(run_dir), "--out", str(out), "--points", "41"]) == 0
    names = {"landscape.png", "landscape_slices.png", "landscape_gradient.png"}
    assert {p.name for p in out.iterdir()} == names
    assert all((out / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names)
    path, _ = export_run(run_dir, "table", tmp_path / "t.pt", resolution=9, probes=0)
    assert main(["plot", str(path), "--points", "21"]) == 0
    assert (tmp_path / "t_landscape_gradient.png").stat().st_size > 0


class _Formula(nn.Module):
    """Stand-in for a symbolic loss: -log p_true, honouring reduction."""

    def __init__(self, reduction: str):
        super().__init__()
        self.reduction = reduction

    def forward(self, logits, target):
        return nn.functional.cross_entropy(logits, target, reduction=self.reduction)


def formula_from_record(record, reduction="mean"):
    return _Formula(reduction)


def test_plot_of_a_formula_loss(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(saved_losses.FORMATS, "test.formula/1", f"{__name__}:formula_from_record")
    run = tmp_path / "gp_run"
    run.mkdir()
    write_record(run / "best_loss.pt", {"format": "test.formula/1", "expression": "neg(log(p))",
                                        "metadata": {"method": "gp", "seed": 1}})
    assert main(["plot", str(run)]) == 0
    assert "expression: neg(log(p))" in capsys.readouterr().out
    assert (run / "loss_formula.png").stat().st_size > 0
    assert main(["export", str(run), "--format", "table"]) == 2  # needs config.json, and only MLNs compile
    (run / "config.json").write_text("{}")
    assert main(["export", str(run), "--format", "table"]) == 2
    assert "cannot be compiled" in capsys.readouterr().err
    assert main(["export", str(run), "--format", "weights"]) == 0
    loss = load_saved_loss(run / "exported_weights.pt", reduction="none")
    assert loss(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long)).shape == (3,)
