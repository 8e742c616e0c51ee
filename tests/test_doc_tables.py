"""The docs' tables of numbers are generated from the committed results (benchmarks/doc_tables.py),
and the demo's results are written in the form the README's numbers are generated from
(benchmarks/demo.py)."""
from __future__ import annotations

import csv
import importlib
import json
import shutil
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # benchmarks import each other as scripts do
doc_tables = importlib.import_module("doc_tables")
demo = importlib.import_module("demo")


def test_every_doc_matches_its_committed_results():
    assert doc_tables.check_docs(doc_tables.doc_paths()) == []


def test_every_generated_table_is_used_by_a_doc():
    used = {m["id"] for p in doc_tables.doc_paths() for m in doc_tables.BLOCK.finditer(p.read_text())}
    assert set(doc_tables.TABLES) == used


def test_check_names_the_doc_and_table_of_a_doctored_number(tmp_path):
    doc = tmp_path / "league.md"
    text = (doc_tables.REPO_ROOT / "docs" / "league.md").read_text()
    assert "| taylorglo | evolved | 0.9913 (0.0051) |" in text
    doc.write_text(text.replace("| taylorglo | evolved | 0.9913 (0.0051) |", "| taylorglo | evolved | 0.9931 (0.0051) |"))
    problems = doc_tables.check_docs([doc])
    assert len(problems) == 1
    assert str(doc) in problems[0] and "league/digits" in problems[0] and "league.json" in problems[0]
    doc_tables.write_docs([doc])  # the generator repairs it
    assert doc_tables.check_docs([doc]) == []
    assert doc.read_text() == text


