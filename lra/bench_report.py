"""The efficiency benchmark's outputs: efficiency.csv, efficiency.md and efficiency_attention.png."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass

import torch
from matplotlib.figure import Figure

from lra.bench_measure import ATTENTION, MODEL, REFERENCE_PERFORMER, Measurement
from lra.plots import figure_png

CSV_COLUMNS = (
    "kind",
    "backend",
    "length",
    "causal",
    "batch",
    "ms_per_step",
    "steps_per_second",
    "peak_memory_mb",
    "device",
    "torch",
    "skipped",
)
# LRA paper (arXiv 2011.04006) Table 2, Text task, batch 32, TPU: steps/s and peak memory (GB) at 1K-4K.
PAPER_TABLE_2 = {
    "Transformer": ((8.1, 4.9, 2.3, 1.4), (0.85, 2.65, 5.51, 9.48)),
    "Linear Trans.": ((9.1, 9.3, 8.6, 7.8), (0.37, 0.57, 0.80, 1.03)),
    "Performer": ((9.5, 9.4, 8.7, 8.0), (0.37, 0.59, 0.82, 1.06)),
}


@dataclass(frozen=True)
class Context:
    """What the report says about how the numbers were made."""

    hardware: str
    command: str
    batch: int
    heads: int
    head_dim: int
    model_batch: int
    model: dict[str, object]
    warmup: int
    repeats: int
    fresh_process: bool
    reference_performer: bool  # whether performer-pytorch was importable


def hardware_name(device: str) -> str:
    """The CUDA device name, or the CPU model from /proc/cpuinfo with the core and thread counts."""
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(device))} (CUDA {torch.version.cuda})"
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            model = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), model
            )
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def efficiency_csv(measurements: list[Measurement], hardware: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for m in measurements:
        p = m.point
        speed = None if m.ms_per_step is None else 1000 / m.ms_per_step
        writer.writerow(
            [
                p.kind,
                p.backend,
                p.length,
                str(p.causal).lower(),
                p.batch,
                _number(m.ms_per_step, 3),
                _number(speed, 4),
                _number(m.peak_memory_mb, 1),
                hardware,
                torch.__version__,
                m.skipped,
            ]
        )
    return buffer.getvalue()


def _lookup(measurements: list[Measurement]) -> dict[tuple[str, str, int, bool], Measurement]:
    return {(m.point.kind, m.point.backend, m.point.length, m.point.causal): m for m in measurements}


def ratio(value: float | None, reference: float | None) -> float | None:
    return None if value is None or reference is None or reference == 0 else value / reference


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}×"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]


def attention_section(measurements: list[Measurement], causal: bool) -> list[str]:
    """Milliseconds per forward + backward and peak memory, each also as a ratio to softmax and to linear."""
    found = _lookup(measurements)
    rows = []
    for m in measurements:
        p = m.point
        if p.kind != ATTENTION or p.causal != causal:
            continue
        if m.skipped:
            rows.append([f"{p.length}", p.backend, f"skipped: {m.skipped}", "", "", "", "", ""])
            continue
        cells = [f"{p.length}", p.backend, f"{m.ms_per_step:.1f}"]
        softmax, linear = (found.get((ATTENTION, name, p.length, causal)) for name in ("softmax", "linear"))
        cells += [_times(ratio(m.ms_per_step, r.ms_per_step if r else None)) for r in (softmax, linear)]
        cells.append(f"{m.peak_memory_mb:.0f}")
        cells += [_times(ratio(m.peak_memory_mb, r.peak_memory_mb if r else None)) for r in (softmax, linear)]
        rows.append(cells)
    header = [
        "N",
        "backend",
        "ms / step",
        "time × softmax",
        "time × linear",
        "peak MB",
        "memory × softmax",
        "memory × linear",
    ]
    return _table(header, rows) if rows else []


def model_section(measurements: list[Measurement]) -> list[str]:
    """Training steps per second and peak memory of the Text classifier, as in the LRA paper's Table 2."""
    found = _lookup(measurements)
    rows = []
    for m in measurements:
        p = m.point
        if p.kind != MODEL:
            continue
        if m.skipped:
            rows.append([f"{p.length}", p.backend, f"skipped: {m.skipped}", "", "", "", ""])
            continue
        softmax, linear = (found.get((MODEL, name, p.length, False)) for name in ("softmax", "linear"))
        speed = 1000 / m.ms_per_step
        rows.append(
            [
                f"{p.length}",
                p.backend,
                f"{speed:.3f}",
                _times(
                    ratio(softmax.ms_per_step, m.ms_per_step) if softmax and not softmax.skipped else None
                ),
                f"{m.peak_memory_mb:.0f}",
                *(
                    _times(ratio(m.peak_memory_mb, r.peak_memory_mb if r else None))
                    for r in (softmax, linear)
                ),
            ]
        )
    header = [
        "N",
        "backend",
        "steps / s",
        "speed × softmax",
        "peak MB",
        "memory × softmax",
        "memory × linear",
    ]
    return _table(header, rows) if rows else []


