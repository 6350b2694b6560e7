"""Compute parity: parameters and training FLOPs of every backend under one task and budget.

`python -m lra.parity task=<task> budget=<budget> [any training override]` prints the table and
exits 1 when a backend breaks the budget's limits (see `parity` in configs/train.yaml).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from lra.config import ConfigError, build_model
from lra.flops import count_parameters, training_step_flops

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
REFERENCE = "softmax"


@dataclass(frozen=True)
class BackendCost:
    attention: str
    params: int
    flops: int
    param_ratio: float
    flop_ratio: float


def attention_configs() -> dict[str, DictConfig]:
    """Every backend of configs/attention/, with its default options."""
    return {path.stem: OmegaConf.load(path) for path in sorted((CONFIG_DIR / "attention").glob("*.yaml"))}


def _with_attention(cfg: DictConfig, attention: DictConfig) -> DictConfig:
    variant = cfg.copy()
    OmegaConf.set_struct(variant, False)
    variant.attention = attention
    return variant


def measure(cfg: DictConfig) -> list[BackendCost]:
    """Parameters and FLOPs of one training step (full batch, task length) for the configured backend
    and every other backend at its defaults, with ratios to softmax."""
    datamodule = instantiate(cfg.task.datamodule)
    backends = attention_configs()
    backends[cfg.attention.name] = cfg.attention  # the run's own options, overrides included
    counts = {}
    for name, attention in backends.items():
        model = build_model(_with_attention(cfg, attention), datamodule)
        flops = training_step_flops(
            model, cfg.batch_size, datamodule.max_length, datamodule.vocab_size, datamodule.paired
        )
        counts[name] = (count_parameters(model), flops)
    base_params, base_flops = counts[REFERENCE]
    order = [REFERENCE] + sorted(name for name in counts if name != REFERENCE)
    return [
        BackendCost(
            name,
            counts[name][0],
            counts[name][1],
            counts[name][0] / base_params,
            counts[name][1] / base_flops,
        )
        for name in order
    ]


def breaches(costs: list[BackendCost], cfg: DictConfig, only: str | None = None) -> list[str]:
    """What breaks the limits, one sentence each; `only` restricts the check to one backend."""
    limits = cfg.parity
    found = []
    for cost in costs:
        if only is not None and cost.attention != only:
            continue
        if cost.param_ratio > limits.max_param_ratio:
            found.append(
                f"{cost.attention} has {cost.param_ratio:.2f}x the parameters of {REFERENCE} "
                f"(limit {limits.max_param_ratio}x)"
            )
        if cost.flop_ratio > limits.max_flop_ratio:
            found.append(
                f"{cost.attention} needs {cost.flop_ratio:.2f}x the training FLOPs of {REFERENCE} "
                f"(limit {limits.max_flop_ratio}x)"
            )
    return found


def render(costs: list[BackendCost], cfg: DictConfig) -> Table:
    table = Table(
        title=f"Compute parity: task={cfg.task.name} budget={cfg.budget.name} "
        f"(batch {cfg.batch_size}, {cfg.trainer.max_steps} steps, length {cfg.task.datamodule.max_length})"
    )
    for column in ("attention", "params", f"vs {REFERENCE}", "GFLOPs / step", f"vs {REFERENCE}"):
        table.add_column(column, justify="left" if column == "attention" else "right")
    for cost in costs:
        table.add_row(
            cost.attention,
            f"{cost.params:,}",
            f"{cost.param_ratio:.3f}",
            f"{cost.flops / 1e9:,.2f}",
            f"{cost.flop_ratio:.3f}",
        )
    return table


def main(argv: list[str] | None = None) -> int:
    overrides = sys.argv[1:] if argv is None else argv
    console = Console()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name="train", overrides=overrides)
        costs = measure(cfg)
    except (ConfigError, HydraException) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    console.print(render(costs, cfg))
    found = breaches(costs, cfg)
    for line in found:
        console.print(f"[red]breach:[/red] {line}")
    if not found:
        console.print("every backend is within the budget's limits")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
