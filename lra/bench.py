"""Speed and peak memory of every backend, alone and in the Text classifier: `python -m lra.bench`."""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from lra.atomic import write_atomic
from lra.bench_measure import (
    ATTENTION,
    CONFIG_DIR,
    MODEL,
    REFERENCE_PERFORMER,
    Measurement,
    Point,
    Settings,
    measure,
    measure_in_fresh_process,
    paper_text_model,
)
from lra.bench_report import (
    Context,
    attention_chart,
    efficiency_csv,
    hardware_name,
    markdown_report,
)

BACKENDS = ("softmax", "linear", "performer", "luna")
FULL = {
    "lengths": [1024, 2048, 4096, 8192, 16384],
    "model_lengths": [1024, 2048, 3072, 4096],
    "causal_lengths": [4096],
    # On the CPU the first steps of a fresh process run slow while glibc's malloc raises its mmap
    # threshold (each step page-faults its tensors in anew until then); time only after that.
    "warmup": 3,
    "repeats": 5,
}
QUICK = {
    "lengths": [256, 512],
    "model_lengths": [256],
    "causal_lengths": [256],
    "warmup": 1,
    "repeats": 1,
    "model_batch": 2,
}
QUADRATIC = {"softmax"}  # backends whose time grows with N^2; the rest grow with N


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lra.bench", description=__doc__)
    parser.add_argument("--lengths", type=int, nargs="+", help="N for attention alone (default 1K-16K)")
    parser.add_argument(
        "--model-lengths", type=int, nargs="+", help="N for the Text classifier (default 1K-4K)"
    )
    parser.add_argument("--causal-lengths", type=int, nargs="*", help="N for causal attention (default 4K)")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--batch", type=int, default=4, help="B for attention alone")
    parser.add_argument("--heads", type=int, default=4, help="H for attention alone")
    parser.add_argument("--head-dim", type=int, default=64, help="D for attention alone")
    parser.add_argument(
        "--model-batch",
        type=int,
        help="batch of the Text classifier (default 32 as in LRA Table 2 on CUDA, 8 on CPU)",
    )
    parser.add_argument("--warmup", type=int, help="untimed steps per point first (default 3)")
    parser.add_argument("--repeats", type=int, help="timed steps per point, median reported (default 5)")
    parser.add_argument("--memory-cap-gb", type=float, default=8.0, help="skip points expected to need more")
    parser.add_argument(
        "--max-point-seconds",
        type=float,
        default=60.0,
        help="skip points whose warm-up and timed steps are expected to take longer",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results-dir", type=Path, default=Path("results"))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: N 256 and 512, one repeat, every point in this process",
    )
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None or (args.quick and key == "model_batch"):
            setattr(args, key, value)
    if args.model_batch is None:
        # On a few CPU cores batch 32 at 4K takes about 15 s a step per backend; every backend's cost is
        # linear in the batch, so the ratios hold at 8.
        args.model_batch = 32 if args.device.startswith("cuda") else 8
    if args.warmup < 1:
        parser.error("--warmup must be at least 1: peak memory is read over the warm-up steps")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def reference_performer_available() -> bool:
    return importlib.util.find_spec("performer_pytorch") is not None


def plan(args: argparse.Namespace, reference_performer: bool) -> list[Point]:
    """Every point, backends interleaved per length so that a change in machine load hits them all."""
    extra = [REFERENCE_PERFORMER] if reference_performer else []
    points = [
        Point(ATTENTION, backend, n, False, args.batch)
        for n in args.lengths
        for backend in [*args.backends, *extra]
    ]
    points += [
        Point(ATTENTION, backend, n, True, args.batch)
        for n in args.causal_lengths
        for backend in args.backends
    ]
    points += [
        Point(MODEL, backend, n, False, args.model_batch)
        for n in args.model_lengths
        for backend in args.backends
    ]
    return points


def fused_softmax(device: str, head_dim: int, causal: bool) -> bool:
    """Whether SDPA picks a fused kernel (no N x N matrix in memory) for these shapes on this device."""
    try:
        q = torch.zeros(1, 1, 8, head_dim, device=device, requires_grad=True)
        return torch._fused_sdp_choice(q, q, q, is_causal=causal) > 0  # 0 is the unfused math kernel
    except (AttributeError, RuntimeError):
        return False  # unknown: assume the score matrix is held