def reference_performer_section(measurements: list[Measurement], available: bool) -> list[str]:
    if not available:
        return [
            "performer-pytorch is not installed, so PerformerAttention was not compared with its "
            "`FastAttention` (`pip install performer-pytorch`, or the project's `bench` extra).",
            "",
        ]
    found = _lookup(measurements)
    rows = []
    for m in measurements:
        if m.point.backend != REFERENCE_PERFORMER:
            continue
        ours = found.get((ATTENTION, "performer", m.point.length, False))
        ours_ms = ours.ms_per_step if ours else None
        rows.append(
            [
                f"{m.point.length}",
                _number(ours_ms, 1) or "-",
                _number(m.ms_per_step, 1) or m.skipped,
                _times(ratio(ours_ms, m.ms_per_step)),
            ]
        )
    return _table(
        ["N", "PerformerAttention ms", "FastAttention ms", "PerformerAttention / FastAttention"], rows
    )


def paper_section() -> list[str]:
    rows = []
    for model, (speeds, memories) in PAPER_TABLE_2.items():
        reference_speeds, reference_memories = PAPER_TABLE_2["Transformer"]
        rows.append(
            [
                model,
                *(f"{s} ({s / r:.1f}×)" for s, r in zip(speeds, reference_speeds)),
                *(f"{g} ({g / r:.2f}×)" for g, r in zip(memories, reference_memories)),
            ]
        )
    header = ["model", *(f"steps/s {n}K" for n in range(1, 5)), *(f"GB {n}K" for n in range(1, 5))]
    return _table(header, rows)


def markdown_report(measurements: list[Measurement], context: Context) -> str:
    model = context.model
    lines = [
        "# Efficiency: time and peak memory per backend",
        "",
        f"Measured on **{context.hardware}**, torch {torch.__version__}. Regenerate with `{context.command}`.",
        "Numbers are specific to this machine and its load; compare backends through the ratios, which come "
        f"from the same run. Each time is the median of {context.repeats} timed steps after {context.warmup} "
        "warm-up step(s).",
        "",
        "Peak memory covers building the inputs and module and the warm-up step(s): on CUDA the allocator's "
        "peak of allocated bytes; on CPU "
        + (
            "the rise of the process's peak resident set size, each point in a fresh process so that no "
            "earlier point's memory is reused or counted (it includes allocator slack and library buffers, "
            "so it reads above the tensor bytes alone). Each CPU process runs with glibc's malloc told to keep "
            "freed memory (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`): by default it returns large "
            "blocks to the OS and faults them in again every step, which made identical runs differ by 2x."
            if context.fresh_process
            else "the peak of live tensor bytes from the profiler's allocation events, all points in one "
            "process (the `--quick` smoke run)."
        ),
        "Softmax runs PyTorch's fused `scaled_dot_product_attention`, whose kernels never hold the N × N "
        "score matrix, so its memory grows linearly; its time still grows quadratically.",
        "",
        f"## Attention alone: forward + backward, B={context.batch}, H={context.heads}, D={context.head_dim}",
        "",
        *attention_section(measurements, causal=False),
        "### Causal",
        "",
        *attention_section(measurements, causal=True),
        "### Against performer-pytorch (non-causal, same features and head dimension)",
        "",
        *reference_performer_section(measurements, context.reference_performer),
        f"## Text classifier: training steps (forward, backward, AdamW), batch {context.model_batch}",
        "",
        f"The `paper` budget's model: {model['num_layers']} layers, dim {model['dim']}, {model['num_heads']} "
        f"heads, FFN {model['ffn_dim']}, {model['pooling']} pooling, vocabulary 257, 2 classes; random tokens, "
        "none of them padding.",
        "",
        *model_section(measurements),
        "For context, the LRA paper's Table 2 (TPU, batch 32; quoted, not measured here; × Transformer):",
        "",
        *paper_section(),
    ]
    return "\n".join(lines)


def attention_chart(measurements: list[Measurement]) -> bytes:
    """Time and peak memory against N, log-log, one line per backend (non-causal attention alone)."""
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    time_axes, memory_axes = figure.subplots(1, 2)
    backends = list(dict.fromkeys(m.point.backend for m in measurements if m.point.kind == ATTENTION))
    for backend in backends:
        points = sorted(
            (m.point.length, m.ms_per_step, m.peak_memory_mb)
            for m in measurements
            if m.point.kind == ATTENTION
            and not m.point.causal
            and m.point.backend == backend
            and not m.skipped
        )
        style = "--" if backend == REFERENCE_PERFORMER else "-"
        lengths = [length for length, _, _ in points]
        time_axes.plot(lengths, [ms for _, ms, _ in points], style, marker="o", label=backend)
        memory_axes.plot(lengths, [mb for _, _, mb in points], style, marker="o", label=backend)
    for axes, label in ((time_axes, "ms per forward + backward"), (memory_axes, "peak memory (MB)")):
        axes.set_xscale("log", base=2)
        axes.set_yscale("log")
        axes.set_xlabel("sequence length N")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3, which="both")
    time_axes.set_title("Time")
    memory_axes.set_title("Peak memory")
    time_axes.legend(fontsize="small")
    return figure_png(figure)
