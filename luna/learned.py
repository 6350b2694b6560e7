"""LUNA: linear attention whose kernel feature map is learned end to end (arXiv 2512.08061, Eq. 11)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from luna.base import KernelAttention, check_positive
from luna.piecewise import piecewise_relu

# softplus(_UNIT_ENVELOPE_BIAS) == 1: an envelope switched on starts as the identity.
_UNIT_ENVELOPE_BIAS = math.log(math.e - 1.0)


class ChannelFunctions(nn.Module):
    """psi: R -> R^L, one-hidden-layer ReLU MLPs of a scalar (Linear(1, hidden) -> ReLU -> Linear(hidden, L)).

    `shared=True` is one MLP with L outputs; `shared=False` is L separate one-output MLPs. Initialised
    like the equivalent `nn.Linear` layers.
    """

    def __init__(self, num_channels: int, hidden: int, shared: bool = True) -> None:
        super().__init__()
        check_positive("num_channels", num_channels)
        check_positive("hidden", hidden)
        self.shared = shared
        groups = 1 if shared else num_channels
        self.in_weight = nn.Parameter(torch.empty(groups, hidden).uniform_(-1.0, 1.0))
        self.in_bias = nn.Parameter(torch.empty(groups, hidden).uniform_(-1.0, 1.0))
        bound = hidden**-0.5
        self.out_weight = nn.Parameter(torch.empty(num_channels, hidden).uniform_(-bound, bound))
        self.out_bias = nn.Parameter(torch.empty(num_channels).uniform_(-bound, bound))

    def forward(self, s: Tensor, scale: float = 1.0) -> Tensor:
        """(...,) scalars -> (..., L) non-negative channel values relu(scale * psi(s)).

        Evaluated exactly from the MLP's breakpoints (luna/piecewise.py): no (..., hidden) activation.
        """
        return piecewise_relu(s, self.in_weight, self.in_bias, self.out_weight, self.out_bias, scale)


class LearnedFeatureMap(nn.Module):
    """phi(x) = h(x) / sqrt(m) * [relu(psi_l(w_i^T x + b_i))]_{i <= m, l <= L}, in R^(m L), non-negative.

    Choices the paper leaves open, made here:
    - W (m x D) ~ N(0, 1/D), b = 0; one W for all heads as in the paper's listing, or one per head
      (`per_head=True`).
    - the envelope h(x) = softplus(u^T x + c) > 0, initialised to exactly 1 (u = 0); off by default as in
      the paper's listing. On the query side it cancels in the attention ratio; on the key side it
      re-weights tokens, which is what the theory's exp(|k|^2 / 2) factor does for softmax.
    - RMS rescaling (`rms_target`, the paper uses 0.1) is computed per token and per channel over the m
      projections, factor min(1, target / rms). Per token, so it leaks nothing across tokens: padding,
      causal masking and streaming stay exact.
    """

    def __init__(
        self,
        head_dim: int,
        num_heads: int,
        num_projections: int = 16,
        num_channels: int = 4,
        hidden: int = 64,
        shared_channels: bool = True,
        per_head: bool = False,
        envelope: bool = False,
        rms_target: float | None = None,
    ) -> None:
        super().__init__()
        check_positive("num_projections", num_projections)
        if rms_target is not None:
            check_positive("rms_target", rms_target)
        self.num_projections = num_projections
        self.num_features = num_projections * num_channels
        self.rms_target = rms_target
        groups = num_heads if per_head else 1
        # Leading dim is 1 or H, so it broadcasts against the heads of (B, H, N, D) inputs.
        self.weight = nn.Parameter(torch.randn(groups, num_projections, head_dim) * head_dim**-0.5)
        self.bias = nn.Parameter(torch.zeros(groups, num_projections))
        self.channels = ChannelFunctions(num_channels, hidden, shared=shared_channels)
        if envelope:
            self.envelope_weight = nn.Parameter(torch.zeros(groups, head_dim))
            self.envelope_bias = nn.Parameter(torch.full((groups,), _UNIT_ENVELOPE_BIAS))
        else:
            self.envelope_weight = self.envelope_bias = None

    def forward(self, x: Tensor) -> Tensor:
        if self.weight.shape[0] == 1:
            # One (B H N, D) x (D, m) product, forward and backward, instead of B H small batched ones.
            projections = F.linear(x, self.weight[0], self.bias[0])  # (B, H, N, m)
        else:
            projections = x @ self.weight.transpose(-1, -2) + self.bias[:, None, :]
        # The 1 / sqrt(m) normalisation rides in the segment tables instead of a pass over features.
        scale = self.num_projections**-0.5
        features = self.channels(projections, scale)  # (B, H, N, m, L)
        if self.rms_target is not None:
            # The same factor as min(1, target / rms) on the unscaled features.
            rms = features.pow(2).mean(dim=-2, keepdim=True).add(1e-12 * scale**2).sqrt()  # (B, H, N, 1, L)
            features = features * (self.rms_target * scale / rms).clamp(max=1.0)
        if self.envelope_weight is not None:
            logit = (x * self.envelope_weight[:, None, :]).sum(dim=-1) + self.envelope_bias[:, None]
            features = features * F.softplus(logit)[..., None, None]
        return features.flatten(start_dim=-2)  # (B, H, N, m L)


class LunaAttention(KernelAttention):
    """LUNA (arXiv 2512.08061, "Linear Universal Neural Attention"): kernelized attention with the
    learned feature map above. Not "Luna: Linear Unified Nested Attention" (Ma et al., 2021).

    The kernel is an explicit inner product of non-negative features, so it is positive semi-definite
    and the attention weights are non-negative whatever the parameters. Features per head:
    `num_projections * num_channels`.
    """

    def __init__(
        self,
        head_dim: int,
        num_heads: int,
        num_projections: int = 16,
        num_channels: int = 4,
        hidden: int = 64,
        shared_channels: bool = True,
        per_head: bool = False,
        envelope: bool = False,
        rms_target: float | None = None,
        chunk_size: int = 64,
        eps: float = 1e-6,
    ) -> None:
        super().__init__(head_dim, num_heads, chunk_size=chunk_size, eps=eps)
        self.phi = LearnedFeatureMap(
            head_dim,
            num_heads,
            num_projections=num_projections,
            num_channels=num_channels,
            hidden=hidden,
            shared_channels=shared_channels,
            per_head=per_head,
            envelope=envelope,
            rms_target=rms_target,
        )
