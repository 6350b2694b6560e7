"""Training callbacks: periodic redraw of random attention features."""

from __future__ import annotations

import lightning

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
