"""The breakpoint evaluation of LUNA's channel MLPs against the plain MLP: values and all gradients."""

from __future__ import annotations

import pytest
import torch

from luna.piecewise import piecewise_relu
from tests.luna.cases import assert_close


def naive(s, in_weight, in_bias, out_weight, out_bias, scale):
    if in_weight.shape[0] == 1:
        psi = torch.relu(s[..., None] * in_weight[0] + in_bias[0]) @ out_weight.T + out_bias
    else:
        psi = (torch.relu(s[..., None, None] * in_weight + in_bias) * out_weight).sum(-1) + out_bias
    return torch.relu(scale * psi)


def parameters(groups, hidden, channels, seed):
    generator = torch.Generator().manual_seed(seed)
    tensors = [
        torch.randn(*shape, generator=generator, dtype=torch.float64)
        for shape in [(groups, hidden), (groups, hidden), (channels, hidden), (channels,)]
    ]
    tensors[0][0, :3] = 0.0  # flat units, with positive and negative biases
    tensors[1][0, 0], tensors[1][0, 1] = 0.5, -0.5
    return [t.requires_grad_() for t in tensors]


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "separate"])
@pytest.mark.parametrize("shape", [(1,), (5,), (2, 3, 7)], ids=["one", "five", "batch"])
@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_values_and_gradients_equal_the_mlp(shared, shape, scale):
    channels, hidden = 4, 16
    params = parameters(1 if shared else channels, hidden, channels, seed=0)
    s = (
        3 * torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ).requires_grad_()
    weights = torch.randn(*shape, channels, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    results = []
    for fn in (piecewise_relu, naive):
        out = fn(s, *params, scale)
        grads = torch.autograd.grad((out * weights).sum(), [s, *params])
        results.append((out, grads))
    (out, grads), (ref, ref_grads) = results
    assert out.shape == (*shape, channels)
    assert_close(out, ref, 1e-12, "values")
    for name, a, b in zip(["s", "in_weight", "in_bias", "out_weight", "out_bias"], grads, ref_grads):
        assert_close(a, b, 1e-12, name)


def test_exact_at_the_breakpoints_themselves():
    params = parameters(1, 8, 3, seed=3)
    with torch.no_grad():
        breakpoints = -params[1][0] / params[0][0]
    s = breakpoints[torch.isfinite(breakpoints)].detach()
    assert_close(piecewise_relu(s, *params), naive(s, *params, 1.0), 1e-12, "at breakpoints")


def test_keeps_the_input_dtype_and_is_non_negative():
    params = [p.detach().float() for p in parameters(1, 8, 3, seed=4)]
    s = torch.randn(100)
    out = piecewise_relu(s.bfloat16(), *params)
    assert out.dtype == torch.bfloat16 and (out >= 0).all()
