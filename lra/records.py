"""Run records: one JSON file per finished run under <results_dir>/runs/, written atomically."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch


def record_name(budget: str, task: str, attention: str, seed: int) -> str:
    return f"{budget}-{task}-{attention}-seed{seed}.json"


def git_commit() -> str:
    """The checked-out commit, with `-dirty` when tracked files differ from it; 'unknown' outside git."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            # Generated results are outputs, not code: rewriting them does not make the code dirty.
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)results"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def environment() -> dict[str, str]:
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name()
    else:
        device = f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return {
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "device": device,
        "python": platform.python_version(),
    }


def peak_memory_mb() -> float:
    """Peak CUDA memory allocated when on a GPU; otherwise the process's peak resident memory."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
