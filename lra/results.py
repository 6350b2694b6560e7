"""Tables and plots from run records: `python -m lra.results results_dir=results`."""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig

from lra.atomic import write_atomic
from lra.plots import (
    EfficiencyInputError,
    accuracy_chart,
    efficiency_chart,
    read_efficiency,
)
from lra.reference_results import BUDGET_NOTES, QUOTED_BY_BUDGET, QuotedTable

TASK_TITLES = {
    "listops": "ListOps",
    "text": "Text",
    "retrieval": "Retrieval",
    "image": "Image",
    "pathfinder": "Pathfinder",
    "pathx": "Path-X",
}
BACKEND_ORDER = ("softmax", "linear", "performer", "luna")
# The record keys a table needs, with the JSON types a valid record holds for them.
STRING, INTEGER, NUMBER = (str,), (int,), (int, float)
REQUIRED_KEYS: dict[str, tuple[type, ...]] = {
    "task": STRING,
    "attention": STRING,
    "budget": STRING,
    "seed": INTEGER,
    "params": INTEGER,
    "flops": INTEGER,
    "test_acc": NUMBER,
    "git_commit": STRING,
    "device": STRING,
}
TYPE_NAMES = {STRING: "a string", INTEGER: "an integer", NUMBER: "a number"}
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # budgets become folder names


class ResultsError(ValueError):
    """Records that cannot make a table; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Run:
    path: Path
    task: str
    attention: str
    budget: str
    seed: int
    params: int
    flops: int
    test_acc: float  # fraction 0-1
    git_commit: str
    device: str


@dataclass(frozen=True)
class Cell:
    """All seeds of one backend on one task of one budget."""

    seeds: tuple[int, ...]
    accuracies: tuple[float, ...]  # percent, in seed order
    params: int
    flops: int

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else None


@dataclass(frozen=True)
class BudgetTable:
    budget: str
    tasks: list[str]
    backends: list[str]
    cells: dict[tuple[str, str], Cell]  # (backend, task)
    runs: list[Run]

    def average(self, backend: str) -> tuple[float | None, bool]:
        """Mean over the tasks this row has, and whether it misses some of the table's tasks."""
        means = [self.cells[backend, task].mean for task in self.tasks if (backend, task) in self.cells]
        return (statistics.fmean(means) if means else None), len(means) < len(self.tasks)


