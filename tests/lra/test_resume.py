"""Interrupted runs resumed from their checkpoints end exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning
import pytest
import torch

import lra.module
import lra.train
from lra.train import train
from tests.lra.conftest import compose_train, poison_training_loss, tiny_overrides

REPO = Path(__file__).resolve().parents[2]
# 12 training rows in batches of 4: 3 batches an epoch, so 10 steps cross 3 epoch boundaries and
# the interruptions below land mid-epoch, at an epoch's end and on a validation step.
RUN = [
    "trainer.max_steps=10",
    "eval_every_steps=4",
    "checkpoint_every_steps=2",
    "model.dropout=0.1",
    "redraw_features_every_steps=3",
]


class Interrupt(Exception):
    """Stands in for a kill: raised from inside the training loop."""


class InterruptAtStep(lightning.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_index) -> None:
        if trainer.global_step == self.step:
            raise Interrupt(f"interrupted before step {self.step + 1}")


def overrides(tmp_path: Path, data_dir: Path, attention: str = "performer", *extra: str) -> list[str]:
    return tiny_overrides("listops", attention, tmp_path, data_dir) + RUN + list(extra)


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]


def assert_same_run(resumed: dict, uninterrupted: dict, resumed_dir: Path, uninterrupted_dir: Path) -> None:
    for key in ("steps", "val_acc", "test_acc", "test_acc_last", "skipped_batches"):
        assert resumed[key] == uninterrupted[key], key
    assert Path(resumed["best_checkpoint"]).name == Path(uninterrupted["best_checkpoint"]).name
    expected = final_weights(uninterrupted_dir)
    for name, value in final_weights(resumed_dir).items():
        assert torch.equal(value, expected[name]), name


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[dict, Path]:
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    return train(compose_train(overrides(tmp_path, data_dir))), tmp_path / "run"


@pytest.mark.parametrize("stop_at", [3, 4, 6, 9])
def test_resume_after_an_interruption_matches_the_uninterrupted_run(
    stop_at, uninterrupted, tmp_path, data_dir, monkeypatch
):
    real_callbacks = lra.train._callbacks

    def with_interrupt(cfg, run_dir):
        best, callbacks = real_callbacks(cfg, run_dir)
        return best, [*callbacks, InterruptAtStep(stop_at)]

    monkeypatch.setattr(lra.train, "_callbacks", with_interrupt)
    with pytest.raises(Interrupt):
        train(compose_train(overrides(tmp_path, data_dir)))
    monkeypatch.setattr(lra.train, "_callbacks", real_callbacks)
    assert not (tmp_path / "results" / "runs").exists()

    resumed = train(compose_train(overrides(tmp_path, data_dir, "performer", "resume=auto")))
    assert resumed["resumed_from"] == str(tmp_path / "run" / "checkpoints" / "last.ckpt")
    record, run_dir = uninterrupted
    assert_same_run(resumed, record, tmp_path / "run", run_dir)
    assert len(list((tmp_path / "results" / "runs").iterdir())) == 1


def test_resume_auto_without_a_checkpoint_starts_fresh_and_never_ignores_one(tmp_path, data_dir):
    fresh = train(compose_train(overrides(tmp_path, data_dir, "linear", "resume=auto")))
    assert fresh["resumed_from"] is None and fresh["steps"] == 10
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()  # also written at the end
    again = train(compose_train(overrides(tmp_path, data_dir, "linear", "resume=never")))
    assert again["resumed_from"] is None


class SnapshotAtStep(lightning.Callback):
    """Records whether the weights and the optimizer state changed during one step."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.changed: dict[str, bool] = {}

    def _state(self, trainer, pl_module) -> list[torch.Tensor]:
        optimizer = trainer.optimizers[0].state_dict()["state"]
        moments = [value.clone() for state in optimizer.values() for value in state.values()]
        return [p.detach().clone() for p in pl_module.parameters()] + moments

    def on_train_batch_start(self, trainer, pl_module, batch, batch_index) -> None:
        if trainer.global_step == self.step:
            self.before = self._state(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_index) -> None:
        if trainer.global_step == self.step + 1:
            after = self._state(trainer, pl_module)
            self.changed["any"] = any(not torch.equal(a, b) for a, b in zip(self.before, after))


@pytest.mark.parametrize("poisoned_step, expect_change", [(2, False), (1, True)])
def test_skipped_batches_leave_weights_and_optimizer_alone(
    poisoned_step, expect_change, tmp_path, data_dir, monkeypatch
):
    poison_training_loss(monkeypatch, step=2)
    snapshot = SnapshotAtStep(poisoned_step)
    real_callbacks = lra.train._callbacks
    monkeypatch.setattr(
        lra.train,
        "_callbacks",
        lambda cfg, run_dir: (lambda b, c: (b, [*c, snapshot]))(*real_callbacks(cfg, run_dir)),
    )
    record = train(compose_train(overrides(tmp_path, data_dir, "linear", "nonfinite_loss=skip")))
    assert record["steps"] == 10 and record["skipped_batches"] == 1
    assert snapshot.changed["any"] is expect_change
    assert record["test_acc"] is not None


def _cli(tmp_path: Path, data_dir: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "lra.train", *overrides(tmp_path, data_dir, "luna", *extra)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_checkpoints", [1, 3, 6])
def test_sigkill_at_any_moment_then_resume_gives_one_record_and_the_same_run(
    kill_after_checkpoints, tmp_path, data_dir
):
    extra = ("trainer.max_steps=24", "checkpoint_every_steps=1", "resume=auto")
    reference = _cli(tmp_path / "reference", data_dir, *extra)
    assert reference.wait(timeout=300) == 0, reference.stderr.read()

    killed = _cli(tmp_path / "killed", data_dir, *extra)
    last = tmp_path / "killed" / "run" / "checkpoints" / "last.ckpt"
    seen, previous = 0, None
    while seen < kill_after_checkpoints and killed.poll() is None:
        stamp = last.stat().st_mtime_ns if last.exists() else None
        if stamp != previous:
            seen, previous = seen + 1, stamp
        time.sleep(0.01)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=60)

    resumed = _cli(tmp_path / "killed", data_dir, *extra)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    records = list((tmp_path / "killed" / "results" / "runs").iterdir())
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    expected = json.loads(next((tmp_path / "reference" / "results" / "runs").iterdir()).read_text())
    assert record["steps"] == 24
    assert_same_run(record, expected, tmp_path / "killed" / "run", tmp_path / "reference" / "run")
