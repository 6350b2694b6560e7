"""The reproduction targets' plumbing, end to end with a tiny budget: generate, train, tabulate."""

from __future__ import annotations

import json
import subprocess

from tests.lra.conftest import CONFIG_DIR, TINY

REPO = CONFIG_DIR.parent
# Backend options cannot be overridden across a sweep of backends, so only the model shrinks.
TINY_ARGS = " ".join(TINY)


def make(*arguments: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["make", "--no-print-directory", *arguments], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_lra_mini_generates_trains_every_backend_and_writes_the_table(tmp_path):
    results = tmp_path / "results"
    make(
        "lra-mini",
        f"MINI_DATA={tmp_path / 'mini'}",
        f"RESULTS={results}",
        "MINI_EXPRESSIONS=40",
        "MINI_IMAGES=40",
        f"TRAIN_ARGS={TINY_ARGS} outputs_dir={tmp_path / 'outputs'}",
    )
    records = sorted(path.name for path in (results / "runs").glob("*.json"))
    assert records == sorted(
        f"cpu-{task}-{attention}-seed0.json"
        for task in ("listops", "pathfinder")
        for attention in ("softmax", "linear", "performer", "luna")
    )
    pathfinder = json.loads((results / "runs" / "cpu-pathfinder-luna-seed0.json").read_text())
    assert pathfinder["config"]["task"]["datamodule"]["contour_length"] == 6
    table = (results / "cpu" / "lra_table.md").read_text()
    for backend in ("softmax", "linear", "performer", "luna"):
        assert backend in table
    assert (results / "cpu" / "lra_table.csv").is_file() and (results / "cpu" / "lra_accuracy.png").is_file()
    # Generated data is kept: a second call only trains and tabulates again.
    assert (tmp_path / "mini" / ".listops-generated").is_file()


def test_lra_all_skips_finished_runs(tmp_path, data_dir):
    arguments = [
        "lra-all",
        f"DATA={data_dir}",
        f"RESULTS={tmp_path / 'results'}",
        "TRAINER=cpu",
        "LRA_TASKS=listops",
        "BACKENDS=linear,softmax",
        "SEEDS=0",
        f"TRAIN_ARGS={TINY_ARGS} outputs_dir={tmp_path / 'outputs'}",
    ]
    make(*arguments)
    first = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "results" / "runs").glob("*.json")}
    assert set(first) == {"paper-listops-linear-seed0.json", "paper-listops-softmax-seed0.json"}
    second = make(*arguments)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "results" / "runs").glob("*.json")} == first
    assert "already holds this run's record" in second.stdout + second.stderr
    assert (tmp_path / "results" / "paper" / "lra_table.md").is_file()
