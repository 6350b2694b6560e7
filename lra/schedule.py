"""Learning-rate schedules: linear warmup, then cosine, linear, inverse square root or constant."""

from __future__ import annotations

import math
from typing import Callable


def _cosine(step: int, warmup: int, total: int) -> float:
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _linear(step: int, warmup: int, total: int) -> float:
    return max(0.0, 1.0 - (step - warmup) / max(1, total - warmup))


def _rsqrt(step: int, warmup: int, total: int) -> float:
    # Continuous at the end of warmup: sqrt(warmup / step) starts at 1.
    return math.sqrt(max(1, warmup) / step)


def _constant(step: int, warmup: int, total: int) -> float:
    return 1.0


DECAYS: dict[str, Callable[[int, int, int], float]] = {
    "cosine": _cosine,
    "linear": _linear,
    "rsqrt": _rsqrt,
    "constant": _constant,
}


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, decay: str) -> float:
    """Multiplier of the base learning rate at optimizer step `step` (0-based)."""
    if decay not in DECAYS:
        raise ValueError(f"decay must be one of {sorted(DECAYS)}, got {decay!r}")
    step += 1  # the first update already uses a non-zero rate
    if step <= warmup_steps:
        return step / warmup_steps
    return DECAYS[decay](step, warmup_steps, total_steps)
