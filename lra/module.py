"""Lightning module: cross-entropy training of an LRA classifier with AdamW, warmup and decay."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import lightning
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from lra.schedule import lr_factor

log = logging.getLogger(__name__)

# What a non-finite training loss does: stop the run, or drop the batch and go on.
NONFINITE_LOSS_ACTIONS = ("stop", "skip")
# Skipping cannot help when every batch is non-finite; stop after this many in a row.
MAX_CONSECUTIVE_SKIPS = 100


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class LRAClassifierModule(lightning.LightningModule):
    """Trains `model(inputs, mask) -> logits`; logs loss, accuracy per split and the learning rate."""

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        *,
        lr: float,
        weight_decay: float,
        betas: tuple[float, float],
        warmup_steps: int,
        total_steps: int,
        decay: str,
        nonfinite_loss: str = "stop",
    ) -> None:
        super().__init__()
        if nonfinite_loss not in NONFINITE_LOSS_ACTIONS:
            raise ValueError(
                f"nonfinite_loss must be one of {NONFINITE_LOSS_ACTIONS}, got {nonfinite_loss!r}"
            )
        self.nonfinite_loss = nonfinite_loss
        self.skipped_batches = 0
        self._consecutive_skips = 0
        self.model = model
        self.lr = lr
        self.weight_decay = weight_decay
        self.betas = tuple(betas)
        self.schedule = partial(lr_factor, warmup_steps=warmup_steps, total_steps=total_steps, decay=decay)
        self.schedule(0)  # an unknown decay fails now, not at the first step
        self.accuracy = nn.ModuleDict(
            {
                f"{split}_acc": MulticlassAccuracy(num_classes, average="micro")
                for split in ("train", "val", "test")
            }
        )

    def forward(self, inputs: Tensor, mask: Tensor) -> Tensor:
        return self.model(inputs, mask)

    def _step(self, batch: dict[str, Tensor], split: str) -> Tensor:
        logits = self(batch["inputs"], batch["mask"])
        loss = F.cross_entropy(logits.float(), batch["label"])
        accuracy = self.accuracy[f"{split}_acc"]
        accuracy(logits, batch["label"])
        on_step = split == "train"
        self.log(
            f"{split}/loss",
            loss,
            on_step=on_step,
            on_epoch=not on_step,
            prog_bar=on_step,
            batch_size=len(logits),
            # Epoch means over all ranks; per-step values stay local (a sync every step costs).
            sync_dist=not on_step,
        )
        self.log(
            f"{split}/acc",
            accuracy,
            on_step=False,
            on_epoch=True,
            prog_bar=split == "val",
            batch_size=len(logits),
        )
        return loss

    def training_step(self, batch: dict[str, Tensor], batch_index: int) -> Tensor | None:
        loss = self._step(batch, "train")
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        # Decided by all ranks together: one rank stopping or skipping alone would leave the others
        # waiting in a collective.
        if self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss)), all=True):
            self._consecutive_skips = 0
            return loss
        message = f"the training loss became non-finite (here {loss.item()}) at step {self.global_step}"
        if self.nonfinite_loss == "stop":
            raise NonFiniteLossError(message)
        if self._consecutive_skips >= MAX_CONSECUTIVE_SKIPS:
            raise NonFiniteLossError(f"{message}, after {MAX_CONSECUTIVE_SKIPS} skipped batches in a row")
        self.skipped_batches += 1
        self._consecutive_skips += 1
        self.log("train/skipped_batches", float(self.skipped_batches), on_step=True, on_epoch=False)
        log.warning("%s; batch skipped (%d so far)", message, self.skipped_batches)
        # Returning None makes Lightning skip backward and the update: weights and AdamW moments
        # stay as they were. The step still counts, so the schedule keeps following global_step.
        return None

    def validation_step(self, batch: dict[str, Tensor], batch_index: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_index: int) -> None:
        self._step(batch, "test")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["skipped_batches"] = self.skipped_batches

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.skipped_batches = checkpoint.get("skipped_batches", 0)

    def configure_optimizers(self):
        # No weight decay on biases and norm gains (1-d parameters), as usual for Transformers.
        decay = [p for p in self.model.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.requires_grad and p.dim() < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr,
            betas=self.betas,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
