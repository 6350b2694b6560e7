"""End-to-end training on fixture data: every backend on every task, records, loggers, failures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from lra.module import NonFiniteLossError
from lra.train import train
from tests.lra.conftest import BACKENDS, TASKS, compose_train, poison_training_loss, tiny_overrides

RECORD_KEYS = {
    "task",
    "attention",
    "budget",
    "seed",
    "params",
    "flops",
    "steps",
    "val_acc",
    "test_acc",
    "test_acc_last",
    "train_seconds",
    "peak_memory_mb",
    "config",
    "git_commit",
    "torch",
    "device",
}


def run(task: str, attention: str, tmp_path: Path, data_dir: Path, *extra: str) -> dict:
    return train(compose_train(tiny_overrides(task, attention, tmp_path, data_dir) + list(extra)))


@pytest.mark.parametrize("attention", BACKENDS)
@pytest.mark.parametrize("task", TASKS)
def test_every_backend_trains_on_every_task(task, attention, tmp_path, data_dir):
    record = run(task, attention, tmp_path, data_dir)
    assert record["steps"] == 2
    assert RECORD_KEYS <= record.keys()
    assert (record["task"], record["attention"], record["budget"]) == (task, attention, "cpu")
    for key in ("val_acc", "test_acc", "test_acc_last"):
        assert 0.0 <= record[key] <= 1.0
    assert record["params"] > 0 and record["flops"] > 0
    written = json.loads((tmp_path / "results" / "runs" / f"cpu-{task}-{attention}-seed0.json").read_text())
    assert written["test_acc"] == record["test_acc"]
    assert written["config"]["model"]["dim"] == 16
    assert not list((tmp_path / "results" / "runs").glob(".*"))  # no temporary file left behind


def test_same_seed_same_metrics(tmp_path, data_dir):
    first = run("listops", "performer", tmp_path / "a", data_dir, "trainer.max_steps=6", "eval_every_steps=3")
    second = run(
        "listops", "performer", tmp_path / "b", data_dir, "trainer.max_steps=6", "eval_every_steps=3"
    )
    losses = [_column(tmp_path / name / "run" / "csv" / "metrics.csv", "train/loss") for name in ("a", "b")]
    assert losses[0] and losses[0] == losses[1]
    assert first["test_acc"] == second["test_acc"] and first["val_acc"] == second["val_acc"]
    third = run(
        "listops",
        "performer",
        tmp_path / "c",
        data_dir,
        "trainer.max_steps=6",
        "eval_every_steps=3",
        "seed=1",
    )
    assert _column(tmp_path / "c" / "run" / "csv" / "metrics.csv", "train/loss") != losses[0]
    assert third["seed"] == 1


def _column(path: Path, name: str) -> list[str]:
    with path.open() as file:
        return [row[name] for row in csv.DictReader(file) if row.get(name)]


def test_tensorboard_logs_loss_lr_and_accuracy(tmp_path, data_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run("listops", "linear", tmp_path, data_dir, "logger=tensorboard")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "val/acc", "test/acc"} <= tags


def test_wandb_runs_offline_without_an_account(tmp_path, data_dir, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    run("listops", "linear", tmp_path, data_dir, "logger=wandb")
    offline_runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1


def test_nan_loss_stops_cleanly_and_keeps_the_last_checkpoint(tmp_path, data_dir, monkeypatch):
    poison_training_loss(monkeypatch, step=2)
    with pytest.raises(NonFiniteLossError, match="at step 2.*last.ckpt"):
        run("listops", "luna", tmp_path, data_dir, "trainer.max_steps=5", "checkpoint_every_steps=1")
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "results" / "runs").exists()


def test_cls_pooling_and_sinusoidal_positions_train(tmp_path, data_dir):
    record = run("retrieval", "luna", tmp_path, data_dir, "model.pooling=cls", "model.positions=sinusoidal")
    assert record["steps"] == 2


def test_skip_finished_returns_the_existing_record_without_training(tmp_path, data_dir, monkeypatch):
    first = run("listops", "linear", tmp_path, data_dir)
    monkeypatch.setattr("lra.train.instantiate", lambda *a, **k: pytest.fail("trained again"))
    again = run("listops", "linear", tmp_path, data_dir, "skip_finished=true")
    assert again == json.loads(json.dumps(first))