def expected_memory_bytes(point: Point, settings: Settings, model: dict[str, object]) -> int:
    """A rough upper estimate: fp32 activations linear in N, plus the score matrices unfused softmax holds."""
    if point.kind == MODEL:
        heads, layers = int(model["num_heads"]), int(model["num_layers"])
        head_dim = int(model["dim"]) // heads
    else:
        heads, head_dim, layers = settings.heads, settings.head_dim, 1
    linear_part = 16 * point.batch * heads * point.length * head_dim * 4 * layers
    if point.backend == "softmax" and not fused_softmax(settings.device, head_dim, point.causal):
        # Scores, probabilities and their gradient: three (B, H, N, N) fp32 matrices per layer.
        return linear_part + 3 * point.batch * heads * point.length**2 * 4 * layers
    return linear_part


def expected_seconds(point: Point, done: list[Measurement], steps: int) -> float | None:
    """Warm-up plus timed steps, extrapolated from the same backend's longest measured shorter length."""
    shorter = [
        m
        for m in done
        if m.point.kind == point.kind
        and m.point.backend == point.backend
        and m.point.causal == point.causal
        and m.ms_per_step is not None
        and m.point.length < point.length
    ]
    if not shorter:
        return None
    nearest = max(shorter, key=lambda m: m.point.length)
    power = 2 if point.backend in QUADRATIC else 1
    return steps * nearest.ms_per_step / 1000 * (point.length / nearest.point.length) ** power


def skip_reason(point: Point, settings: Settings, done: list[Measurement], args: argparse.Namespace) -> str:
    memory = expected_memory_bytes(point, settings, paper_text_model())
    if memory > args.memory_cap_gb * 2**30:
        return f"expected {memory / 2**30:.1f} GiB, over --memory-cap-gb {args.memory_cap_gb:g}"
    seconds = expected_seconds(point, done, settings.warmup + settings.repeats)
    if seconds is not None and seconds > args.max_point_seconds:
        return f"expected {seconds:.0f} s, over --max-point-seconds {args.max_point_seconds:g}"
    return ""


def settings_from(args: argparse.Namespace) -> Settings:
    # Imported here, not at the top: spawned workers re-import this module, and the data package pulls in
    # Lightning, seconds per worker.
    from lra.data.text import TextDataModule

    performer = OmegaConf.load(CONFIG_DIR / "attention" / "performer.yaml")
    return Settings(
        device=args.device,
        heads=args.heads,
        head_dim=args.head_dim,
        performer_features=int(performer.num_features),
        vocab_size=TextDataModule.vocab_size,
        num_classes=TextDataModule.num_classes,
        warmup=args.warmup,
        repeats=args.repeats,
        seed=args.seed,
    )


def run(args: argparse.Namespace, command: str) -> tuple[list[Measurement], Context]:
    settings = settings_from(args)
    reference = reference_performer_available()
    done: list[Measurement] = []
    for point in plan(args, reference):
        reason = skip_reason(point, settings, done, args)
        if reason:
            result = Measurement(point, None, None, skipped=reason)
        else:
            result = measure(point, settings) if args.quick else measure_in_fresh_process(point, settings)
        done.append(result)
        shown = result.skipped or f"{result.ms_per_step:.1f} ms/step, {result.peak_memory_mb:.0f} MB peak"
        causal = " causal" if point.causal else ""
        print(f"{point.kind:9} {point.backend:17} N={point.length:<6}{causal:7} {shown}", flush=True)
    context = Context(
        hardware=hardware_name(args.device),
        command=command,
        batch=args.batch,
        heads=args.heads,
        head_dim=args.head_dim,
        model_batch=args.model_batch,
        model=paper_text_model(),
        warmup=args.warmup,
        repeats=args.repeats,
        fresh_process=not args.quick,
        reference_performer=reference,
    )
    return done, context


def write_report(results_dir: Path, measurements: list[Measurement], context: Context) -> list[Path]:
    """All three files are built before the first is written, each atomically."""
    outputs = {
        results_dir / "efficiency.csv": efficiency_csv(measurements, context.hardware).encode(),
        results_dir / "efficiency.md": markdown_report(measurements, context).encode(),
        results_dir / "efficiency_attention.png": attention_chart(measurements),
    }
    for path, data in outputs.items():
        write_atomic(path, data)
    return list(outputs)


def main(argv: list[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    args = parse_args(arguments)
    measurements, context = run(args, shlex.join(["python", "-m", "lra.bench", *arguments]))
    for path in write_report(args.results_dir, measurements, context):
        print(f"written: {path}")


if __name__ == "__main__":
    main()
