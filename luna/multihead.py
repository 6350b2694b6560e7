"""Multi-head attention layer: input and output projections around any attention backend."""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from luna.base import AttentionBackend, KernelAttention
from luna.kernel import KernelState


class MultiHeadAttention(nn.Module):
    """(B, N, dim) -> (B, N, dim) self-attention; `backend(head_dim=..., num_heads=...)` builds the core.

    `backend` is a class or a partial (e.g. `functools.partial(LunaAttention, num_projections=32)`,
    or a Hydra `_partial_: true` config), so one model definition runs with every backend.
    """

    def __init__(
        self, dim: int, num_heads: int, backend: Callable[..., AttentionBackend], bias: bool = True
    ) -> None:
        super().__init__()
        if num_heads <= 0 or dim % num_heads:
            raise ValueError(f"num_heads ({num_heads}) must be positive and divide dim ({dim})")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.out = nn.Linear(dim, dim, bias=bias)
        self.attention = backend(head_dim=dim // num_heads, num_heads=num_heads)

    def _split_heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        batch, length, _ = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.num_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, N, D)
        return q, k, v

    def _merge_heads(self, x: Tensor) -> Tensor:
        batch, _, length, _ = x.shape
        return self.out(x.transpose(1, 2).reshape(batch, length, -1))

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None, causal: bool = False) -> Tensor:
        q, k, v = self._split_heads(x)
        return self._merge_heads(self.attention(q, k, v, key_padding_mask=key_padding_mask, causal=causal))

    def step(self, x: Tensor, state: KernelState | None = None) -> tuple[Tensor, KernelState]:
        """Streaming causal self-attention over the next tokens of x; linear backends only."""
        if not isinstance(self.attention, KernelAttention):
            raise TypeError(f"{type(self.attention).__name__} has no recurrent form; use a linear backend")
        q, k, v = self._split_heads(x)
        out, state = self.attention.step(q, k, v, state)
        return self._merge_heads(out), state
