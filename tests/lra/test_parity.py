"""Compute parity: counts checked by hand, breaches refused, the CLI's exit codes."""

from __future__ import annotations

import subprocess
import sys
from functools import partial

import pytest

from lra.config import ConfigError
from lra.flops import count_parameters, training_step_flops
from lra.model import build_classifier
from lra.parity import breaches, measure
from lra.train import check_parity
from luna import LinearAttention
from tests.lra.conftest import CONFIG_DIR, compose_train


def test_linear_model_counts_match_a_hand_count():
    vocab, length, dim, ffn, classes, batch, heads = 11, 12, 8, 16, 3, 4, 2
    model = build_classifier(
        vocab_size=vocab,
        max_length=length,
        num_classes=classes,
        paired=False,
        dim=dim,
        num_layers=1,
        num_heads=heads,
        ffn_dim=ffn,
        dropout=0.0,
        backend=partial(LinearAttention),
        positions="learned",
        pooling="mean",
    )
    linear_params = lambda i, o: i * o + o  # noqa: E731
    expected_params = (
        vocab * dim
        + length * dim  # token and position tables
        + 2 * dim
        + linear_params(dim, 3 * dim)
        + linear_params(dim, dim)  # norm, qkv, out
        + 2 * dim
        + linear_params(dim, ffn)
        + linear_params(ffn, dim)  # norm, FFN
        + 2 * dim  # final norm
        + linear_params(dim, ffn)
        + linear_params(ffn, classes)  # head
    )
    assert count_parameters(model) == expected_params

    tokens, head_dim = batch * length, dim // heads
    # Every matrix product costs 2*M*K*N forward and twice that backward (input and weight grads).
    dense = 6 * tokens * (dim * 3 * dim + dim * dim + dim * ffn + ffn * dim) + 6 * batch * (
        dim * ffn + ffn * classes
    )
    # phi(K)^T V, phi(Q) (phi(K)^T V) and phi(Q) (phi(K)^T 1) per head, forward and backward.
    kernel = 6 * batch * heads * length * head_dim * (head_dim + head_dim + 1)
    assert training_step_flops(model, batch, length, vocab, paired=False) == dense + kernel


def test_default_backends_are_within_parity_on_the_paper_budget(tmp_path):
    cfg = compose_train(["budget=paper", "task=listops", f"data_dir={tmp_path}"])
    costs = measure(cfg)
    assert [cost.attention for cost in costs] == ["softmax", "linear", "luna", "performer"]
    assert costs[0].param_ratio == costs[0].flop_ratio == 1.0
    assert breaches(costs, cfg) == []
    # At 2000 tokens every linear backend is several times cheaper than softmax.
    assert all(cost.flop_ratio < 0.5 for cost in costs[1:])


def test_a_backend_over_budget_refuses_to_start_unless_told(tmp_path):
    heavy = ["attention=performer", "attention.num_features=8192", "task=listops", f"data_dir={tmp_path}"]
    with pytest.raises(
        ConfigError, match="performer needs .*x the training FLOPs of softmax.*parity.enforce=false"
    ):
        check_parity(compose_train(heavy))
    allowed = check_parity(compose_train(heavy + ["parity.enforce=false"]))
    assert not allowed["enforced"] and allowed["flop_ratio"] > 1.1 and allowed["breaches"]


def test_cli_prints_the_table_and_signals_breaches(tmp_path):
    def cli(*overrides):
        return subprocess.run(
            [sys.executable, "-m", "lra.parity", *overrides, f"data_dir={tmp_path}"],
            cwd=CONFIG_DIR.parent,
            capture_output=True,
            text=True,
            timeout=300,
        )

    ok = cli("task=image", "budget=paper")
    assert ok.returncode == 0, ok.stderr
    for name in ("softmax", "linear", "performer", "luna"):
        assert name in ok.stdout
    breach = cli("task=image", "budget=paper", "attention=luna", "attention.num_projections=1024")
    assert breach.returncode == 1 and "breach" in breach.stdout
    bad = cli("task=nosuch")
    assert bad.returncode == 2 and "nosuch" in bad.stderr
