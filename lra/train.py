"""Train one LRA task with one attention backend: `python -m lra.train task=listops attention=luna`."""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hydra
import lightning
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from omegaconf import DictConfig, OmegaConf

from lra.atomic import write_json_atomic
from lra.callbacks import FeatureRedraw, PeriodicCheckpoint
from lra.config import ConfigError, build_model, validate
from lra.data.layout import DataError
from lra.distributed import check_world_size, plan_batches
from lra.flops import count_parameters
from lra.module import LRAClassifierModule, NonFiniteLossError
from lra.parity import breaches
from lra.parity import measure as measure_parity
from lra.records import environment, peak_memory_mb, record_name
from lra.resume import LAST_CHECKPOINT, AtomicCheckpointIO, RandomStateCheckpoint, checkpoint_to_resume

log = logging.getLogger(__name__)


def _callbacks(cfg: DictConfig, run_dir: Path) -> tuple[ModelCheckpoint, list[lightning.Callback]]:
    best = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best-step{step}",
        auto_insert_metric_name=False,
        monitor="val/acc",
        mode="max",
        save_top_k=1,
        # A resumed run that reaches the same best step again overwrites its file, not "-v1".
        enable_version_counter=False,
    )
    callbacks: list[lightning.Callback] = [
        best,
        FeatureRedraw(cfg.redraw_features_every_steps),
        RandomStateCheckpoint(),
    ]
    if cfg.checkpoint_every_steps is not None:
        callbacks.append(
            PeriodicCheckpoint(run_dir / "checkpoints" / LAST_CHECKPOINT, cfg.checkpoint_every_steps)
        )
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(RichProgressBar())
    return best, callbacks


def check_parity(cfg: DictConfig) -> dict[str, Any]:
    """This backend's cost against softmax; a breach stops the run unless parity.enforce is false."""
    own = next(cost for cost in measure_parity(cfg) if cost.attention == cfg.attention.name)
    found = breaches([own], cfg)
    if found and cfg.parity.enforce:
        raise ConfigError(
            f"compute parity broken for task={cfg.task.name} budget={cfg.budget.name}: {'; '.join(found)}. "
            "See `python -m lra.parity`; set parity.enforce=false to run anyway (the record notes it)."
        )
    return {
        "flops": own.flops,
        "param_ratio": round(own.param_ratio, 4),
        "flop_ratio": round(own.flop_ratio, 4),
        "enforced": bool(cfg.parity.enforce),
        "breaches": found,
    }


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, test at the last step and at the best validation checkpoint, write the run record."""
    validate(cfg)
    record_path = (
        Path(cfg.results_dir)
        / "runs"
        / record_name(cfg.budget.name, cfg.task.name, cfg.attention.name, cfg.seed)
    )
    if cfg.skip_finished and record_path.is_file():
        log.info("skipping: %s already holds this run's record", record_path)
        return json.loads(record_path.read_text())
    lightning.seed_everything(cfg.seed, workers=True)
    run_dir = Path(cfg.run_dir)
    plan = plan_batches(cfg)
    datamodule = instantiate(cfg.task.datamodule, batch_size=plan.per_device_batch)
    model = build_model(cfg, datamodule)
    parity = check_parity(cfg)
    max_steps = cfg.trainer.max_steps
    module = LRAClassifierModule(
        model,
        datamodule.num_classes,
        total_steps=max_steps,
        nonfinite_loss=cfg.nonfinite_loss,
        **OmegaConf.to_container(cfg.optim, resolve=True),
    )
    loggers = [instantiate(logger) for logger in (cfg.get("logger") or {}).values()]
    best, callbacks = _callbacks(cfg, run_dir)
    trainer = instantiate(
        cfg.trainer,
        val_check_interval=plan.batches_for(min(cfg.eval_every_steps, max_steps)),
        accumulate_grad_batches=plan.accumulate_grad_batches,
        default_root_dir=str(run_dir),
        logger=loggers or False,
        callbacks=callbacks,
    )
    check_world_size(plan, trainer)
    if cfg.nonfinite_loss == "skip" and trainer.world_size > 1:
        raise ConfigError(
            "nonfinite_loss=skip needs a single process (Lightning cannot skip a step on some ranks "
            "only); use nonfinite_loss=stop with DDP"
        )
    trainer.strategy.checkpoint_io = AtomicCheckpointIO()
    ckpt_path = checkpoint_to_resume(cfg.ckpt_path, cfg.resume, run_dir)

    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # Lightning cannot see that the datamodule restores the train order itself (lra/data/sampler.py).
            warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before")
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except NonFiniteLossError as error:
        kept = sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt"))
        where = (
            f"checkpoints kept in {run_dir / 'checkpoints'}: {', '.join(kept)}"
            if kept
            else "no checkpoint had been written yet"
        )
        raise NonFiniteLossError(f"{error}; stopped ({where}). Lower optim.lr or check the data.") from None
    train_seconds = time.perf_counter() - started
    test_last = trainer.test(module, datamodule=datamodule, verbose=False)[0]["test/acc"]
    best_path = best.best_model_path or None
    test_best = (
        trainer.test(module, datamodule=datamodule, ckpt_path=best_path, verbose=False)[0]["test/acc"]
        if best_path
        else test_last
    )

    record = {
        "task": cfg.task.name,
        "attention": cfg.attention.name,
        "budget": cfg.budget.name,
        "seed": cfg.seed,
        "params": count_parameters(model),
        "flops": parity["flops"],
        "parity": parity,
        "steps": trainer.global_step,
        "distributed": plan.as_record(),
        "skipped_batches": module.skipped_batches,
        "resumed_from": ckpt_path,
        "val_acc": float(best.best_model_score) if best.best_model_score is not None else None,
        "test_acc": float(test_best),
        "test_acc_last": float(test_last),
        "train_seconds": round(train_seconds, 2),
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "best_checkpoint": best_path,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": OmegaConf.to_container(cfg, resolve=True),
        **environment(),
    }
    if trainer.is_global_zero:
        write_json_atomic(record_path, record)
        log.info("run record written to %s", record_path)
    return record


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> float:
    try:
        return train(cfg)["test_acc"]
    except (ConfigError, DataError, NonFiniteLossError) as error:
        # These messages are complete; a traceback would only bury them.
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
