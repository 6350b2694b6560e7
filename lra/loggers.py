"""Logger factories that need a decision at run time: Weights & Biases online or offline."""

from __future__ import annotations

import os
from pathlib import Path

from lightning.pytorch.loggers import WandbLogger


def wandb_has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def wandb_logger(*, project: str, group: str, name: str, tags: list[str], save_dir: str) -> WandbLogger:
    """A WandbLogger that never blocks on a login prompt: offline unless an account is set up.

    `WANDB_MODE` (online, offline, disabled) wins when set; offline runs sync later with `wandb sync`.
    """
    mode = os.environ.get("WANDB_MODE") or ("online" if wandb_has_credentials() else "offline")
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(project=project, group=group, name=name, tags=list(tags), save_dir=save_dir, mode=mode)
