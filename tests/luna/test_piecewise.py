"""The breakpoint evaluation of LUNA's channel MLPs against the plain MLP: values and all gradients."""

from __future__ import annotations

import shutil
import sysconfig
import warnings
from pathlib import Path

import pytest
import torch

from luna import native
from luna.piecewise import piecewise_relu
from tests.luna.cases import assert_close

# ninja is a dependency; a C++ compiler and Python's headers are what a machine may lack. With both,
# a failed build is a bug, not a skip.
CAN_BUILD = (
    shutil.which("c++") is not None and (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file()
)


@pytest.fixture(params=["compiled", "pytorch"])
def implementation(request, monkeypatch):
    """Every test runs on both paths: the compiled CPU kernel and the PyTorch operations."""
    if request.param == "pytorch":
        monkeypatch.setenv(native.SWITCH, "0")
    else:
        monkeypatch.delenv(native.SWITCH, raising=False)
        if not CAN_BUILD:
            pytest.skip("no C++ compiler or Python headers: the compiled kernel cannot be built here")
        assert native.segment_relu_kernel(torch.zeros(1)) is not None, "the compiled kernel failed to build"
    return request.param


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
def test_values_and_gradients_equal_the_mlp(implementation, shared, shape, scale):
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


def test_exact_at_the_breakpoints_themselves(implementation):
    params = parameters(1, 8, 3, seed=3)
    with torch.no_grad():
        breakpoints = -params[1][0] / params[0][0]
    s = breakpoints[torch.isfinite(breakpoints)].detach()
    assert_close(piecewise_relu(s, *params), naive(s, *params, 1.0), 1e-12, "at breakpoints")


def test_keeps_the_input_dtype_and_is_non_negative(implementation):
    params = [p.detach().float() for p in parameters(1, 8, 3, seed=4)]
    s = torch.randn(100)
    out = piecewise_relu(s.bfloat16(), *params)
    assert out.dtype == torch.bfloat16 and (out >= 0).all()


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "separate"])
def test_float32_paths_agree_on_many_scalars(shared, monkeypatch):
    """Enough scalars for many threads' blocks and an uneven last one; float32 against the float64 MLP."""
    if not CAN_BUILD:
        pytest.skip("no C++ compiler or Python headers: nothing to compare the PyTorch path with")
    channels = 4
    params = [
        p.detach().float().requires_grad_() for p in parameters(1 if shared else channels, 64, channels, 5)
    ]
    s = (2 * torch.randn(3 * 4096 * 5 + 7, generator=torch.Generator().manual_seed(6))).requires_grad_()
    weights = torch.randn(s.shape[0], channels, generator=torch.Generator().manual_seed(7))
    results = {}
    for name, switch in (("compiled", "1"), ("pytorch", "0")):
        monkeypatch.setenv(native.SWITCH, switch)
        out = piecewise_relu(s, *params, 0.5)
        results[name] = (out, torch.autograd.grad((out * weights).sum(), [s, *params]))
    ref = naive(s.double(), *[p.double() for p in params], 0.5)
    ref_grads = torch.autograd.grad((ref * weights.double()).sum(), [s, *params])
    for name, (out, grads) in results.items():
        assert_close(out.double(), ref, 1e-6, f"{name} values")
        for what, a, b in zip(["s", "in_weight", "in_bias", "out_weight", "out_bias"], grads, ref_grads):
            assert_close(a.double(), b.double(), 1e-5, f"{name} grad of {what}")


def test_compiled_gradients_do_not_depend_on_the_thread_count():
    if not CAN_BUILD:
        pytest.skip("no C++ compiler or Python headers: the compiled kernel cannot be built here")
    params = [p.detach().float().requires_grad_() for p in parameters(1, 64, 4, 8)]
    s = torch.randn(20 * 4096 + 3, generator=torch.Generator().manual_seed(9)).requires_grad_()
    threads = torch.get_num_threads()
    grads = []
    try:
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            grads.append(torch.autograd.grad(piecewise_relu(s, *params).square().sum(), params))
    finally:
        torch.set_num_threads(threads)
    for other in grads[1:]:
        assert all(torch.equal(a, b) for a, b in zip(grads[0], other))


def test_gradient_of_the_input_alone_or_the_parameters_alone(implementation):
    params = parameters(1, 8, 3, seed=10)
    s = torch.randn(50, generator=torch.Generator().manual_seed(11), dtype=torch.float64).requires_grad_()
    (ds,) = torch.autograd.grad(piecewise_relu(s, *params).sum(), [s])
    (ref_ds,) = torch.autograd.grad(naive(s, *params, 1.0).sum(), [s])
    assert_close(ds, ref_ds, 1e-12, "s alone")
    grads = torch.autograd.grad(piecewise_relu(s.detach(), *params).sum(), params)
    ref_grads = torch.autograd.grad(naive(s.detach(), *params, 1.0).sum(), params)
    for a, b in zip(grads, ref_grads):
        assert_close(a, b, 1e-12, "parameters alone")


def test_no_scalars(implementation):
    params = parameters(1, 8, 3, seed=12)
    s = torch.zeros(0, 5, dtype=torch.float64, requires_grad=True)
    out = piecewise_relu(s, *params)
    assert out.shape == (0, 5, 3)
    grads = torch.autograd.grad(out.sum(), [s, *params])
    assert grads[0].shape == s.shape and all((g == 0).all() for g in grads[1:])


def test_a_failed_build_warns_once_and_falls_back(monkeypatch):
    import torch.utils.cpp_extension

    def no_compiler(**_):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch.utils.cpp_extension, "load", no_compiler)
    monkeypatch.delenv(native.SWITCH, raising=False)
    native._build.cache_clear()
    try:
        with pytest.warns(
            RuntimeWarning, match=r"could not be built \(RuntimeError: no C\+\+ compiler found\)"
        ):
            assert native.segment_relu_kernel(torch.zeros(1)) is None
        params = parameters(1, 8, 3, seed=13)
        s = torch.randn(20, generator=torch.Generator().manual_seed(14), dtype=torch.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # warned once, not on every call
            out = piecewise_relu(s, *params)
        assert_close(out, naive(s, *params, 1.0), 1e-12, "PyTorch path after a failed build")
    finally:
        native._build.cache_clear()  # the next test builds (or loads) the real kernel again


@pytest.mark.parametrize("value, expected", [("0", False), ("off", False), ("1", True), ("", True)])
def test_the_switch(value, expected, monkeypatch):
    monkeypatch.setenv(native.SWITCH, value)
    assert native.enabled() is expected
