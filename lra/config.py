"""Checks of a composed training config, and construction of the backend and model it describes."""

from __future__ import annotations

import types
import typing
from pathlib import Path

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lra.model import build_classifier
from lra.module import NONFINITE_LOSS_ACTIONS
from lra.resume import RESUME_MODES
from lra.schedule import DECAYS


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and what to use instead."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _positive_int(cfg: DictConfig, key: str, minimum: int = 1) -> None:
    value = OmegaConf.select(cfg, key)
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
        f"{key} must be an integer >= {minimum}, got {value!r}",
    )


def _matches(value: object, annotation: object) -> bool:
    """Whether a config value fits a simple constructor annotation (anything else is not checked)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_matches(value, option) for option in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    return True


def _check_attention_types(cfg: DictConfig) -> None:
    """Each attention.* option against the type its backend's constructor declares."""
    hints = typing.get_type_hints(get_class(cfg.attention._target_).__init__)
    for key, value in cfg.attention.items():
        if key in hints and not _matches(value, hints[key]):
            expected = getattr(hints[key], "__name__", str(hints[key]))
            raise ConfigError(f"attention.{key} must be of type {expected}, got {value!r}")


def validate(cfg: DictConfig) -> None:
    """Stop before any work on values that cannot train, naming the key."""
    for key in (
        "trainer.max_steps",
        "batch_size",
        "eval_every_steps",
        "model.dim",
        "model.num_layers",
        "model.num_heads",
        "model.ffn_dim",
        "task.datamodule.max_length",
    ):
        _positive_int(cfg, key)
    _positive_int(cfg, "optim.warmup_steps", minimum=0)
    if cfg.checkpoint_every_steps is not None:
        _positive_int(cfg, "checkpoint_every_steps")
    _require(
        cfg.model.dim % cfg.model.num_heads == 0,
        f"model.num_heads ({cfg.model.num_heads}) must divide model.dim ({cfg.model.dim})",
    )
    lr = cfg.optim.lr
    _require(isinstance(lr, (int, float)) and lr > 0, f"optim.lr must be a positive number, got {lr!r}")
    _require(
        cfg.optim.decay in DECAYS, f"optim.decay must be one of {sorted(DECAYS)}, got {cfg.optim.decay!r}"
    )
    dropout = cfg.model.dropout
    _require(
        isinstance(dropout, (int, float)) and 0 <= dropout < 1,
        f"model.dropout must be in [0, 1), got {dropout!r}",
    )
    _check_attention_types(cfg)
    data_dir = Path(cfg.data_dir)
    _require(
        data_dir.is_dir(),
        f"data_dir {data_dir} does not exist. Prepare the data with "
        f"`python -m lra.prepare {cfg.task.name} --data-dir {data_dir}`, or point data_dir=... "
        "(or the LRA_DATA_DIR environment variable) at it.",
    )
    _require(cfg.resume in RESUME_MODES, f"resume must be one of {RESUME_MODES}, got {cfg.resume!r}")
    _require(
        cfg.nonfinite_loss in NONFINITE_LOSS_ACTIONS,
        f"nonfinite_loss must be one of {NONFINITE_LOSS_ACTIONS}, got {cfg.nonfinite_loss!r}",
    )
    if cfg.ckpt_path is not None:
        _require(Path(cfg.ckpt_path).is_file(), f"ckpt_path {cfg.ckpt_path} is not a file")


def build_backend(cfg: DictConfig):
    """The attention backend as a partial, from the attention config without its `name`."""
    options = OmegaConf.to_container(cfg.attention, resolve=True)
    options.pop("name")
    return instantiate(options)


def build_model(cfg: DictConfig, datamodule) -> nn.Module:
    """The classifier of `cfg.model` with the `cfg.attention` backend, sized for the task's data."""
    try:
        return build_classifier(
            vocab_size=datamodule.vocab_size,
            max_length=datamodule.max_length,
            num_classes=datamodule.num_classes,
            paired=datamodule.paired,
            backend=build_backend(cfg),
            **cfg.model,
        )
    except (TypeError, ValueError) as error:
        raise ConfigError(f"cannot build the model from model.* and attention.*: {error}") from error
