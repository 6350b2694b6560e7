"""Every backend against its naive quadratic reference: outputs and all gradients, masks, causal."""

from __future__ import annotations

import pytest
import torch

from luna import native
from tests.luna.cases import CASES, assert_close, build, make_mask, qkv

# (batch, heads, tokens, head_dim, chunk_size): awkward sizes on purpose.
SHAPES = [(2, 3, 17, 8, 5), (1, 1, 1, 4, 64), (2, 2, 33, 16, 64), (1, 2, 64, 8, 16)]
TOL = 1e-9  # float64 throughout


def _compare(case, shape, mask_kind, causal):
    batch, heads, length, dim, chunk = shape
    module = build(case, dim, heads, chunk)
    mask = make_mask(mask_kind, batch, length, seed=1)
    real_rows = torch.ones(batch, length, dtype=torch.bool) if mask is None else mask
    weights = torch.randn(
        batch, heads, length, dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    weights = weights * real_rows[:, None, :, None]  # padded query rows carry no meaning

    results = []
    for run in (module, lambda *a: case.reference(module, *a)):
        module.zero_grad(set_to_none=True)
        q, k, v = qkv(batch, heads, length, dim, seed=3, requires_grad=True)
        out = run(q, k, v, mask, causal)
        (out * weights).sum().backward()
        grads = {name: p.grad.clone() for name, p in module.named_parameters()}
        results.append((out.detach() * real_rows[:, None, :, None], q.grad, k.grad, v.grad, grads))

    (out, dq, dk, dv, grads), (ref, rq, rk, rv, ref_grads) = results
    assert_close(out, ref, TOL, "output")
    for name, actual, expected in (("dq", dq, rq), ("dk", dk, rk), ("dv", dv, rv)):
        assert_close(actual, expected, TOL, name)
    assert grads.keys() == ref_grads.keys()
    for name in grads:
        assert_close(grads[name], ref_grads[name], TOL, f"grad of {name}")


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("mask_kind", ["none", "right", "random"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_matches_naive_reference(case, shape, mask_kind, causal):
    _compare(case, shape, mask_kind, causal)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_parameter_gets_a_gradient(case):
    module = build(case, 8, 2)
    q, k, v = qkv(2, 2, 9, 8, requires_grad=True)
    module(q, k, v, causal=True).square().sum().backward()
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("case", [c for c in CASES if c.id.startswith("luna")], ids=lambda c: c.id)
def test_luna_without_the_compiled_kernel(case, causal, monkeypatch):
    """The PyTorch path (other devices, no compiler) against the same references."""
    monkeypatch.setenv(native.SWITCH, "0")
    for shape in SHAPES:
        _compare(case, shape, "random", causal)
