"""The global batch split over devices and accumulation, and DDP on the CPU against one process."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from lra.config import ConfigError
from lra.distributed import BatchPlan, check_world_size, device_count, per_device_batch, plan_batches
from tests.lra.conftest import CONFIG_DIR, TINY, compose_train

REPO = CONFIG_DIR.parent


@pytest.mark.parametrize(
    "global_batch, devices, num_nodes, max_per_device, expected",
    [
        (32, 1, 1, None, (32, 1)),
        (32, 4, 1, None, (8, 1)),
        (32, 2, 2, None, (8, 1)),
        (32, 1, 1, 8, (8, 4)),
        (256, 8, 1, 16, (16, 2)),
        (24, 2, 1, 5, (4, 3)),  # 12 per device: 6 > 5, so three micro-batches of 4
        (14, 2, 1, 3, (1, 7)),  # 7 per device has no divisor in 2..3: one example at a time
        (16, 4, 1, 64, (4, 1)),  # a limit above the share changes nothing
    ],
    ids=lambda value: str(value),
)
def test_per_device_batch_table(global_batch, devices, num_nodes, max_per_device, expected):
    assert per_device_batch(global_batch, devices, num_nodes, max_per_device) == expected


def test_every_split_adds_up_to_the_global_batch():
    for global_batch in (1, 12, 16, 32, 128, 256, 512):
        for devices in (1, 2, 4, 8):
            for num_nodes in (1, 2, 4):
                if global_batch % (devices * num_nodes):
                    continue
                for limit in (None, 1, 2, 3, 8, 64):
                    batch, accumulate = per_device_batch(global_batch, devices, num_nodes, limit)
                    assert batch * accumulate * devices * num_nodes == global_batch
                    assert limit is None or batch <= limit


@pytest.mark.parametrize(
    "arguments, message",
    [
        ((32, 3, 1, None), "does not divide over 3 processes"),
        ((16, 4, 8, None), r"4 devices x 8 nodes"),
        ((32, 0, 1, None), "devices must be a positive integer"),
        ((32, 1, 1, 0), "max_batch_per_device must be a positive integer"),
        ((0, 1, 1, None), "global batch must be a positive integer"),
    ],
)
def test_impossible_splits_are_named(arguments, message):
    with pytest.raises(ConfigError, match=message):
        per_device_batch(*arguments)


@pytest.mark.parametrize("devices, count", [(2, 2), ([0, 1, 3], 3), ("0,1", 2), ("1,", 1), ("4", 4)])
def test_device_count_reads_lightning_device_values(devices, count):
    assert device_count(devices) == count


@pytest.mark.parametrize("devices", ["auto", -1, 0, True])
def test_device_count_needs_an_explicit_number(devices):
    with pytest.raises(ConfigError, match="trainer.devices"):
        device_count(devices)


def test_ddp_config_keeps_the_budget_batch_per_optimizer_step():
    cfg = compose_train(["trainer=ddp", "budget=paper", "task=image", "trainer.devices=8"])
    assert (cfg.trainer.strategy, cfg.trainer.precision, cfg.trainer.accelerator) == (
        "ddp",
        "bf16-mixed",
        "gpu",
    )
    assert plan_batches(cfg) == BatchPlan(256, 8, 32, 1)
    limited = compose_train(
        ["trainer=ddp", "budget=paper", "task=text", "trainer.devices=4", "max_batch_per_device=2"]
    )
    plan = plan_batches(limited)
    assert plan == BatchPlan(16, 4, 2, 2)
    assert plan.batches_for(1000) == 2000
    assert limited.trainer.max_steps == 50_000  # optimizer steps, unchanged by the split
    two_nodes = compose_train(["trainer=ddp", "budget=paper", "task=pathfinder", "trainer.num_nodes=2"])
    assert plan_batches(two_nodes).as_record() == {
        "global_batch": 128,
        "world_size": 8,
        "per_device_batch": 16,
        "accumulate_grad_batches": 1,
    }


def test_a_batch_that_does_not_divide_stops_with_the_key():
    cfg = compose_train(["trainer=ddp", "budget=paper", "task=text", "trainer.devices=3"])
    with pytest.raises(ConfigError, match="batch_size 16 does not divide over 3 processes"):
        plan_batches(cfg)


def test_accumulation_is_not_set_by_hand():
    cfg = compose_train(["+trainer.accumulate_grad_batches=4"])
    with pytest.raises(ConfigError, match="max_batch_per_device"):
        plan_batches(cfg)


def test_the_world_lightning_builds_is_the_planned_one():
    ddp = compose_train(["trainer=ddp_cpu"])
    trainer = instantiate(ddp.trainer, logger=False, enable_checkpointing=False)
    check_world_size(plan_batches(ddp), trainer)  # Trainer(strategy=ddp, devices=2) launches nothing yet
    assert trainer.world_size == 2
    with pytest.raises(ConfigError, match="Lightning runs 2 processes"):
        check_world_size(plan_batches(compose_train(["trainer=cpu"])), trainer)


# Full-batch steps on the 12 fixture rows without dropout: the update does not depend on how the
# rows are ordered or split, so one process and two DDP ranks must reach the same weights. Linear
# attention, because softmax is blind to the key bias: its gradient is zero up to rounding, which
# AdamW turns into steps of noise that differ between any two summation orders.
FULL_BATCH = [
    "task=listops",
    "attention=linear",
    *TINY,
    "batch_size=12",
    "trainer.max_steps=3",
    "eval_every_steps=1",
    "model.dropout=0.0",
    "optim.warmup_steps=0",
    "optim.lr=1e-2",
    "checkpoint_every_steps=1",
]


def train_cli(tmp_path: Path, data_dir: Path, *overrides: str) -> dict:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lra.train",
            *FULL_BATCH,
            f"data_dir={data_dir}",
            f"results_dir={tmp_path / 'results'}",
            f"run_dir={tmp_path / 'run'}",
            *overrides,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = list((tmp_path / "results" / "runs").glob("*.json"))
    assert [path.name for path in records] == ["cpu-listops-linear-seed0.json"]
    return json.loads(records[0].read_text())


def final_weights(tmp_path: Path) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(
        tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
    )
    return checkpoint["state_dict"]


@pytest.mark.slow
def test_two_ddp_ranks_with_accumulation_match_one_process(tmp_path, data_dir):
    started = time.perf_counter()
    single = train_cli(tmp_path / "single", data_dir, "trainer=cpu")
    # Two gloo ranks of 6 rows each, every rank in two micro-batches of 3.
    ddp = train_cli(tmp_path / "ddp", data_dir, "trainer=ddp_cpu", "max_batch_per_device=3")
    print(f"one process and 2-rank DDP: {time.perf_counter() - started:.1f} s")
    assert single["distributed"] == {
        "global_batch": 12,
        "world_size": 1,
        "per_device_batch": 12,
        "accumulate_grad_batches": 1,
    }
    assert ddp["distributed"] == {
        "global_batch": 12,
        "world_size": 2,
        "per_device_batch": 3,
        "accumulate_grad_batches": 2,
    }
    assert ddp["steps"] == single["steps"] == 3
    for key in ("val_acc", "test_acc", "test_acc_last"):
        assert ddp[key] == pytest.approx(single[key], abs=1e-6), key
    reference, distributed = final_weights(tmp_path / "single"), final_weights(tmp_path / "ddp")
    assert reference.keys() == distributed.keys()
    moved = max((reference[name] - distributed[name]).abs().max().item() for name in reference)
    assert moved < 1e-5
    # Only rank 0 logs, and what it logs for validation covers both ranks' examples.
    assert len(list((tmp_path / "ddp" / "run").rglob("metrics.csv"))) == 1
    single_loss, ddp_loss = (logged(tmp_path / name, "val/loss") for name in ("single", "ddp"))
    assert len(single_loss) == 3 and ddp_loss == pytest.approx(single_loss, rel=1e-5)


def logged(tmp_path: Path, name: str) -> list[float]:
    with (tmp_path / "run" / "csv" / "metrics.csv").open() as file:
        return [float(row[name]) for row in csv.DictReader(file) if row.get(name)]
