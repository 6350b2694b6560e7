"""The budget's global batch split over devices, nodes and gradient accumulation, the same for any world."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import lightning
from omegaconf import DictConfig, ListConfig

from lra.config import ConfigError


@dataclass(frozen=True)
class BatchPlan:
    """How one optimizer step of `global_batch` examples is spread: world x accumulation x per device."""

    global_batch: int
    world_size: int
    per_device_batch: int
    accumulate_grad_batches: int

    def batches_for(self, optimizer_steps: int) -> int:
        """Training batches per rank in `optimizer_steps` steps (Lightning's val_check_interval counts these)."""
        return optimizer_steps * self.accumulate_grad_batches

    def as_record(self) -> dict[str, int]:
        return asdict(self)


def per_device_batch(
    global_batch: int, devices: int, num_nodes: int = 1, max_per_device: int | None = None
) -> tuple[int, int]:
    """(examples per device and forward pass, accumulate_grad_batches) that add up to `global_batch`.

    Accumulation is the smallest that keeps each micro-batch within `max_per_device`, so the
    optimizer sees the same global batch, and Lightning's max_steps the same optimizer steps, for
    any number of devices.
    """
    for name, value in (("global batch", global_batch), ("devices", devices), ("num_nodes", num_nodes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    world = devices * num_nodes
    if global_batch % world:
        raise ConfigError(
            f"the global batch_size {global_batch} does not divide over {world} processes "
            f"({devices} devices x {num_nodes} nodes); pick a device count that divides it, "
            "so every backend keeps the budget's batch"
        )
    per_rank = global_batch // world
    if max_per_device is None:
        return per_rank, 1
    if not isinstance(max_per_device, int) or isinstance(max_per_device, bool) or max_per_device < 1:
        raise ConfigError(f"max_batch_per_device must be a positive integer or null, got {max_per_device!r}")
    # Micro-batches of equal size, so the mean over them is the mean over the rank's examples.
    accumulate = next(
        k for k in range(1, per_rank + 1) if per_rank % k == 0 and per_rank // k <= max_per_device
    )
    return per_rank // accumulate, accumulate


def device_count(devices: int | str | Sequence[int]) -> int:
    """Processes per node for a Lightning `devices` value: a count, a list of ids or "0,1,3"."""
    if isinstance(devices, (list, tuple, ListConfig)):
        return len(devices)
    if isinstance(devices, str) and "," in devices:
        return len([item for item in devices.split(",") if item.strip()])
    if isinstance(devices, str) and devices.strip().isdigit():
        return int(devices)
    if isinstance(devices, int) and not isinstance(devices, bool) and devices >= 1:
        return devices
    raise ConfigError(
        f"trainer.devices must be a device count or a list of device ids, got {devices!r}: "
        "'auto' and -1 leave the number of processes, and so the per-device batch, unknown until launch"
    )


def plan_batches(cfg: DictConfig) -> BatchPlan:
    """The batch plan of a composed training config (batch_size, trainer.devices/num_nodes)."""
    if "accumulate_grad_batches" in cfg.trainer:
        raise ConfigError(
            "trainer.accumulate_grad_batches is derived from batch_size and the number of devices; "
            "set max_batch_per_device=N to bound the examples per device instead"
        )
    devices = device_count(cfg.trainer.devices)
    num_nodes = cfg.trainer.get("num_nodes", 1)
    batch, accumulate = per_device_batch(cfg.batch_size, devices, num_nodes, cfg.max_batch_per_device)
    return BatchPlan(cfg.batch_size, devices * num_nodes, batch, accumulate)


def check_world_size(plan: BatchPlan, trainer: lightning.Trainer) -> None:
    """Stop when Lightning found another world than the config names (e.g. a SLURM allocation)."""
    if trainer.world_size != plan.world_size:
        raise ConfigError(
            f"Lightning runs {trainer.world_size} processes but trainer.devices x trainer.num_nodes "
            f"is {plan.world_size}; set them to the allocation (on SLURM: tasks per node and nodes)"
        )
