"""Fixture data for every task in one folder, and composition of the real training config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import lra.module
from tests.data.fixtures import (
    cifar_rows,
    write_cifar_parquet,
    write_imdb_parquet,
    write_listops_release,
    write_pathfinder_release,
    write_retrieval_release,
)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
TASKS = ("listops", "text", "retrieval", "image", "pathfinder", "pathx")
BACKENDS = ("softmax", "linear", "performer", "luna")

# A model small enough for seconds per run; backend sizes shrunk the same way.
TINY = [
    "model.dim=16",
    "model.num_layers=1",
    "model.num_heads=2",
    "model.ffn_dim=16",
    "batch_size=4",
    "trainer.max_steps=2",
    "eval_every_steps=2",
    "trainer.enable_progress_bar=false",
    "logger=csv",
    "trainer.log_every_n_steps=1",
]
TINY_BACKEND = {
    "performer": ["attention.num_features=8"],
    "luna": ["attention.num_projections=4", "attention.hidden=8"],
}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lra_data")
    write_listops_release(root, rows_per_split=12)
    write_retrieval_release(root, rows_per_split=8)
    write_pathfinder_release(root, resolution=32, num_images=20)
    write_pathfinder_release(root, resolution=128, num_images=10)
    reviews = [("a fine film, truly great", 1), ("dull and far too long", 0)] * 4
    write_imdb_parquet(root / "imdb", {"train": reviews, "test": reviews})
    write_cifar_parquet(root / "cifar10", {"train": cifar_rows(20), "test": cifar_rows(8, first_index=20)})
    return root


def compose_train(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def tiny_overrides(task: str, attention: str, tmp_path: Path, data_dir: Path) -> list[str]:
    return [
        f"task={task}",
        f"attention={attention}",
        f"data_dir={data_dir}",
        f"results_dir={tmp_path / 'results'}",
        f"run_dir={tmp_path / 'run'}",
        *TINY,
        *TINY_BACKEND.get(attention, []),
    ]


def poison_training_loss(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Make the training loss NaN at optimisation step `step` (0-based); evaluation losses stay real."""
    real_cross_entropy = lra.module.F.cross_entropy
    calls = {"train": 0}

    def poisoned(logits, labels):
        loss = real_cross_entropy(logits, labels)
        if torch.is_grad_enabled():
            calls["train"] += 1
            if calls["train"] == step + 1:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(lra.module.F, "cross_entropy", poisoned)
