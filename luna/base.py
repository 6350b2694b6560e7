"""The interface every attention backend implements, and the shared body of the kernelized ones."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from luna.kernel import (
    KernelState,
    align_scales,
    causal_linear_attention,
    linear_attention,
)


def check_positive(name: str, value: int | float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def check_inputs(q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            f"q, k, v must be (batch, heads, tokens, head_dim); got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    if k.shape[:3] != v.shape[:3] or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"incompatible shapes q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    if key_padding_mask is not None and (
        key_padding_mask.dtype != torch.bool or key_padding_mask.shape != (k.shape[0], k.shape[2])
    ):
        raise ValueError(
            "key_padding_mask must be a bool tensor of shape (batch, tokens) with True on real "
            f"tokens; got {key_padding_mask.dtype} {tuple(key_padding_mask.shape)}"
        )


def zero_padded(x: Tensor, key_padding_mask: Tensor | None) -> Tensor:
    """Replace padded positions of a (B, H, N, D) tensor by zeros.

    `where`, not a product: padded positions may hold inf or NaN, and 0 * inf is NaN.
    """
    if key_padding_mask is None:
        return x
    return torch.where(key_padding_mask[:, None, :, None], x, torch.zeros((), dtype=x.dtype, device=x.device))


class AttentionBackend(nn.Module):
    """Multi-head attention on (B, H, N, D) queries, keys and values, with padding and causal masks."""

    def __init__(self, head_dim: int, num_heads: int) -> None:
        super().__init__()
        check_positive("head_dim", head_dim)
        check_positive("num_heads", num_heads)
        self.head_dim = head_dim
        self.num_heads = num_heads

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None = None,
        causal: bool = False,
    ) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, num_heads={self.num_heads}"


class KernelAttention(AttentionBackend):
    """Attention through a non-negative feature map phi: linear time, with a recurrent form.

    Subclasses set `self.phi`, a module mapping (B, H, N, D) to non-negative (B, H, N, F).
    Feature maps that must be stabilised (exponentials) return features divided by exp(log_scale),
    per query token and one shared scale per (batch, head) for keys; both cancel in the attention
    ratio except against `eps`, which is therefore rescaled so that it always means the same thing:
    out = phi(q)^T S / (phi(q)^T z + eps) in the unstabilised features.
    """

    phi: nn.Module

    def __init__(self, head_dim: int, num_heads: int, chunk_size: int = 64, eps: float = 1e-6) -> None:
        super().__init__(head_dim, num_heads)
        check_positive("chunk_size", chunk_size)
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps!r}")
        self.chunk_size = chunk_size
        self.eps = eps

    def feature_map(self, x: Tensor) -> Tensor:
        """The non-negative features (B, H, N, F) of queries or keys (B, H, N, D)."""
        return self.phi(x)

    def query_features(self, q: Tensor) -> tuple[Tensor, Tensor | None]:
        """Query features and the log of the per-token scale divided out of them (or None)."""
        return self.feature_map(q), None

    def key_features(self, k: Tensor, key_padding_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Key features with padded rows zeroed, and the log of the shared scale divided out (or None)."""
        return zero_padded(self.feature_map(k), key_padding_mask), None

    def _scaled_eps(self, q_log_scale: Tensor | None, k_log_scale: Tensor | None) -> float | Tensor:
        if q_log_scale is None and k_log_scale is None:
            return self.eps
        log_scale = sum(s for s in (q_log_scale, k_log_scale) if s is not None)  # (B, H, N or 1, 1)
        # Past e^60 the true denominator is negligible next to eps anyway; the cap keeps it finite.
        return self.eps * torch.exp((-log_scale).clamp(max=60.0)).squeeze(-1)

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None = None,
        causal: bool = False,
    ) -> Tensor:
        check_inputs(q, k, v, key_padding_mask)
        k, v = zero_padded(k, key_padding_mask), zero_padded(v, key_padding_mask)
        phi_q, q_log_scale = self.query_features(q)
        phi_k, k_log_scale = self.key_features(k, key_padding_mask)
        eps = self._scaled_eps(q_log_scale, k_log_scale)
        if causal:
            out, _ = causal_linear_attention(phi_q, phi_k, v, eps, self.chunk_size)
            return out
        return linear_attention(phi_q, phi_k, v, eps)

    def step(
        self, q: Tensor, k: Tensor, v: Tensor, state: KernelState | None = None
    ) -> tuple[Tensor, KernelState]:
        """Causal attention over the next chunk of tokens (any length, 1 included), given the past."""
        check_inputs(q, k, v, None)
        phi_q, q_log_scale = self.query_features(q)
        phi_k, k_log_scale = self.key_features(k, None)
        if state is None:
            batch, heads, _, features = phi_k.shape
            state = KernelState(
                kv=phi_k.new_zeros(batch, heads, features, v.shape[-1]),
                k_sum=phi_k.new_zeros(batch, heads, features),
            )
        state, phi_k = align_scales(state, phi_k, k_log_scale)
        eps = self._scaled_eps(q_log_scale, state.log_scale)
        return causal_linear_attention(phi_q, phi_k, v, eps, self.chunk_size, state)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, chunk_size={self.chunk_size}, eps={self.eps}"
