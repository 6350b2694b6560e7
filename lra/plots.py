"""PNG charts of LRA results: accuracy per task and backend, and accuracy against speed and memory."""

from __future__ import annotations

import csv
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

log = logging.getLogger(__name__)

EFFICIENCY_COLUMNS = ("backend", "length", "steps_per_second", "peak_memory_mb")


class EfficiencyInputError(ValueError):
    """Efficiency measurements or options that cannot be plotted; the message says where and why."""


@dataclass(frozen=True)
class EfficiencyPoint:
    backend: str
    length: int
    steps_per_second: float | None  # None: not measured, e.g. out of memory
    peak_memory_mb: float | None


def _optional_float(text: str, where: str, column: str) -> float | None:
    if text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise EfficiencyInputError(f"{where}: {column} must be a number or empty, got {text!r}") from None
    return value if math.isfinite(value) else None


def read_efficiency(path: Path) -> list[EfficiencyPoint]:
    try:
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            missing = [column for column in EFFICIENCY_COLUMNS if column not in (reader.fieldnames or [])]
            if missing:
                raise EfficiencyInputError(f"{path}: missing columns: {', '.join(missing)}")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise EfficiencyInputError(f"{path}: cannot be read ({error})") from None
    points, seen = [], set()
    for line, row in enumerate(rows, start=2):
        # `python -m lra.bench` also writes rows for attention alone; the chart is about the whole model.
        if (row.get("kind") or "model") != "model":
            continue
        where = f"{path} line {line}"
        if not (row["length"] or "").strip().isdigit():
            raise EfficiencyInputError(f"{where}: length must be a positive integer, got {row['length']!r}")
        point = EfficiencyPoint(
            backend=row["backend"],
            length=int(row["length"]),
            steps_per_second=_optional_float(row["steps_per_second"] or "", where, "steps_per_second"),
            peak_memory_mb=_optional_float(row["peak_memory_mb"] or "", where, "peak_memory_mb"),
        )
        if (point.backend, point.length) in seen:
            raise EfficiencyInputError(f"{where}: a second row for {point.backend} at length {point.length}")
        seen.add((point.backend, point.length))
        points.append(point)
    return points


def figure_png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    # No software/date metadata, so the same numbers give the same bytes.
    figure.savefig(buffer, format="png", dpi=120, metadata={"Software": None})
    return buffer.getvalue()


def accuracy_chart(
    budget: str,
    tasks: list[str],
    backends: list[str],
    accuracy: dict[tuple[str, str], tuple[float, float]],
    task_titles: list[str],
) -> bytes:
    """Grouped bars: one group per task, one bar per backend, mean test accuracy (%) with std error bars."""
    figure = Figure(figsize=(max(6.0, 1.6 * len(tasks) + 2), 4.5), layout="constrained")
    axes = figure.subplots()
    width = 0.8 / len(backends)
    for index, backend in enumerate(backends):
        offset = (index - (len(backends) - 1) / 2) * width
        present = [i for i, task in enumerate(tasks) if (backend, task) in accuracy]
        axes.bar(
            [i + offset for i in present],
            [accuracy[backend, tasks[i]][0] for i in present],
            width,
            yerr=[accuracy[backend, tasks[i]][1] for i in present],
            capsize=3,
            label=backend,
        )
    axes.set_xticks(range(len(tasks)), task_titles)
    axes.set_ylim(0, 100)
    axes.set_ylabel("Test accuracy (%)")
    axes.set_title(f"LRA test accuracy, budget '{budget}' (mean ± std over seeds)")
    axes.grid(axis="y", alpha=0.3)
    # Below the axes, so that no bar is hidden behind it.
    figure.legend(loc="outside lower center", ncols=min(len(backends), 6), fontsize="small")
    return figure_png(figure)


def _chart_length(points: list[EfficiencyPoint]) -> int | None:
    """The longest length softmax was measured at (speeds are shown relative to it), else the longest."""
    measured = [p for p in points if p.steps_per_second is not None]
    softmax = [p.length for p in measured if p.backend == "softmax"]
    lengths = softmax or [p.length for p in measured]
    return max(lengths) if lengths else None


def efficiency_chart(
    points: list[EfficiencyPoint],
    averages: dict[str, dict[str, tuple[float, bool]]],
    budget: str | None,
    length: int | None,
) -> bytes | None:
    """The LRA-style chart: average accuracy against speed, marker area proportional to peak memory.

    averages maps budget -> backend -> (average test accuracy over tasks, whether it misses some task).
    Without a budget: paper, else lra, else the first alphabetically.
    """
    if budget is None:
        budget = next((name for name in ("paper", "lra") if name in averages), min(averages))
    if budget not in averages:
        raise EfficiencyInputError(
            f"efficiency_budget={budget} has no run records; budgets: {', '.join(sorted(averages))}"
        )
    average_accuracy = averages[budget]
    length = length if length is not None else _chart_length(points)
    at_length = {p.backend: p for p in points if p.length == length and p.steps_per_second is not None}
    shown = [backend for backend in average_accuracy if backend in at_length]
    if not shown:
        log.warning(
            "efficiency.png not written: no backend has both a speed at length %s and accuracy "
            "records in budget %s",
            length,
            budget,
        )
        return None
    softmax = at_length.get("softmax")
    scale = softmax.steps_per_second if softmax is not None else 1.0
    memories = [at_length[b].peak_memory_mb for b in shown if at_length[b].peak_memory_mb is not None]
    largest = max(memories, default=1.0) or 1.0

    figure = Figure(figsize=(6.5, 4.8), layout="constrained")
    axes = figure.subplots()
    for backend in shown:
        point = at_length[backend]
        speed = point.steps_per_second / scale
        memory = point.peak_memory_mb
        size = 60.0 if memory is None else max(40.0, 1500.0 * memory / largest)
        accuracy, partial = average_accuracy[backend]
        axes.scatter([speed], [accuracy], s=size, alpha=0.6)
        label = backend + (" (partial average)" if partial else "")
        label += "" if memory is None else f"\n{memory:.0f} MB"
        axes.annotate(label, (speed, accuracy), textcoords="offset points", xytext=(8, 8), fontsize="small")
    axes.set_xlabel(
        f"Speed at length {length} (× softmax)" if softmax else f"Steps per second at length {length}"
    )
    axes.set_ylabel(f"Average test accuracy (%), budget '{budget}'")
    axes.set_title("Accuracy against speed; marker area ∝ peak memory")
    axes.grid(alpha=0.3)
    axes.margins(0.25)
    return figure_png(figure)
