"""Kernelized linear attention, shared by every linear backend: parallel, chunked causal and recurrent."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class KernelState:
    """Key-side summaries of everything seen so far, for the recurrent (streaming) form.

    The true summaries are `kv * exp(log_scale)` and `k_sum * exp(log_scale)`; feature maps that need
    no stabiliser leave `log_scale` as None.
    """

    kv: Tensor  # (B, H, F, Dv): sum_t phi(k_t) v_t^T
    k_sum: Tensor  # (B, H, F): sum_t phi(k_t)
    log_scale: Tensor | None = None  # (B, H, 1, 1)


def _compute_dtype(x: Tensor) -> torch.dtype:
    # Sums over thousands of tokens lose too much in half precision; accumulate in float32 at least.
    return torch.promote_types(x.dtype, torch.float32)


class _KeyValueSummary(torch.autograd.Function):
    """phi_k^T v (B, H, F, Dv), whose gradients come back token-major like phi_k and v.

    Autograd's matmul backward returns d phi_k feature-major (a transposed view), and every feature
    map's backward then pays a transposing copy of (B, H, N, F).
    """

    @staticmethod
    def forward(ctx, phi_k: Tensor, v: Tensor) -> Tensor:
        ctx.save_for_backward(phi_k, v)
        return phi_k.transpose(-1, -2) @ v

    @staticmethod
    def backward(ctx, grad: Tensor):
        phi_k, v = ctx.saved_tensors
        grad_k = v @ grad.transpose(-1, -2) if ctx.needs_input_grad[0] else None
        grad_v = phi_k @ grad if ctx.needs_input_grad[1] else None
        return grad_k, grad_v


def linear_attention(phi_q: Tensor, phi_k: Tensor, v: Tensor, eps: float | Tensor) -> Tensor:
    """Non-causal attention `phi(Q) (phi(K)^T V) / phi(Q) (phi(K)^T 1)` in O(N F Dv).

    Padded keys must already have zero features (and zero values). `eps` is a number or (B, H, N).
    """
    dtype = v.dtype
    phi_q, phi_k, v = (t.to(_compute_dtype(v)) for t in (phi_q, phi_k, v))
    kv = _KeyValueSummary.apply(phi_k, v)  # (B, H, F, Dv)
    k_sum = phi_k.sum(dim=-2)  # (B, H, F)
    numerator = torch.einsum("bhnf,bhfd->bhnd", phi_q, kv)
    denominator = torch.einsum("bhnf,bhf->bhn", phi_q, k_sum)
    return (numerator / (denominator + eps).unsqueeze(-1)).to(dtype)


def causal_linear_attention(
    phi_q: Tensor,
    phi_k: Tensor,
    v: Tensor,
    eps: float | Tensor,
    chunk_size: int,
    state: KernelState | None = None,
) -> tuple[Tensor, KernelState]:
    """Causal attention continuing from `state`, chunk-parallel: exact, with O(N) memory.

    Within a chunk of C tokens the (C x C) masked kernel matrix is formed explicitly; across chunks
    only the running summaries travel, so memory is O(N C + (N / C) F Dv) instead of O(N F Dv) for
    a plain prefix sum. Returns the outputs (B, H, N, Dv) and the state after the last token.
    Any `state.log_scale` must already match the scale of `phi_k`.
    """
    dtype = v.dtype
    compute = _compute_dtype(v)
    phi_q, phi_k, v = (t.to(compute) for t in (phi_q, phi_k, v))
    batch, heads, length, features = phi_q.shape
    if state is None:
        kv0 = phi_k.new_zeros(batch, heads, features, v.shape[-1])
        k_sum0 = phi_k.new_zeros(batch, heads, features)
        log_scale = None
    else:
        kv0, k_sum0, log_scale = state.kv.to(compute), state.k_sum.to(compute), state.log_scale

    chunk = max(1, min(chunk_size, length))
    padded = -length % chunk
    if padded:
        # Zero features and values add nothing to any sum; the padded outputs are cut off below.
        phi_q, phi_k, v = (F.pad(t, (0, 0, 0, padded)) for t in (phi_q, phi_k, v))
    chunks = (length + padded) // chunk
    q_c = phi_q.view(batch, heads, chunks, chunk, features)  # (B, H, C#, C, F)
    k_c = phi_k.view(batch, heads, chunks, chunk, features)
    v_c = v.view(batch, heads, chunks, chunk, -1)  # (B, H, C#, C, Dv)

    # Summaries of all chunks strictly before each chunk, plus the incoming state.
    kv_chunk = torch.einsum("bhcnf,bhcnd->bhcfd", k_c, v_c)
    kv_before = torch.cumsum(kv_chunk, dim=2) - kv_chunk + kv0.unsqueeze(2)
    k_sum_chunk = k_c.sum(dim=3)  # (B, H, C#, F)
    k_sum_before = torch.cumsum(k_sum_chunk, dim=2) - k_sum_chunk + k_sum0.unsqueeze(2)

    causal_mask = torch.ones(chunk, chunk, dtype=torch.bool, device=v.device).tril()
    scores = torch.einsum("bhcif,bhcjf->bhcij", q_c, k_c).masked_fill(~causal_mask, 0.0)
    numerator = torch.einsum("bhcij,bhcjd->bhcid", scores, v_c)
    numerator = numerator + torch.einsum("bhcif,bhcfd->bhcid", q_c, kv_before)
    denominator = scores.sum(dim=-1) + torch.einsum("bhcif,bhcf->bhci", q_c, k_sum_before)
    # Cut the padding off before dividing: its 0 / 0 would poison the backward pass with NaN.
    numerator = numerator.reshape(batch, heads, chunks * chunk, -1)[:, :, :length]
    denominator = denominator.reshape(batch, heads, chunks * chunk)[:, :, :length]
    out = numerator / (denominator + eps).unsqueeze(-1)

    final = KernelState(
        kv=kv_before[:, :, -1] + kv_chunk[:, :, -1],
        k_sum=k_sum_before[:, :, -1] + k_sum_chunk[:, :, -1],
        log_scale=log_scale,
    )
    return out.to(dtype), final


def align_scales(
    state: KernelState, phi_k: Tensor, chunk_log_scale: Tensor | None
) -> tuple[KernelState, Tensor]:
    """Bring a state and a new chunk of stabilised key features to one common scale.

    A stabilised feature map returns `phi_k = true_phi_k * exp(-log_scale)`; the common scale is the
    larger of the two, so both sides are multiplied by factors <= 1 and nothing overflows.
    """
    if chunk_log_scale is None:
        return state, phi_k
    if state.log_scale is None:
        return KernelState(state.kv, state.k_sum, chunk_log_scale), phi_k
    common = torch.maximum(state.log_scale, chunk_log_scale)
    state_factor = torch.exp(state.log_scale - common)  # (B, H, 1, 1)
    rescaled = KernelState(
        kv=state.kv * state_factor,
        k_sum=state.k_sum * state_factor.squeeze(-1),
        log_scale=common,
    )
    return rescaled, phi_k * torch.exp(chunk_log_scale - common).to(phi_k.dtype)
