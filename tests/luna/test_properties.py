"""Behaviour every backend promises: padding invariance, causality, streaming, state, stability."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from luna import LinearAttention, LunaAttention, PerformerAttention, SoftmaxAttention
from tests.luna.cases import CASES, LINEAR_CASES, assert_close, build, qkv

TOL = 1e-9
ALL = pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
LINEAR = pytest.mark.parametrize("case", LINEAR_CASES, ids=lambda c: c.id)


@ALL
@pytest.mark.parametrize("garbage", [1e4, float("inf"), float("nan")], ids=["huge", "inf", "nan"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_padded_keys_have_no_influence(case, garbage, causal):
    module = build(case, 8, 2, chunk_size=4)
    lengths = [11, 6, 1]
    q, k, v = qkv(3, 2, 11, 8, seed=5)
    mask = torch.arange(11)[None, :] < torch.tensor(lengths)[:, None]
    pad = ~mask[:, None, :, None]
    dirty = [t.masked_fill(pad, garbage) for t in (q, k, v)]
    out = module(*dirty, key_padding_mask=mask, causal=causal)
    for row, length in enumerate(lengths):
        # The same sequence alone, without any padding, is the ground truth.
        alone = module(
            q[row : row + 1, :, :length],
            k[row : row + 1, :, :length],
            v[row : row + 1, :, :length],
            causal=causal,
        )
        assert_close(out[row : row + 1, :, :length], alone, TOL, f"row {row}")


@ALL
def test_gradients_stay_finite_with_garbage_in_padding(case):
    module = build(case, 8, 2, chunk_size=4)
    q, k, v = qkv(2, 2, 7, 8, seed=6, requires_grad=True)
    mask = torch.tensor([[True] * 7, [True] * 3 + [False] * 4])
    pad = ~mask[:, None, :, None]
    dirty = [t.masked_fill(pad, 1e4) for t in (q, k, v)]
    out = module(*dirty, key_padding_mask=mask)
    (out * mask[:, None, :, None]).sum().backward()
    for tensor in (q, k, v, *module.parameters()):
        assert torch.isfinite(tensor.grad).all()


@ALL
def test_causal_output_equals_attention_over_the_prefix(case):
    module = build(case, 8, 2, chunk_size=3)
    q, k, v = qkv(2, 2, 10, 8, seed=7)
    causal = module(q, k, v, causal=True)
    for t in range(10):
        prefix = module(q[:, :, : t + 1], k[:, :, : t + 1], v[:, :, : t + 1])
        assert_close(causal[:, :, t], prefix[:, :, t], TOL, f"position {t}")


@LINEAR
@pytest.mark.parametrize(
    "chunks", [[1] * 12, [3, 1, 5, 2, 1], [12], [7, 5]], ids=["tokens", "uneven", "whole", "two"]
)
def test_streaming_in_chunks_reproduces_causal(case, chunks):
    module = build(case, 8, 2, chunk_size=4)
    q, k, v = qkv(2, 2, sum(chunks), 8, seed=8)
    expected = module(q, k, v, causal=True)
    state, outputs, start = None, [], 0
    for size in chunks:
        end = start + size
        out, state = module.step(q[:, :, start:end], k[:, :, start:end], v[:, :, start:end], state)
        outputs.append(out)
        start = end
    assert_close(torch.cat(outputs, dim=2), expected, TOL, "streamed")


def test_performer_streaming_survives_a_key_far_larger_than_the_past():
    module = PerformerAttention(head_dim=8, num_heads=1, num_features=64).double()
    q, k, v = qkv(1, 1, 6, 8, seed=9)
    k[:, :, 4] *= 40.0  # its logits dwarf everything before it: the state must be rescaled, not overflow
    expected = module(q, k, v, causal=True)
    state, outputs = None, []
    for t in range(6):
        out, state = module.step(q[:, :, t : t + 1], k[:, :, t : t + 1], v[:, :, t : t + 1], state)
        outputs.append(out)
    assert_close(torch.cat(outputs, dim=2), expected, 1e-9, "streamed")


@ALL
def test_state_dict_round_trip(case):
    module = build(case, 8, 2, seed=10)
    if isinstance(module, PerformerAttention):
        module.redraw()
    restored = build(case, 8, 2, seed=11)
    restored.load_state_dict(module.state_dict())
    q, k, v = qkv(2, 2, 9, 8, seed=12)
    assert torch.equal(module(q, k, v), restored(q, k, v))


def test_performer_features_are_seeded_buffers_and_redraw_is_reproducible():
    a = PerformerAttention(head_dim=16, num_heads=2, num_features=32, seed=3)
    b = PerformerAttention(head_dim=16, num_heads=2, num_features=32, seed=3)
    assert "phi.projection" in a.state_dict() and "phi.draws" in a.state_dict()
    assert torch.equal(a.phi.projection, b.phi.projection)
    first = a.phi.projection.clone()
    a.redraw()
    b.redraw()
    assert not torch.equal(a.phi.projection, first)
    assert torch.equal(a.phi.projection, b.phi.projection)
    assert int(a.phi.draws) == 1


def test_performer_blocks_are_orthogonal():
    projection = PerformerAttention(head_dim=16, num_heads=1, num_features=40).phi.projection.double()
    directions = projection / projection.norm(dim=1, keepdim=True)
    for start in (0, 16):
        block = directions[start : start + 16]
        assert_close(block @ block.T, torch.eye(16, dtype=torch.float64), 1e-6, "block gram")


def test_performer_error_against_softmax_shrinks_with_more_features():
    q, k, v = qkv(2, 2, 64, 16, seed=13)
    q, k = 0.5 * q, 0.5 * k
    exact = SoftmaxAttention(head_dim=16, num_heads=2)(q, k, v)
    errors = []
    for num_features in (8, 64, 512):
        runs = [
            PerformerAttention(head_dim=16, num_heads=2, num_features=num_features, seed=seed).double()(
                q, k, v
            )
            for seed in range(4)
        ]
        errors.append(sum(float((r - exact).norm() / exact.norm()) for r in runs) / len(runs))
    assert errors[0] > errors[1] > errors[2], errors
    # Monte Carlo error falls like 1 / sqrt(m): 64x the features should cut it well below a third.
    assert errors[2] < 0.3 * errors[0], errors


# Default options, except chunks small enough that the causal form crosses several of them.
DEFAULT_BACKENDS = [
    SoftmaxAttention,
    partial(LinearAttention, chunk_size=8),
    partial(PerformerAttention, chunk_size=8),
    partial(LunaAttention, chunk_size=8),
    partial(LunaAttention, chunk_size=8, shared_channels=False, envelope=True, rms_target=0.1),
]


@pytest.mark.parametrize(
    "backend", DEFAULT_BACKENDS, ids=["softmax", "linear", "performer", "luna", "luna-all-options"]
)
@pytest.mark.parametrize("scale", [1e2, 1e4])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_large_norm_inputs_stay_finite_in_float32(backend, scale, causal):
    torch.manual_seed(0)
    module = backend(head_dim=16, num_heads=2)
    q, k, v = (t.float() * scale for t in qkv(2, 2, 40, 16, seed=14))
    mask = torch.arange(40)[None, :] < torch.tensor([40, 25])[:, None]
    assert torch.isfinite(module(q, k, v, key_padding_mask=mask, causal=causal)).all()


@pytest.mark.parametrize(
    "cls, option",
    [
        (SoftmaxAttention, "dropout"),
        (LinearAttention, "num_features"),
        (PerformerAttention, "nb_features"),
        (LunaAttention, "num_projection"),
    ],
)
def test_unknown_options_raise(cls, option):
    with pytest.raises(TypeError, match=option):
        cls(head_dim=8, num_heads=2, **{option: 3})


@pytest.mark.parametrize("bad", [{"head_dim": 0}, {"num_heads": -1}, {"chunk_size": 0}])
def test_invalid_sizes_raise_with_the_name(bad):
    options = {"head_dim": 8, "num_heads": 2, **bad}
    with pytest.raises(ValueError, match=next(iter(bad))):
        LinearAttention(**options)


def test_bad_mask_is_explained():
    q, k, v = qkv(2, 1, 5, 4)
    with pytest.raises(ValueError, match="key_padding_mask"):
        LinearAttention(head_dim=4, num_heads=1)(q, k, v, key_padding_mask=torch.ones(2, 5))


@LINEAR
def test_feature_maps_are_non_negative(case):
    module = build(case, 8, 2)
    q, _, _ = qkv(2, 2, 20, 8, seed=15)
    features = module.feature_map(5 * q)
    assert features.shape[:3] == (2, 2, 20)
    assert (features >= 0).all()
