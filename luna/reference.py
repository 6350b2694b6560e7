"""Naive quadratic references for every backend, written for clarity; only the tests import them."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from luna.learned import LearnedFeatureMap


def allowed_pairs(n: int, key_padding_mask: Tensor | None, causal: bool, device: torch.device) -> Tensor:
    """(B or 1, 1, N, N) bool: may query i attend to key j."""
    allowed = torch.ones(1, 1, n, n, dtype=torch.bool, device=device)
    if causal:
        allowed = allowed & torch.ones(n, n, dtype=torch.bool, device=device).tril()
    if key_padding_mask is not None:
        allowed = allowed & key_padding_mask[:, None, None, :]
    return allowed


def _zero_padded_rows(v: Tensor, key_padding_mask: Tensor | None) -> Tensor:
    # A zero weight times a NaN value is still NaN, so padded values are replaced, not weighted.
    if key_padding_mask is None:
        return v
    return torch.where(key_padding_mask[:, None, :, None], v, torch.zeros_like(v))


def naive_softmax_attention(
    q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None = None, causal: bool = False
) -> Tensor:
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, H, N, N)
    allowed = allowed_pairs(q.shape[-2], key_padding_mask, causal, q.device)
    weights = torch.softmax(scores.masked_fill(~allowed, -math.inf), dim=-1)
    return weights.nan_to_num(0.0) @ _zero_padded_rows(v, key_padding_mask)


def naive_kernel_attention(
    phi_q: Tensor,
    phi_k: Tensor,
    v: Tensor,
    key_padding_mask: Tensor | None = None,
    causal: bool = False,
    eps: float = 1e-6,
) -> Tensor:
    """out_i = sum_j A_ij v_j / (sum_j A_ij + eps), A_ij = phi(q_i)^T phi(k_j) over allowed pairs."""
    kernel = phi_q @ phi_k.transpose(-1, -2)  # (B, H, N, N)
    allowed = allowed_pairs(phi_q.shape[-2], key_padding_mask, causal, phi_q.device)
    kernel = torch.where(allowed, kernel, torch.zeros_like(kernel))
    return (kernel @ _zero_padded_rows(v, key_padding_mask)) / (kernel.sum(dim=-1, keepdim=True) + eps)


def elu_features(x: Tensor) -> Tensor:
    return F.elu(x) + 1.0


def favor_features(x: Tensor, projection: Tensor) -> Tensor:
    """Unstabilised FAVOR+ features exp(w^T x' - |x'|^2 / 2) / sqrt(m); overflows for large inputs."""
    x = x / x.shape[-1] ** 0.25
    m = projection.shape[0]
    return torch.exp(x @ projection.T - 0.5 * (x * x).sum(-1, keepdim=True)) / math.sqrt(m)


def luna_features(x: Tensor, fmap: LearnedFeatureMap) -> Tensor:
    """LUNA's feature map evaluated one projection and one channel at a time from fmap's parameters."""
    channels = fmap.channels
    num_channels = channels.out_weight.shape[0]
    heads = x.shape[1]
    columns = []
    for i in range(fmap.num_projections):
        w = fmap.weight[:, i, :].expand(heads, -1)  # (H, D)
        s = torch.einsum("bhnd,hd->bhn", x, w) + fmap.bias[:, i].expand(heads)[None, :, None]
        per_channel = []
        for channel in range(num_channels):
            g = 0 if channels.shared else channel
            hidden = torch.relu(s[..., None] * channels.in_weight[g] + channels.in_bias[g])
            per_channel.append(torch.relu(hidden @ channels.out_weight[channel] + channels.out_bias[channel]))
        columns.append(torch.stack(per_channel, dim=-1))  # (B, H, N, L)
    features = torch.stack(columns, dim=-2)  # (B, H, N, m, L)
    if fmap.rms_target is not None:
        rms = torch.sqrt((features**2).mean(dim=-2, keepdim=True) + 1e-12)
        features = features * torch.clamp(fmap.rms_target / rms, max=1.0)
    if fmap.envelope_weight is not None:
        u = fmap.envelope_weight.expand(heads, -1)
        c = fmap.envelope_bias.expand(heads)
        envelope = F.softplus(torch.einsum("bhnd,hd->bhn", x, u) + c[None, :, None])
        features = features * envelope[..., None, None]
    return features.flatten(-2) / math.sqrt(fmap.num_projections)