def test_check_refuses_unknown_ids_and_tables_of_numbers_nobody_vouches_for(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- table: no/such -->\n<!-- end table -->\n")
    assert "unknown table id 'no/such'" in doc_tables.check_docs([doc])[0]
    table = "| loss | accuracy |\n|---|---:|\n| ce | 0.97 |\n"
    doc.write_text(f"Text.\n\n{table}")
    problems = doc_tables.check_docs([doc])
    assert len(problems) == 1 and problems[0].startswith(f"{doc}:3: a table of numbers that is not generated")
    for marker in ("<!-- historical: 8db17bd outputs not kept -->", "<!-- not results: defaults -->"):
        doc.write_text(f"Text.\n\n{marker}\n{table}")
        assert doc_tables.check_docs([doc]) == []
    doc.write_text("Text.\n\n<!-- historical: no commit -->\n" + table)  # a historical table names its commit
    assert len(doc_tables.check_docs([doc])) == 1
    doc.write_text("| flag | meaning |\n|---|---|\n| `--out` | where |\n")  # no digits: not a table of numbers
    assert doc_tables.check_docs([doc]) == []
    doc.write_text(f"```\n{table}```\n")  # in a code block: an example, not a table
    assert doc_tables.check_docs([doc]) == []


def test_select_takes_columns_and_rows_without_changing_cells():
    table = doc_tables.MarkdownTable.parse_all("| a | b | c |\n|---|---:|---|\n| x | 1.50 | p |\n| y | 2 | q |\n")[0]
    view = table.select(columns=["c", "a"], rows=["y", "x"], labels={"y": "why"}, headers={"a": "A"})
    assert view.render() == "| c | A |\n|---|---|\n| q | why |\n| p | x |"
    assert table.select(where={"c": "p"}).rows == [["x", "1.50", "p"]]
    with pytest.raises(KeyError, match="no row 'z'"):
        table.select(rows=["z"])
    with pytest.raises(KeyError, match="no column 'd'"):
        table.select(columns=["d"])


def test_accuracies_rounded_in_a_csv_are_restored_to_the_meta_tests_floats():
    exact = [439 / 450, 441 / 450, 438 / 450, 440 / 450, 1.0]
    written = [float(f"{a:.6f}") for a in exact]
    assert written != exact
    assert doc_tables.exact_accuracies(written) == exact
    odd = [0.1234567, 0.7654321, 0.3141593, 0.2718282, 0.5772157]
    assert doc_tables.exact_accuracies(odd, written_digits=7, max_test_size=10_000) == odd  # no test size fits


def test_a_three_seed_comparison_says_no_test_is_possible():
    summaries = doc_tables.meta_test_summaries("reproduction/meta_test_mnist")
    evolved = next(k for k in summaries if k.endswith("best_loss.pt"))
    assert doc_tables.paired_text(summaries[evolved]) == "-0.0442, no test possible (3 seeds)"


# ------------------------------------------------------------------------------ the demo


def write_fake_demo_run(root: Path) -> list[dict]:
    """The files a demo run leaves: the meta-test's folder and an evolution's scores."""
    meta = root / "runs" / "demo-digits"
    meta.mkdir(parents=True)
    rows = [dict(loss=loss, seed=s, final_accuracy=f"{(430 + k + s % 2) / 450:.6f}", diverged=0, seconds="0.5")
            for k, loss in enumerate(["runs/demo/best_loss.pt", "ce", "ls"]) for s in range(5)]
    with (meta / "per_seed.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for name in ("summary.csv", "settings.json"):
        (meta / name).write_text("{}\n")
    (meta / "summary.md").write_text("# Meta-test\n\n| loss | runs |\n|---|---:|\n| ce | 5 |\n\nNotes.\n")
    (root / "runs" / "demo").mkdir()
    (root / "runs" / "demo" / "scores.json").write_text('{"kept": {"test": 0.9}}\n')
    return [dict(name="rm", command="rm -rf runs/demo runs/demo-digits", seconds=0.01),
            dict(name="deap-mln evolve", command=".venv/bin/deap-mln evolve --tasks digits --out runs/demo", seconds=120.4),
            dict(name="deap-mln meta-test", command=".venv/bin/deap-mln meta-test --loss runs/demo/best_loss.pt ce ls "
                                                    "--seeds 5 --out runs/demo-digits", seconds=40.2)]


def test_demo_results_are_what_the_readme_numbers_are_generated_from(tmp_path, monkeypatch):
    steps = write_fake_demo_run(tmp_path)
    results = tmp_path / "results"
    machine = dict(date="2026-01-01", cpu_model="CPU", cpu_count=2, python="3.11", git_commit="abcdef1234")
    report = demo.write_demo_results(steps, tmp_path, results / "demo", "python benchmarks/demo.py", machine)
    assert report["total_seconds"] == pytest.approx(160.61)
    assert json.loads((results / "demo" / "demo.json").read_text())["steps"] == steps
    assert (results / "demo" / "scores" / "demo.json").is_file()
    assert "| ce | 5 |" in (results / "demo" / "demo.md").read_text()
    monkeypatch.setattr(doc_tables, "RESULTS", results)
    text = doc_tables.TABLES["demo/readme"].text()
    assert text.startswith("Measured by `python benchmarks/demo.py` (2026-01-01; CPU, 2 CPUs; ")
    assert "161 s after install (deap-mln evolve 120 s; deap-mln meta-test 40 s)" in text  # steps under 1 s left out
    assert "over 5 seeds: label smoothing 0.961, CE 0.959, `runs/demo` 0.956." in text
    assert "`runs/demo` -0.0022 [-0.0022, -0.0022], p = 0.0625" in text  # every seed one way: 5 seeds' floor


def test_a_demo_not_yet_measured_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(doc_tables, "RESULTS", tmp_path)
    assert doc_tables.TABLES["demo/readme"].text() == (
        f"*{doc_tables.NOT_MEASURED}: `{tmp_path / 'demo' / 'demo.json'}` does not exist yet.*")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_demo_runs_the_makefiles_recipe_as_make_would(tmp_path):
    (tmp_path / "setup.py").write_text("")
    (tmp_path / "Makefile").write_text(
        "BIN := .venv/bin\n$(BIN)/.installed: setup.py\n\tpip install -e .\n\ttouch $@\n"
        "demo: $(BIN)/.installed\n\trm -rf runs/x\n\t$(BIN)/deap-mln meta-test --loss ce \\\n\t\t--out runs/x\n")
    assert demo.recipe(tmp_path) == ["rm -rf runs/x", ".venv/bin/deap-mln meta-test --loss ce --out runs/x"]
    assert demo.step_name(".venv/bin/deap-mln meta-test --loss ce --out runs/x") == "deap-mln meta-test"
    assert demo.option(".venv/bin/deap-mln meta-test --loss ce --out runs/x", "--out") == "runs/x"
    with pytest.raises(RuntimeError, match="make install"):
        demo.recipe(tmp_path, stamp="elsewhere")
