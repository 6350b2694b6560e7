"""Training callbacks: periodic redraw of random attention features, periodic resumable checkpoints."""

from __future__ import annotations

from pathlib import Path

import lightning
from lightning.pytorch.callbacks import Checkpoint

from luna import PerformerAttention


class FeatureRedraw(lightning.Callback):
    """Redraws every Performer's random features each `every_n_steps` optimizer steps."""

    def __init__(self, every_n_steps: int) -> None:
        if every_n_steps <= 0:
            raise ValueError(f"every_n_steps must be positive, got {every_n_steps}")
        self.every_n_steps = every_n_steps

    def on_train_batch_start(self, trainer, pl_module, batch, batch_index) -> None:
        step = trainer.global_step
        if step > 0 and step % self.every_n_steps == 0:
            for module in pl_module.modules():
                if isinstance(module, PerformerAttention):
                    module.redraw()


class PeriodicCheckpoint(Checkpoint):
    """Writes `path` (the run's last.ckpt) every `every_n_steps` steps and when training ends.

    On a step that is followed by validation it waits for the validation to finish: Lightning
    resuming from a checkpoint taken between a step and its validation skips that validation, and
    the best score it would have found would be missed. Being a `Checkpoint`, Lightning runs it
    after the best-model checkpoint, so the file holds that callback's updated best score.
    """

    def __init__(self, path: Path, every_n_steps: int) -> None:
        if every_n_steps <= 0:
            raise ValueError(f"every_n_steps must be positive, got {every_n_steps}")
        self.path = Path(path)
        self.every_n_steps = every_n_steps
        self._saved_at_step = -1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_index) -> None:
        # Lightning's own test of whether validation runs after this batch, so the two never disagree.
        epoch_loop = trainer.fit_loop.epoch_loop
        if not epoch_loop._should_check_val_fx(trainer.fit_loop._data_fetcher):
            self._save_if_due(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._save_if_due(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        # A kill while testing then costs no training at all.
        self._save(trainer)

    def _save_if_due(self, trainer: lightning.Trainer) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)

    def _save(self, trainer: lightning.Trainer) -> None:
        if trainer.global_step != self._saved_at_step:
            trainer.save_checkpoint(self.path)
            self._saved_at_step = trainer.global_step
