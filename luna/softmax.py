"""Exact softmax attention through PyTorch's fused scaled_dot_product_attention kernels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from luna.base import AttentionBackend, check_inputs, zero_padded


class SoftmaxAttention(AttentionBackend):
    """softmax(Q K^T / sqrt(D)) V (Vaswani et al. 2017): the quadratic baseline."""

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None = None,
        causal: bool = False,
    ) -> Tensor:
        check_inputs(q, k, v, key_padding_mask)
        # Without padding the mask is dropped, which lets SDPA pick its fused, memory-linear kernels
        # (meta tensors, used to count FLOPs, have no values to check and keep the mask).
        if key_padding_mask is None or (not key_padding_mask.is_meta and bool(key_padding_mask.all())):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        # Garbage in padded keys must not reach real rows even as NaN (0 * inf), so zero it first.
        k, v = zero_padded(k, key_padding_mask), zero_padded(v, key_padding_mask)
        allowed = key_padding_mask[:, None, None, :]  # (B, 1, 1, N)
        if causal:
            n = q.shape[-2]
            allowed = allowed & torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
            # A padded query may have no real key in its past (left padding); letting it see itself
            # keeps its row finite without touching any real row.
            allowed = allowed | (
                ~key_padding_mask[:, None, :, None] & torch.eye(n, dtype=torch.bool, device=q.device)
            )
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
