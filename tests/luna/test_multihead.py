"""MultiHeadAttention: projections around any backend, streaming, and its error messages."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from luna import (
    LinearAttention,
    LunaAttention,
    MultiHeadAttention,
    PerformerAttention,
    SoftmaxAttention,
)
from tests.luna.cases import assert_close

BACKENDS = [SoftmaxAttention, LinearAttention, PerformerAttention, partial(LunaAttention, num_projections=8)]
IDS = ["softmax", "linear", "performer", "luna"]


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_shapes_and_backend_built_per_head(backend):
    torch.manual_seed(0)
    layer = MultiHeadAttention(dim=32, num_heads=4, backend=backend)
    assert layer.attention.head_dim == 8 and layer.attention.num_heads == 4
    x = torch.randn(3, 10, 32)
    mask = torch.arange(10)[None, :] < torch.tensor([10, 4, 7])[:, None]
    out = layer(x, key_padding_mask=mask)
    assert out.shape == (3, 10, 32) and torch.isfinite(out).all()


@pytest.mark.parametrize("backend", BACKENDS[1:], ids=IDS[1:])
def test_streaming_matches_causal_forward(backend):
    torch.manual_seed(0)
    layer = MultiHeadAttention(dim=16, num_heads=2, backend=backend).double()
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    expected = layer(x, causal=True)
    state, outputs = None, []
    for start, end in [(0, 1), (1, 5), (5, 6), (6, 9)]:
        out, state = layer.step(x[:, start:end], state)
        outputs.append(out)
    assert_close(torch.cat(outputs, dim=1), expected, 1e-10, "streamed")


def test_softmax_has_no_recurrent_form():
    layer = MultiHeadAttention(dim=8, num_heads=2, backend=SoftmaxAttention)
    with pytest.raises(TypeError, match="recurrent"):
        layer.step(torch.randn(1, 3, 8))


def test_heads_must_divide_dim():
    with pytest.raises(ValueError, match="divide"):
        MultiHeadAttention(dim=10, num_heads=4, backend=LinearAttention)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_bfloat16_autocast_runs_and_stays_close(backend):
    torch.manual_seed(0)
    layer = MultiHeadAttention(dim=32, num_heads=4, backend=backend)
    x = torch.randn(2, 50, 32)
    reference = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert torch.isfinite(out).all()
    assert_close(out.float(), reference, 0.05, "bf16")