def read_run(path: Path) -> Run:
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise ResultsError(f"{path}: cannot be read ({error})") from None
    except json.JSONDecodeError as error:
        raise ResultsError(
            f"{path}: not valid JSON ({error}); truncated? rerun that run or delete the file"
        ) from None
    if not isinstance(record, dict):
        raise ResultsError(f"{path}: expected a JSON object, found {type(record).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise ResultsError(f"{path}: missing keys: {', '.join(missing)}")
    for key, kind in REQUIRED_KEYS.items():
        if not isinstance(record[key], kind) or isinstance(record[key], bool):
            raise ResultsError(f"{path}: {key} must be {TYPE_NAMES[kind]}, got {record[key]!r}")
    if not 0 <= record["test_acc"] <= 1:
        raise ResultsError(f"{path}: test_acc must be a fraction in [0, 1], got {record['test_acc']!r}")
    if not SAFE_NAME.fullmatch(record["budget"]) or record["budget"] == "runs":
        raise ResultsError(f"{path}: budget {record['budget']!r} cannot name a folder")
    return Run(path=path, **{key: record[key] for key in REQUIRED_KEYS})


def read_runs(runs_dir: Path) -> list[Run]:
    """Every record under runs_dir; all bad files are reported together, one line each."""
    paths = sorted(runs_dir.glob("*.json"))
    if not paths:
        raise ResultsError(
            f"no run records in {runs_dir}: each finished `python -m lra.train task=... attention=... "
            f"budget=... results_dir={runs_dir.parent}` writes one there"
        )
    runs, problems = [], []
    for path in paths:
        try:
            runs.append(read_run(path))
        except ResultsError as error:
            problems.append(str(error))
    seen: dict[tuple[str, str, str, int], Path] = {}
    for run in runs:
        key = (run.budget, run.task, run.attention, run.seed)
        if key in seen:
            problems.append(f"{run.path}: same budget, task, attention and seed as {seen[key]}; keep one")
        seen[key] = run.path
    if problems:
        raise ResultsError("\n".join(problems))
    return runs


def ordered(names: set[str], preferred: tuple[str, ...]) -> list[str]:
    """The preferred names first in their order, then the others alphabetically."""
    return [name for name in preferred if name in names] + sorted(names - set(preferred))


def budget_table(budget: str, runs: list[Run]) -> BudgetTable:
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in sorted(runs, key=lambda run: run.seed):
        groups.setdefault((run.attention, run.task), []).append(run)
    cells = {}
    for (backend, task), group in groups.items():
        sizes = {(run.params, run.flops) for run in group}
        if len(sizes) > 1:
            files = ", ".join(run.path.name for run in group)
            raise ResultsError(
                f"{files}: {backend} on {task} has different params/flops across seeds; not one model"
            )
        params, flops = sizes.pop()
        cells[backend, task] = Cell(
            tuple(r.seed for r in group), tuple(100 * r.test_acc for r in group), params, flops
        )
    return BudgetTable(
        budget=budget,
        tasks=ordered({run.task for run in runs}, tuple(TASK_TITLES)),
        backends=ordered({run.attention for run in runs}, BACKEND_ORDER),
        cells=cells,
        runs=runs,
    )


def format_accuracy(cell: Cell) -> str:
    spread = f" ± {cell.std:.2f}" if cell.std is not None else ""
    return f"{cell.mean:.2f}{spread} ({len(cell.accuracies)})"


def format_count(value: float) -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= scale:
            return f"{value / scale:.2f}{suffix}"
    return f"{value:.0f}"


def ratio_to_softmax(table: BudgetTable, backend: str, task: str, field: str) -> float | None:
    reference = table.cells.get(("softmax", task))
    cell = table.cells.get((backend, task))
    if reference is None or cell is None or getattr(reference, field) == 0:
        return None
    return getattr(cell, field) / getattr(reference, field)


def markdown_rows(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def size_section(table: BudgetTable, field: str, title: str) -> list[str]:
    rows = []
    for backend in table.backends:
        row = [backend]
        for task in table.tasks:
            cell = table.cells.get((backend, task))
            ratio = ratio_to_softmax(table, backend, task, field)
            row.append(
                "-"
                if cell is None
                else format_count(getattr(cell, field)) + (f" ({ratio:.2f}×)" if ratio is not None else "")
            )
        rows.append(row)
    relative = (
        " (× softmax in brackets)" if any(("softmax", task) in table.cells for task in table.tasks) else ""
    )
    return [
        f"### {title}{relative}",
        "",
        *markdown_rows(["backend", *(TASK_TITLES.get(t, t) for t in table.tasks)], rows),
    ]


def quoted_section(quoted: QuotedTable) -> list[str]:
    tasks = [task for task in TASK_TITLES if any(task in row for row in quoted.rows.values())]
    rows = [
        [
            model,
            *(f"{values[task]:.2f}" if task in values else "-" for task in tasks),
            f"{quoted.averages[model]:.2f}",
        ]
        for model, values in quoted.rows.items()
    ]
    return [
        f"### Quoted from the {quoted.source}: not measured here",
        "",
        f"Published test accuracy (%), columns put in LRA order. {quoted.note}",
        "",
        *markdown_rows(["model", *(TASK_TITLES[t] for t in tasks), "Average (as published)"], rows),
        "",
    ]


def provenance(table: BudgetTable, results_dir: Path) -> list[str]:
    seeds = sorted({run.seed for run in table.runs})
    commits = sorted({run.git_commit for run in table.runs})
    devices = sorted({run.device for run in table.runs})
    return [
        "### Records",
        "",
        f"- Built from {len(table.runs)} run records in `{results_dir / 'runs'}` (seeds {', '.join(map(str, seeds))}).",
        f"- Git commits: {', '.join(f'`{commit}`' for commit in commits)}.",
        f"- Devices: {'; '.join(devices)}.",
        f"- Regenerate with `python -m lra.results results_dir={results_dir}`; do not edit by hand.",
    ]


def markdown_table(table: BudgetTable, results_dir: Path) -> str:
    rows, partial = [], False
    for backend in table.backends:
        average, missing = table.average(backend)
        partial |= missing
        cells = [
            format_accuracy(table.cells[backend, t]) if (backend, t) in table.cells else "-"
            for t in table.tasks
        ]
        rows.append([backend, *cells, f"{average:.2f}" + ("*" if missing else "")])
    lines = [
        f"# LRA results, budget `{table.budget}`",
        "",
        BUDGET_NOTES.get(table.budget, f"Budget `{table.budget}`: no published numbers are quoted for it."),
        "",
        "## Measured here",
        "",
        "Test accuracy (%) at the best validation checkpoint: mean ± sample std over seeds (number of seeds).",
        "",
        *markdown_rows(["backend", *(TASK_TITLES.get(t, t) for t in table.tasks), "Average"], rows),
        "",
    ]
    if partial:
        lines += ["\\* Average over the tasks that row has only; not comparable with full rows.", ""]
    lines += size_section(table, "params", "Parameters") + [""]
    lines += size_section(table, "flops", "FLOPs per training step") + [""]
    quoted = QUOTED_BY_BUDGET.get(table.budget, ())
    if quoted:
        lines += ["## Published numbers", ""]
    for reference in quoted:
        lines += quoted_section(reference)
    return "\n".join(lines + provenance(table, results_dir)) + "\n"


def csv_table(table: BudgetTable) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "budget",
            "attention",
            "task",
            "test_acc_mean_pct",
            "test_acc_std_pct",
            "n",
            "seeds",
            "params",
            "flops",
            "params_vs_softmax",
            "flops_vs_softmax",
        ]
    )
    for backend in table.backends:
        for task in table.tasks:
            cell = table.cells.get((backend, task))
            if cell is None:
                continue
            ratios = [ratio_to_softmax(table, backend, task, field) for field in ("params", "flops")]
            writer.writerow(
                [
                    table.budget,
                    backend,
                    task,
                    f"{cell.mean:.4f}",
                    "" if cell.std is None else f"{cell.std:.4f}",
                    len(cell.seeds),
                    " ".join(map(str, cell.seeds)),
                    cell.params,
                    cell.flops,
                    *("" if r is None else f"{r:.4f}" for r in ratios),
                ]
            )
    return buffer.getvalue()


