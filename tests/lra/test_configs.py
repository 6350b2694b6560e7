"""The Hydra configs: every file instantiates, every combination composes and passes validation."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import get_class, get_method, instantiate
from omegaconf import OmegaConf

from lra.config import ConfigError, build_backend, validate
from luna import AttentionBackend
from tests.lra.conftest import BACKENDS, CONFIG_DIR, TASKS, compose_train

REPO = CONFIG_DIR.parent
BUDGETS = sorted(path.stem for path in (CONFIG_DIR / "budget").glob("*.yaml"))


def group_files(group: str) -> list[Path]:
    return sorted((CONFIG_DIR / group).glob("*.yaml"))


def test_groups_hold_the_documented_choices():
    assert {p.stem for p in group_files("task")} == set(TASKS)
    assert {p.stem for p in group_files("attention")} == set(BACKENDS)
    assert {"paper", "lra", "cpu"} <= set(BUDGETS)
    assert {"tensorboard", "csv", "wandb", "many"} <= {p.stem for p in group_files("logger")}
    assert {"cpu", "gpu", "ddp", "ddp_cpu"} <= {p.stem for p in group_files("trainer")}


@pytest.mark.parametrize("path", group_files("attention"), ids=lambda p: p.stem)
def test_every_attention_config_builds_a_backend(path):
    cfg = compose_train([f"attention={path.stem}"])
    backend = build_backend(cfg)(head_dim=8, num_heads=2)
    assert isinstance(backend, AttentionBackend)


@pytest.mark.parametrize("path", group_files("task"), ids=lambda p: p.stem)
def test_every_task_config_builds_its_datamodule(path, tmp_path):
    cfg = compose_train([f"task={path.stem}", f"data_dir={tmp_path}"])
    datamodule = instantiate(cfg.task.datamodule)
    assert datamodule.task == path.stem
    assert datamodule.max_length == cfg.task.datamodule.max_length


@pytest.mark.parametrize("group", ["trainer", "logger"])
def test_every_target_resolves(group):
    # Loaded raw: a GPU trainer cannot be built on a CPU machine, but its target must exist.
    targets = [
        t for path in group_files(group) for t in _targets(OmegaConf.to_container(OmegaConf.load(path)))
    ]
    assert targets
    for target in targets:
        assert callable(get_class(target) if target.rsplit(".", 1)[-1][0].isupper() else get_method(target))


def _targets(node):
    if isinstance(node, dict):
        if "_target_" in node:
            yield node["_target_"]
        for value in node.values():
            yield from _targets(value)


def test_cpu_trainer_instantiates():
    cfg = compose_train(["trainer=cpu"])
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert trainer.max_steps == cfg.hparams.max_steps


@pytest.mark.parametrize("budget, task", list(itertools.product(BUDGETS, TASKS)))
def test_every_budget_covers_every_task_and_validates(budget, task, tmp_path):
    cfg = compose_train([f"budget={budget}", f"task={task}", f"data_dir={tmp_path}"])
    validate(cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["trainer"]["max_steps"] == resolved["budget"]["tasks"][task]["max_steps"]
    assert resolved["model"]["dim"] % resolved["model"]["num_heads"] == 0


def test_paper_budget_is_the_parity_protocol(tmp_path):
    for task in TASKS:
        cfg = compose_train(["budget=paper", f"task={task}", f"data_dir={tmp_path}"])
        assert (cfg.model.num_layers, cfg.model.dim, cfg.model.num_heads, cfg.model.ffn_dim) == (
            2,
            64,
            2,
            128,
        )
        assert cfg.model.pooling == "mean"
    assert compose_train(["budget=paper", "task=pathfinder"]).trainer.max_steps == 60_000
    assert compose_train(["budget=paper", "task=text"]).batch_size == 16


def test_command_line_overrides_reach_every_layer(tmp_path):
    cfg = compose_train(
        ["attention=luna", "attention.num_projections=32", "trainer.max_steps=7", "model.dim=32"]
    )
    assert cfg.attention.num_projections == 32
    assert cfg.trainer.max_steps == 7
    assert build_backend(cfg)(head_dim=8, num_heads=2).phi.num_projections == 32


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.max_steps=0", "trainer.max_steps"),
        ("trainer.max_steps=abc", "trainer.max_steps"),
        ("model.num_heads=3", "must divide model.dim"),
        ("optim.lr=-1", "optim.lr"),
        ("optim.decay=step", "optim.decay"),
        ("batch_size=0", "batch_size"),
    ],
)
def test_invalid_values_are_named(override, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        validate(compose_train([override, f"data_dir={tmp_path}"]))


def test_missing_data_dir_names_the_prepare_command(tmp_path):
    with pytest.raises(ConfigError, match="python -m lra.prepare listops --data-dir"):
        validate(compose_train([f"data_dir={tmp_path / 'absent'}"]))


def _cli(*overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lra.train", *overrides], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_unknown_choice_exits_listing_the_available_ones():
    result = _cli("attention=nosuch")
    assert result.returncode != 0
    for name in BACKENDS:
        assert name in result.stderr


def test_invalid_value_exits_with_a_message_and_no_traceback(tmp_path):
    result = _cli("trainer.max_steps=0", f"data_dir={tmp_path}", f"run_dir={tmp_path / 'run'}")
    assert result.returncode == 2
    assert "trainer.max_steps must be an integer >= 1" in result.stderr
    assert "Traceback" not in result.stderr
