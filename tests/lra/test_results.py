"""`python -m lra.results`: tables, CSVs and plots built from synthetic run records."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lra.atomic import write_json_atomic
from lra.plots import EfficiencyInputError
from lra.records import record_name
from lra.results import ResultsError, write_results

REPO = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EFFICIENCY_CSV = "backend,length,steps_per_second,peak_memory_mb\nsoftmax,4096,2.0,9000\nluna,4096,8.0,1000\nlinear,4096,,\n"


def write_record(
    results_dir: Path,
    budget: str,
    task: str,
    attention: str,
    seed: int,
    test_acc: float,
    params: int = 1000,
    flops: int = 10**9,
) -> Path:
    path = results_dir / "runs" / record_name(budget, task, attention, seed)
    write_json_atomic(
        path,
        {
            "task": task,
            "attention": attention,
            "budget": budget,
            "seed": seed,
            "params": params,
            "flops": flops,
            "steps": 10,
            "val_acc": 0.5,
            "test_acc": test_acc,
            "test_acc_last": test_acc,
            "train_seconds": 1.0,
            "peak_memory_mb": 100.0,
            "config": {},
            "git_commit": "abc123",
            "torch": "2.0",
            "device": "cpu (test)",
        },
    )
    return path


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    """A paper budget: softmax on three seeds, linear on one, luna missing image, plus an unknown backend."""
    root = tmp_path / "results"
    for seed, accuracy in enumerate((0.30, 0.40, 0.50)):
        write_record(root, "paper", "listops", "softmax", seed, accuracy, params=1000, flops=4 * 10**9)
    write_record(root, "paper", "image", "softmax", 0, 0.60, params=2000, flops=8 * 10**9)
    write_record(root, "paper", "listops", "linear", 0, 0.35, params=1000, flops=10**9)
    write_record(root, "paper", "image", "linear", 0, 0.45, params=2000, flops=2 * 10**9)
    write_record(root, "paper", "listops", "luna", 0, 0.20, params=1500, flops=2 * 10**9)
    write_record(root, "paper", "listops", "bigbird", 0, 0.25)
    write_record(root, "paper", "listops", "alpha", 0, 0.25)
    write_record(root, "cpu", "pathfinder", "luna", 0, 0.75)
    return root


def table_lines(markdown: str) -> list[list[str]]:
    """Cells of the first markdown table (the measured one), header included, separator dropped."""
    block = markdown.split("## Measured here")[1].split("\n\n")[2]
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in block.splitlines()
        if "---" not in line
    ]


def test_measured_table_cells_order_and_averages(results_dir):
    write_results(results_dir)
    rows = table_lines((results_dir / "paper" / "lra_table.md").read_text())
    assert rows[0] == ["backend", "ListOps", "Image", "Average"]  # LRA order, only tasks present
    assert [row[0] for row in rows[1:]] == ["softmax", "linear", "luna", "alpha", "bigbird"]
    assert rows[1] == ["softmax", "40.00 ± 10.00 (3)", "60.00 (1)", "50.00"]
    assert rows[2] == ["linear", "35.00 (1)", "45.00 (1)", "40.00"]
    assert rows[3] == ["luna", "20.00 (1)", "-", "20.00*"]


def test_partial_average_footnote_only_when_needed(results_dir, tmp_path):
    write_results(results_dir)
    assert (
        "\\* Average over the tasks that row has only" in (results_dir / "paper" / "lra_table.md").read_text()
    )
    assert "\\* Average" not in (results_dir / "cpu" / "lra_table.md").read_text()


def test_sizes_relative_to_softmax(results_dir):
    write_results(results_dir)
    markdown = (results_dir / "paper" / "lra_table.md").read_text()
    assert "| luna | 1.50K (1.50×) | - |" in markdown
    assert "| linear | 1.00G (0.25×) | 2.00G (0.25×) |" in markdown


def test_quoted_tables_are_separate_and_match_the_budget(results_dir):
    write_results(results_dir)
    paper = (results_dir / "paper" / "lra_table.md").read_text()
    measured, quoted = paper.split("## Published numbers")
    assert "Quoted from the LUNA paper" in quoted and "not measured here" in quoted
    assert "| LUNA | 38.94 | 73.41 | 81.02 | 64.32 | 69.52 | 65.44 |" in quoted  # put in LRA column order
    assert "Transformer" not in measured
    assert "LRA paper (arXiv 2011.04006)" not in paper
    cpu = (results_dir / "cpu" / "lra_table.md").read_text()
    assert "NOT comparable" in cpu and "Quoted from" not in cpu

    write_record(results_dir, "lra", "text", "softmax", 0, 0.6)
    write_results(results_dir)
    lra = (results_dir / "lra" / "lra_table.md").read_text()
    assert "Quoted from the LRA paper" in lra and "| BigBird | 36.05 |" in lra and "LUNA paper" not in lra


def test_provenance_and_command(results_dir):
    write_results(results_dir)
    markdown = (results_dir / "paper" / "lra_table.md").read_text()
    assert "Built from 9 run records" in markdown and "(seeds 0, 1, 2)" in markdown
    assert "`abc123`" in markdown and "cpu (test)" in markdown
    assert f"python -m lra.results results_dir={results_dir}" in markdown


def test_csv_holds_the_same_numbers(results_dir):
    write_results(results_dir)
    rows = list(csv.DictReader(io.StringIO((results_dir / "paper" / "lra_table.csv").read_text())))
    assert [(row["attention"], row["task"]) for row in rows] == [
        ("softmax", "listops"),
        ("softmax", "image"),
        ("linear", "listops"),
        ("linear", "image"),
        ("luna", "listops"),
        ("alpha", "listops"),
        ("bigbird", "listops"),
    ]
    softmax = rows[0]
    assert (softmax["test_acc_mean_pct"], softmax["test_acc_std_pct"], softmax["n"], softmax["seeds"]) == (
        "40.0000",
        "10.0000",
        "3",
        "0 1 2",
    )
    luna = rows[4]
    assert (luna["test_acc_std_pct"], luna["params"], luna["flops"]) == ("", "1500", "2000000000")
    assert (luna["params_vs_softmax"], luna["flops_vs_softmax"]) == ("1.5000", "0.5000")
    cpu_rows = list(csv.DictReader(io.StringIO((results_dir / "cpu" / "lra_table.csv").read_text())))
    assert cpu_rows[0]["params_vs_softmax"] == ""  # no softmax in that budget


def test_accuracy_plots_written_efficiency_plot_only_with_its_csv(results_dir):
    written = write_results(results_dir)
    for budget in ("paper", "cpu"):
        png = results_dir / budget / "lra_accuracy.png"
        assert png in written and png.read_bytes().startswith(PNG_SIGNATURE)
    assert not (results_dir / "efficiency.png").exists()

    (results_dir / "efficiency.csv").write_text(EFFICIENCY_CSV)
    written = write_results(results_dir)
    assert results_dir / "efficiency.png" in written
    assert (results_dir / "efficiency.png").read_bytes().startswith(PNG_SIGNATURE)
    with pytest.raises(EfficiencyInputError, match="efficiency_budget=lra"):
        write_results(results_dir, efficiency_budget="lra")


def test_bad_efficiency_csv_names_the_line(results_dir):
    (results_dir / "efficiency.csv").write_text(
        "backend,length,steps_per_second,peak_memory_mb\nluna,4096,fast,1\n"
    )
    with pytest.raises(EfficiencyInputError, match=r"efficiency\.csv line 2: steps_per_second"):
        write_results(results_dir)
    (results_dir / "efficiency.csv").write_text("backend,length\nluna,4096\n")
    with pytest.raises(EfficiencyInputError, match="missing columns: steps_per_second, peak_memory_mb"):
        write_results(results_dir)


def test_running_twice_gives_identical_tables(results_dir):
    write_results(results_dir)
    first = {p: p.read_bytes() for p in results_dir.rglob("lra_table.*")}
    write_results(results_dir)
    assert first == {p: p.read_bytes() for p in results_dir.rglob("lra_table.*")}


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"task": "listops", "attention"', "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (
            '{"task": "listops", "attention": "luna", "budget": "paper", "seed": 0}',
            "missing keys: params, flops, test_acc, git_commit, device",
        ),
    ],
    ids=["truncated", "not-an-object", "missing-keys"],
)
def test_bad_record_names_the_file_and_nothing_is_written(results_dir, content, message):
    bad = results_dir / "runs" / "paper-text-luna-seed0.json"
    bad.write_text(content)
    with pytest.raises(ResultsError, match=message) as error:
        write_results(results_dir)
    assert str(bad) in str(error.value)
    assert not (results_dir / "paper").exists()


def test_wrong_types_and_values_are_named(results_dir):
    path = write_record(results_dir, "paper", "text", "luna", 0, 0.5)
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "seed": "0"}))
    with pytest.raises(ResultsError, match="seed must be an integer, got '0'"):
        write_results(results_dir)
    path.write_text(json.dumps({**record, "test_acc": 73.4}))
    with pytest.raises(ResultsError, match=r"test_acc must be a fraction in \[0, 1\], got 73.4"):
        write_results(results_dir)


def test_different_model_sizes_across_seeds_are_refused(results_dir):
    write_record(results_dir, "paper", "listops", "luna", 1, 0.3, params=9999)
    with pytest.raises(ResultsError, match="luna on listops has different params/flops across seeds"):
        write_results(results_dir)


def test_no_records_says_where_it_looked_and_how_to_make_them(tmp_path):
    with pytest.raises(ResultsError, match="python -m lra.train") as error:
        write_results(tmp_path)
    assert str(tmp_path / "runs") in str(error.value)


def _hydra_leftovers(since: float) -> list[Path]:
    """Output folders or logs Hydra would write under the repository root, made after `since`."""
    candidates = [
        REPO / ".hydra",
        REPO / "results.log",
        *(REPO / "outputs").rglob("results.log"),
        *(REPO / "outputs").rglob(".hydra"),
    ]
    return [path for path in candidates if path.exists() and path.stat().st_mtime >= since]


def test_cli_writes_tables_and_leaves_no_hydra_output(results_dir):
    before = {path.name for path in REPO.iterdir()}
    started = time.time() - 1
    done = subprocess.run(
        [sys.executable, "-m", "lra.results", f"results_dir={results_dir}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "| softmax | 40.00 ± 10.00 (3) |" in done.stdout
    assert str(results_dir / "paper" / "lra_table.md") in done.stdout
    assert {path.name for path in REPO.iterdir()} == before
    assert _hydra_leftovers(started) == []


def test_cli_bad_input_exits_2_with_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "lra.results", f"results_dir={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: no run records in") and len(done.stderr.strip().splitlines()) == 1
