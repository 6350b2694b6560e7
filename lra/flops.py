"""Parameter and FLOP counts of one training step, measured without running the computation."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def training_step_flops(model: nn.Module, batch_size: int, length: int, vocab_size: int, paired: bool) -> int:
    """FLOPs of forward + backward on a full batch of `length` tokens, counted on the meta device.

    FlopCounterMode counts matrix products and attention kernels (the dominant terms), not
    element-wise work; the meta device gives exact shapes at no compute or memory cost.
    """
    meta_model = copy.deepcopy(model).to("meta")
    shape = (batch_size, 2, length) if paired else (batch_size, length)
    inputs = torch.randint(0, vocab_size, shape, device="meta")
    mask = torch.ones(shape, dtype=torch.bool, device="meta")
    counter = FlopCounterMode(display=False)
    with counter:
        meta_model(inputs, mask).float().sum().backward()
    return int(counter.get_total_flops())
