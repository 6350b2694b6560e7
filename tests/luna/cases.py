"""The table of backends under test, each with its naive reference, and comparison helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from luna import (
    AttentionBackend,
    LinearAttention,
    LunaAttention,
    PerformerAttention,
    SoftmaxAttention,
)
from luna.reference import (
    elu_features,
    favor_features,
    luna_features,
    naive_kernel_attention,
    naive_softmax_attention,
)


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[int, int, int], AttentionBackend]  # (head_dim, num_heads, chunk_size)
    features: Callable[[AttentionBackend, Tensor], Tensor] | None  # None: softmax
    linear: bool = True

    def reference(
        self, module: AttentionBackend, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool
    ) -> Tensor:
        if self.features is None:
            return naive_softmax_attention(q, k, v, mask, causal)
        return naive_kernel_attention(
            self.features(module, q), self.features(module, k), v, mask, causal, eps=module.eps
        )


def _luna(**options: object) -> Callable[[int, int, int], AttentionBackend]:
    def build(head_dim: int, num_heads: int, chunk_size: int) -> AttentionBackend:
        return LunaAttention(head_dim=head_dim, num_heads=num_heads, chunk_size=chunk_size, **options)

    return build


CASES = [
    Case(
        "softmax",
        lambda d, h, c: SoftmaxAttention(head_dim=d, num_heads=h),
        None,
        linear=False,
    ),
    Case(
        "linear",
        lambda d, h, c: LinearAttention(head_dim=d, num_heads=h, chunk_size=c),
        lambda m, x: elu_features(x),
    ),
    Case(
        # Against unstabilised features: the stabilisers must cancel exactly, eps included.
        "performer",
        lambda d, h, c: PerformerAttention(head_dim=d, num_heads=h, num_features=32, chunk_size=c),
        lambda m, x: favor_features(x, m.phi.projection),
    ),
    Case("luna", _luna(num_projections=4, num_channels=3, hidden=8), lambda m, x: luna_features(x, m.phi)),
    Case(
        "luna-separate-channels-envelope-rms",
        _luna(
            num_projections=4, num_channels=3, hidden=8, shared_channels=False, envelope=True, rms_target=0.1
        ),
        lambda m, x: luna_features(x, m.phi),
    ),
    Case(
        "luna-per-head-default-sizes",
        _luna(per_head=True),
        lambda m, x: luna_features(x, m.phi),
    ),
]
LINEAR_CASES = [case for case in CASES if case.linear]


def build(case: Case, head_dim: int, num_heads: int, chunk_size: int = 64, seed: int = 0) -> AttentionBackend:
    """The backend in float64 with every parameter perturbed, so no term hides behind its init."""
    torch.manual_seed(seed)
    module = case.build(head_dim, num_heads, chunk_size).double()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return module


def qkv(batch: int, heads: int, length: int, dim: int, seed: int = 0, requires_grad: bool = False):
    generator = torch.Generator().manual_seed(seed)
    tensors = [
        torch.randn(batch, heads, length, dim, generator=generator, dtype=torch.float64) for _ in range(3)
    ]
    return [t.requires_grad_(requires_grad) for t in tensors]


def make_mask(kind: str, batch: int, length: int, seed: int = 0) -> Tensor | None:
    """None, right padding of varied lengths, or an arbitrary pattern; every row keeps one real token."""
    if kind == "none":
        return None
    generator = torch.Generator().manual_seed(seed)
    if kind == "right":
        lengths = torch.randint(1, length + 1, (batch,), generator=generator)
        lengths[0] = length
        return torch.arange(length)[None, :] < lengths[:, None]
    mask = torch.rand(batch, length, generator=generator) < 0.6
    mask[:, 0] = True
    return mask


def relative_error(actual: Tensor, expected: Tensor) -> float:
    actual, expected = actual.detach(), expected.detach()
    # The floor keeps round-off against an exactly-zero expectation (e.g. dq at N = 1) from counting as error.
    return float((actual - expected).norm() / expected.norm().clamp_min(1e-3))


def assert_close(actual: Tensor, expected: Tensor, tol: float, what: str = "") -> None:
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    error = relative_error(actual, expected)
    assert error <= tol, f"{what}: relative error {error:.3g} > {tol:.3g}"
