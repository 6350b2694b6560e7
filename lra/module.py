"""Lightning module: cross-entropy training of an LRA classifier with AdamW, warmup and decay."""

from __future__ import annotations

from functools import partial

import lightning
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from lra.schedule import lr_factor


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
    ) -> None:
        super().__init__()
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

    def training_step(self, batch: dict[str, Tensor], batch_index: int) -> Tensor:
        loss = self._step(batch, "train")
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"the training loss became {loss.item()} at step {self.global_step}")
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_index: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_index: int) -> None:
        self._step(batch, "test")

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
