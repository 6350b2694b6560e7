"""One efficiency measurement in a fresh process: milliseconds per training step and peak memory."""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import torch
from omegaconf import OmegaConf
from torch import nn
from torch.autograd import DeviceType

from lra.config import build_backend
from lra.model import build_classifier

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

REFERENCE_PERFORMER = "performer_pytorch"  # the performer-pytorch package's FastAttention, optional
ATTENTION, MODEL = "attention", "model"


@dataclass(frozen=True)
class Point:
    """What is measured: attention alone (B, H, N, D) or the Text classifier on (batch, N) tokens."""

    kind: str  # ATTENTION or MODEL
    backend: str
    length: int
    causal: bool
    batch: int


@dataclass(frozen=True)
class Settings:
    device: str
    heads: int  # attention alone; the model takes its heads from the budget
    head_dim: int
    performer_features: int  # for performer-pytorch, matched to configs/attention/performer.yaml
    vocab_size: int  # of the Text task
    num_classes: int
    warmup: int
    repeats: int
    seed: int


@dataclass(frozen=True)
class Measurement:
    point: Point
    ms_per_step: float | None  # median over the repeats
    peak_memory_mb: float | None
    skipped: str = ""  # why nothing was measured; empty when measured


def paper_text_model() -> dict[str, object]:
    """The `paper` budget's Text model (2 layers, dim 64, 2 heads, FFN 128, mean pooling), from its config."""
    budget = OmegaConf.load(CONFIG_DIR / "budget" / "paper.yaml")
    row = OmegaConf.to_container(budget.tasks.text, resolve=True)
    keys = ("dim", "num_layers", "num_heads", "ffn_dim", "dropout", "pooling", "positions")
    return {key: row[key] for key in keys}


def backend_factory(name: str, seed: int) -> Callable[..., nn.Module]:
    """The backend as training builds it, from configs/attention/<name>.yaml at its default options."""
    options = OmegaConf.load(CONFIG_DIR / "attention" / f"{name}.yaml")
    root = OmegaConf.create({"seed": seed, "attention": options})  # a root, so that ${seed} resolves
    return build_backend(root)


def _reference_performer(settings: Settings) -> nn.Module:
    from performer_pytorch import (
        FastAttention,  # optional dependency, only for this comparison
    )

    return FastAttention(dim_heads=settings.head_dim, nb_features=settings.performer_features, causal=False)


def _attention_step(point: Point, settings: Settings) -> Callable[[], None]:
    if point.backend == REFERENCE_PERFORMER:
        module = _reference_performer(settings)
    else:
        module = backend_factory(point.backend, settings.seed)(
            head_dim=settings.head_dim, num_heads=settings.heads
        )
    module = module.to(settings.device)
    shape = (point.batch, settings.heads, point.length, settings.head_dim)  # (B, H, N, D)
    q, k, v = (torch.randn(shape, device=settings.device, requires_grad=True) for _ in range(3))
    upstream = torch.randn(shape, device=settings.device)

    def step() -> None:
        q.grad = k.grad = v.grad = None
        out = (
            module(q, k, v) if point.backend == REFERENCE_PERFORMER else module(q, k, v, causal=point.causal)
        )
        out.backward(upstream)

    return step


def _model_step(point: Point, settings: Settings) -> Callable[[], None]:
    model = build_classifier(
        vocab_size=settings.vocab_size,
        max_length=point.length,
        num_classes=settings.num_classes,
        paired=False,
        backend=backend_factory(point.backend, settings.seed),
        **paper_text_model(),
    ).to(settings.device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    # Every token real: the fixed-length setting of the LRA paper's Table 2.
    tokens = torch.randint(1, settings.vocab_size, (point.batch, point.length), device=settings.device)
    mask = torch.ones_like(tokens, dtype=torch.bool)
    labels = torch.randint(0, settings.num_classes, (point.batch,), device=settings.device)

    def step() -> None:
        loss = nn.functional.cross_entropy(model(tokens, mask), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _proc_status_kib(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise OSError(f"{key} not in /proc/self/status")


class PeakMemory:
    """Peak memory of what runs between start() and stop_mb().

    CUDA: the caching allocator's peak of allocated bytes. CPU in a fresh process: the rise of the peak
    resident set size (Linux resets it on writing 5 to /proc/self/clear_refs), so allocator slack and
    library buffers count too; elsewhere getrusage's lifetime peak, which undercounts when the imports
    peaked higher. CPU in a shared process, where freed pages are reused: the peak of live tensor bytes,
    from the profiler's allocation events.
    """

    def __init__(self, device: str, fresh_process: bool) -> None:
        self.method = "cuda" if device.startswith("cuda") else ("rss" if fresh_process else "tensors")

    def start(self) -> None:
        if self.method == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.baseline = torch.cuda.memory_allocated()
        elif self.method == "tensors":
            activities = [torch.profiler.ProfilerActivity.CPU]
            self.profiler = torch.profiler.profile(activities=activities, profile_memory=True)
            self.profiler.start()
        else:
            try:
                with open("/proc/self/clear_refs", "w") as clear:
                    clear.write("5")
                self.baseline, self.proc = _proc_status_kib("VmRSS") * 1024, True
            except OSError:
                self.baseline, self.proc = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, False

    def stop_mb(self) -> float:
        if self.method == "cuda":
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - self.baseline) / 2**20
        if self.method == "tensors":
            self.profiler.stop()
            recorded = self.profiler.profiler.kineto_results.events()
            events = sorted(
                (event.start_ns(), event.nbytes())
                for event in recorded  # bytes: + alloc, - free
                if event.name() == "[memory]" and event.device_type() == DeviceType.CPU
            )
            live = peak = 0
            for _, nbytes in events:
                live += nbytes
                peak = max(peak, live)
            return peak / 2**20
        peak = _proc_status_kib("VmHWM") if self.proc else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return (peak * 1024 - self.baseline) / 2**20


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(point: Point, settings: Settings, fresh_process: bool = False) -> Measurement:
    """Peak memory over building and the warm-up steps, then the median time of `repeats` further steps."""
    torch.manual_seed(settings.seed)
    memory = PeakMemory(settings.device, fresh_process)
    memory.start()
    try:
        build = _model_step if point.kind == MODEL else _attention_step
        step = build(point, settings)
        for _ in range(settings.warmup):
            step()
        peak_mb = memory.stop_mb()
        times = []
        for _ in range(settings.repeats):
            started = time.perf_counter()
            step()
            _synchronize(settings.device)
            times.append(time.perf_counter() - started)
    except torch.OutOfMemoryError:
        return Measurement(point, None, None, skipped="out of memory")
    return Measurement(point, 1000 * statistics.median(times), peak_mb)


# glibc's malloc hands large freed blocks back to the OS and page-faults them in again on the next step,
# at a cost set more by the process's allocation history than by the backend: one point measured twice
# gave 86 and 156 ms. Told to keep freed memory, it times the computation (read at process start).
CPU_ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2**32), "MALLOC_TRIM_THRESHOLD_": str(2**32)}


@contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def measure_in_fresh_process(point: Point, settings: Settings) -> Measurement:
    """`measure` in a new spawned interpreter, so no earlier measurement's memory is reused or counted."""
    variables = {} if settings.device.startswith("cuda") else CPU_ALLOCATOR_ENV
    with (
        _environment(variables),  # the spawned interpreter inherits it
        ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool,
    ):
        try:
            return pool.submit(measure, point, settings, True).result()
        except BrokenProcessPool:  # killed, most likely by the kernel for lack of memory
            return Measurement(point, None, None, skipped="measuring process died (out of memory?)")
