"""Resuming interrupted runs: which checkpoint to continue from, random state and atomic checkpoint files."""

from __future__ import annotations

import io
import logging
import random
from pathlib import Path
from typing import Any

import lightning
import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lra.atomic import write_atomic

log = logging.getLogger(__name__)

RESUME_MODES = ("never", "auto")
LAST_CHECKPOINT = "last.ckpt"


def checkpoint_to_resume(ckpt_path: str | None, resume: str, run_dir: Path) -> str | None:
    """An explicit ckpt_path wins; resume=auto picks the run directory's last.ckpt when there is one."""
    if ckpt_path is not None or resume == "never":
        return ckpt_path
    last = run_dir / "checkpoints" / LAST_CHECKPOINT
    if last.is_file():
        log.info("resuming from %s", last)
        return str(last)
    return None


class RandomStateCheckpoint(lightning.Callback):
    """Saves the Python, NumPy and torch random states in each checkpoint and restores them.

    Dropout draws from torch's global generator; without its state a resumed run would draw
    other masks than the uninterrupted run from the same step on.
    """

    def state_dict(self) -> dict[str, Any]:
        # Plain types and tensors only: Lightning reads checkpoints with torch.load(weights_only=True).
        kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
        state = {
            "python": random.getstate(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian],
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        random.setstate(state_dict["python"])
        kind, keys, position, has_gauss, cached_gaussian = state_dict["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside it, then renames it into place.

    Lightning's own writer stages the file in the system's temporary folder; where that is another
    file system the final move is a copy, and a kill during it leaves a truncated last.ckpt.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_atomic(Path(path), buffer.getvalue())
