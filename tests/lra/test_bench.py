"""`python -m lra.bench`: the quick run's files, ratios, skipped points and the results reader."""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import pytest

from lra.bench import (
    expected_seconds,
    main,
    parse_args,
    plan,
    settings_from,
    skip_reason,
)
from lra.bench_measure import (
    ATTENTION,
    MODEL,
    REFERENCE_PERFORMER,
    Measurement,
    Point,
    measure_in_fresh_process,
)
from lra.bench_report import CSV_COLUMNS, ratio
from lra.plots import read_efficiency
from lra.results import write_results
from tests.lra.test_results import PNG_SIGNATURE, write_record

BACKENDS = ("softmax", "linear", "performer", "luna")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One quick benchmark for the whole module; a 24 MiB memory cap skips attention alone at N=512."""
    results = tmp_path_factory.mktemp("bench") / "results"
    # The estimate is 16 fp32 (B, H, N, D) tensors: 16 MiB at N=256, 32 MiB at 512 (B=4, H=4, D=64).
    main(["--quick", "--results-dir", str(results), "--memory-cap-gb", str(24 / 1024), "--seed", "0"])
    return results


def rows(results: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((results / "efficiency.csv").read_text())))


def test_quick_run_writes_csv_markdown_and_png(quick_run):
    for name in ("efficiency.csv", "efficiency.md", "efficiency_attention.png"):
        assert (quick_run / name).is_file()
    assert (quick_run / "efficiency_attention.png").read_bytes().startswith(PNG_SIGNATURE)
    assert (
        tuple(csv.DictReader(io.StringIO((quick_run / "efficiency.csv").read_text())).fieldnames)
        == CSV_COLUMNS
    )
    markdown = (quick_run / "efficiency.md").read_text()
    assert "python -m lra.bench --quick" in markdown and "torch" in markdown
    assert "cores" in markdown or "CUDA" in markdown  # the hardware is named


def test_every_backend_has_attention_causal_and_model_rows(quick_run):
    table = rows(quick_run)
    for backend in BACKENDS:
        assert {
            int(r["length"])
            for r in table
            if r["kind"] == ATTENTION and r["backend"] == backend and r["causal"] == "false"
        } == {256, 512}
        assert any(
            r["kind"] == ATTENTION and r["backend"] == backend and r["causal"] == "true" for r in table
        )
        assert any(r["kind"] == MODEL and r["backend"] == backend for r in table)


def test_measured_rows_have_positive_numbers_and_skipped_rows_a_reason(quick_run):
    table = rows(quick_run)
    skipped = [r for r in table if r["skipped"]]
    assert {(r["kind"], r["length"]) for r in skipped} == {(ATTENTION, "512")}
    assert {r["backend"] for r in skipped} >= set(BACKENDS)
    for r in skipped:
        assert "over --memory-cap-gb" in r["skipped"] and r["ms_per_step"] == r["peak_memory_mb"] == ""
    for r in table:
        if not r["skipped"]:
            assert float(r["ms_per_step"]) > 0 and float(r["peak_memory_mb"]) > 0
            assert float(r["steps_per_second"]) == pytest.approx(1000 / float(r["ms_per_step"]), rel=1e-3)


def test_softmax_ratio_to_itself_is_one(quick_run):
    markdown = (quick_run / "efficiency.md").read_text()
    assert "| 256 | softmax |" in markdown
    softmax_row = next(line for line in markdown.splitlines() if line.startswith("| 256 | softmax |"))
    cells = [cell.strip() for cell in softmax_row.strip("|").split("|")]
    assert cells[3] == "1.00×" and cells[6] == "1.00×"  # time and memory × softmax
    assert "| 512 | softmax | skipped: expected" in markdown
    assert ratio(3.0, 3.0) == 1.0 and ratio(3.0, None) is None and ratio(3.0, 0.0) is None


def test_reference_performer_is_compared_or_said_missing(quick_run):
    markdown = (quick_run / "efficiency.md").read_text()
    compared = any(r["backend"] == REFERENCE_PERFORMER for r in rows(quick_run))
    if compared:
        assert "PerformerAttention / FastAttention" in markdown
    else:
        assert "performer-pytorch is not installed" in markdown


def test_results_reads_the_benchmark_csv(quick_run, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(quick_run, results)
    points = read_efficiency(results / "efficiency.csv")
    assert {p.backend for p in points} == set(BACKENDS)  # model rows only; one per backend and length
    for backend in BACKENDS:
        write_record(results, "paper", "text", backend, 0, 0.6)
    written = write_results(results)
    assert results / "efficiency.png" in written


def test_estimates_skip_quadratic_softmax_before_linear_backends():
    args = parse_args(["--quick", "--max-point-seconds", "1"])
    done = [Measurement(Point(ATTENTION, name, 256, False, 4), 100.0, 10.0) for name in ("softmax", "linear")]
    softmax, linear = (Point(ATTENTION, name, 1024, False, 4) for name in ("softmax", "linear"))
    # Two steps (warm-up and one timed); softmax grows 16x from 256 to 1024, linear 4x.
    assert expected_seconds(softmax, done, steps=2) == pytest.approx(3.2)
    assert expected_seconds(linear, done, steps=2) == pytest.approx(0.8)
    assert expected_seconds(Point(ATTENTION, "luna", 1024, False, 4), done, steps=2) is None
    settings = settings_from(args)
    assert "over --max-point-seconds 1" in skip_reason(softmax, settings, done, args)
    assert skip_reason(linear, settings, done, args) == ""


def test_plan_interleaves_backends_and_adds_causal_and_model_points():
    args = parse_args(["--quick"])
    points = plan(args, reference_performer=False)
    assert [p.backend for p in points[:4]] == list(BACKENDS) and {p.length for p in points[:4]} == {256}
    assert {(p.kind, p.causal) for p in points} == {(ATTENTION, False), (ATTENTION, True), (MODEL, False)}
    assert REFERENCE_PERFORMER in {p.backend for p in plan(args, reference_performer=True)}


def test_fresh_process_measures_positive_memory():
    settings = settings_from(parse_args(["--quick"]))
    result = measure_in_fresh_process(Point(ATTENTION, "linear", 256, False, 2), settings)
    assert result.skipped == "" and result.ms_per_step > 0 and result.peak_memory_mb > 0


def test_measuring_environment_is_set_for_the_child_and_restored(monkeypatch):
    from lra.bench_measure import CPU_ALLOCATOR_ENV, _environment

    name, *others = CPU_ALLOCATOR_ENV
    monkeypatch.setenv(name, "123")
    for other in others:
        monkeypatch.delenv(other, raising=False)
    with _environment(CPU_ALLOCATOR_ENV):
        assert all(os.environ[key] == value for key, value in CPU_ALLOCATOR_ENV.items())
    assert os.environ[name] == "123"
    assert all(other not in os.environ for other in others)
