"""Swap the attention of a pretrained model for a linear one and recover it: `python -m lra.convert`."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hydra
import lightning
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from lra.atomic import write_json_atomic
from lra.config import build_backend
from lra.convert_data import Batch, forever, to_device
from lra.records import environment
from luna.linearize import attention_transfer, backend_parameters, linearize

log = logging.getLogger(__name__)

LossFunction = Callable[[nn.Module, Batch], Tensor]


def pick_device(name: str | None) -> torch.device:
    """`None` means the GPU when there is one."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def model_inputs(batch: Batch) -> Batch:
    return {name: value for name, value in batch.items() if name != "labels"}


def transfer_attention(
    model: nn.Module, batches: Iterable[Batch], steps: int, lr: float, device: torch.device
) -> list[float]:
    """Attention transfer: train only the backends' own parameters so that each layer's output matches
    the original softmax attention of that layer (MSE per layer, averaged over layers). Returns the loss
    of every step; nothing to do, and an empty list, for backends without parameters."""
    parameters = backend_parameters(model)
    if not parameters or steps == 0:
        return []
    trainable = {id(p) for p in parameters}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in trainable)
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.0, fused=device.type in ("cpu", "cuda"))
    model.eval()  # the teacher is the original model, without dropout
    losses = []
    for _, batch in zip(range(steps), forever(batches)):
        with attention_transfer(model) as layer_losses:
            model(**model_inputs(to_device(batch, device)))
        loss = torch.stack(layer_losses).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return losses


def task_loss(model: nn.Module, batch: Batch) -> Tensor:
    """The model's own loss (a transformers task head computes it when given `labels`)."""
    return model(**batch).loss


def finetune(
    model: nn.Module,
    batches: Iterable[Batch],
    steps: int,
    lr: float,
    backend_lr: float,
    warmup_steps: int,
    device: torch.device,
    loss_function: LossFunction = task_loss,
) -> list[float]:
    """Brief fine-tuning of every parameter; the new backend parameters get their own learning rate.
    Linear warmup, then linear decay to zero. Returns the loss of every step."""
    new = {id(p) for p in backend_parameters(model)}
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in new], "lr": lr},
        {"params": [p for p in model.parameters() if id(p) in new], "lr": backend_lr},
    ]
    # The fused update is several times faster than the per-tensor loop where it exists (CPU and CUDA).
    fused = device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=0.01, fused=fused)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min(
            (step + 1) / max(warmup_steps, 1), max(steps - step, 0) / max(steps - warmup_steps, 1)
        ),
    )
    model.train()
    losses = []
    for _, batch in zip(range(steps), forever(batches)):
        loss = loss_function(model, to_device(batch, device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def accuracy(model: nn.Module, batches: Iterable[Batch], device: torch.device) -> float:
    model.eval()
    correct = total = 0
    for batch in batches:
        batch = to_device(batch, device)
        predictions = model(**model_inputs(batch)).logits.argmax(dim=-1)
        correct += int((predictions == batch["labels"]).sum())
        total += len(predictions)
    return correct / max(total, 1)


def convert(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate the original model, swap its attention, transfer, fine-tune, evaluate; write the record."""
    lightning.seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    model = instantiate(cfg.convert.model).to(device)
    train_batches, eval_batches = instantiate(cfg.convert.data)
    original = accuracy(model, eval_batches, device) if cfg.evaluate_original else None

    started = time.perf_counter()
    linearize(model, build_backend(cfg))  # the new backends land on the model's device
    swapped = accuracy(model, eval_batches, device)
    transfer_losses = transfer_attention(model, train_batches, cfg.transfer.steps, cfg.transfer.lr, device)
    transferred = accuracy(model, eval_batches, device) if transfer_losses else swapped
    finetune_losses = finetune(model, train_batches, device=device, **cfg.finetune)
    final = accuracy(model, eval_batches, device)

    record = {
        "convert": cfg.convert.name,
        "attention": cfg.attention.name,
        "seed": cfg.seed,
        "accuracy_original": original,
        "accuracy_swapped": swapped,
        "accuracy_transferred": transferred,
        "accuracy": final,
        "recovered": final / original if original else None,
        "transfer_loss_first_last": transfer_losses[:1] + transfer_losses[-1:],
        "finetune_loss_first_last": finetune_losses[:1] + finetune_losses[-1:],
        "seconds": round(time.perf_counter() - started, 1),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": OmegaConf.to_container(cfg, resolve=True),
        **environment(),
    }
    path = (
        Path(cfg.results_dir) / "conversion" / f"{cfg.convert.name}-{cfg.attention.name}-seed{cfg.seed}.json"
    )
    write_json_atomic(path, record)
    log.info("conversion record written to %s", path)
    return record


@hydra.main(version_base="1.3", config_path="../configs", config_name="convert")
def main(cfg: DictConfig) -> float:
    try:
        return convert(cfg)["accuracy"]
    except ImportError as error:
        print(f"error: {error}. Install the conversion extra: pip install -e '.[convert]'", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