def write_results(
    results_dir: Path, efficiency_budget: str | None = None, efficiency_length: int | None = None
) -> list[Path]:
    """Tables, CSVs and plots for every budget; everything is built before the first file is written."""
    runs = read_runs(results_dir / "runs")
    tables = {
        budget: budget_table(budget, [run for run in runs if run.budget == budget])
        for budget in sorted({run.budget for run in runs})
    }
    outputs: dict[Path, bytes] = {}
    for budget, table in tables.items():
        folder = results_dir / budget
        outputs[folder / "lra_table.md"] = markdown_table(table, results_dir).encode()
        outputs[folder / "lra_table.csv"] = csv_table(table).encode()
        outputs[folder / "lra_accuracy.png"] = accuracy_chart(
            budget,
            table.tasks,
            table.backends,
            {key: (cell.mean, cell.std or 0.0) for key, cell in table.cells.items()},
            [TASK_TITLES.get(task, task) for task in table.tasks],
        )
    if (results_dir / "efficiency.csv").is_file():  # written by the efficiency benchmark, when it has run
        averages = {
            name: {backend: table.average(backend) for backend in table.backends}
            for name, table in tables.items()
        }
        points = read_efficiency(results_dir / "efficiency.csv")
        chart = efficiency_chart(points, averages, efficiency_budget, efficiency_length)
        if chart is not None:
            outputs[results_dir / "efficiency.png"] = chart
    for path, data in outputs.items():
        write_atomic(path, data)
    return list(outputs)


@hydra.main(version_base="1.3", config_path="../configs", config_name="results")
def main(cfg: DictConfig) -> None:
    try:
        paths = write_results(Path(cfg.results_dir), cfg.efficiency_budget, cfg.efficiency_length)
    except (ResultsError, EfficiencyInputError) as error:
        # The message names the file and the problem; a traceback would only bury it.
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    for path in paths:
        if path.suffix == ".md":
            print(path.read_text())
    print("written:\n" + "\n".join(f"  {path}" for path in paths))


if __name__ == "__main__":
    main()
