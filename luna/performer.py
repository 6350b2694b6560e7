"""Performer attention with FAVOR+ positive orthogonal random features (Choromanski et al. 2021)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from luna.base import KernelAttention, check_positive


def orthogonal_gaussian(num_rows: int, dim: int, generator: torch.Generator) -> Tensor:
    """Rows from stacked blocks of random orthogonal matrices, rescaled to Gaussian-row norms.

    Orthogonal directions lower the estimator's variance; chi-distributed norms keep each row
    marginally N(0, I), so the softmax-kernel estimate stays unbiased.
    """
    blocks = []
    for _ in range(math.ceil(num_rows / dim)):
        gaussian = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
        q, r = torch.linalg.qr(gaussian)
        # Fix the sign ambiguity of QR so that q is Haar-distributed.
        blocks.append((q * torch.sign(torch.diagonal(r))).T)
    directions = torch.cat(blocks)[:num_rows]
    norms = torch.randn(num_rows, dim, generator=generator, dtype=torch.float64).norm(dim=1)
    return directions * norms.unsqueeze(1)


class FavorFeatureMap(nn.Module):
    """phi(x) = exp(w_i^T x' - |x'|^2 / 2) / sqrt(m), x' = x / d^(1/4): E[phi(q)^T phi(k)] = exp(q^T k / sqrt(d)).

    The projection is a buffer, so it is saved with the model; `redraw()` replaces it with the next
    draw of a generator seeded by (seed, number of draws), so every process draws the same features
    and a restored checkpoint continues the same sequence.
    """

    def __init__(self, head_dim: int, num_features: int = 256, seed: int = 0) -> None:
        super().__init__()
        check_positive("num_features", num_features)
        self.head_dim = head_dim
        self.num_features = num_features
        self.seed = seed
        self.register_buffer("draws", torch.zeros((), dtype=torch.long))
        self.register_buffer("projection", self._draw(0).float())  # (m, D)

    def _draw(self, index: int) -> Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        return orthogonal_gaussian(self.num_features, self.head_dim, generator)

    @torch.no_grad()
    def redraw(self) -> None:
        self.draws += 1
        self.projection.copy_(self._draw(int(self.draws)))

    def projections(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """w_i^T x' (B, H, N, m) and |x'|^2 / 2 (B, H, N, 1): log(phi(x) sqrt(m)) is their difference."""
        x = x * self.head_dim**-0.25
        return x @ self.projection.to(x.dtype).T, 0.5 * x.pow(2).sum(dim=-1, keepdim=True)

    def forward(self, x: Tensor) -> Tensor:
        """Features divided per token by a positive factor, so the largest is exactly 1."""
        features, _ = self.stabilised(x)
        return features

    def stabilised(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Per-token stabilised features and the log of the factor divided out, (B, H, N, 1).

        Any per-token factor cancels in the attention ratio, so the |x'|^2 / 2 and 1 / sqrt(m)
        terms move into the returned log-scale instead of costing passes over the features.
        """
        dots, half_norm = self.projections(x)
        peak = dots.amax(dim=-1, keepdim=True).detach()
        # In place: the product's backward needs its inputs, not its output, so no copy is made.
        features = dots.sub_(peak).exp_()
        return features, peak - half_norm - 0.5 * math.log(self.num_features)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, num_features={self.num_features}, seed={self.seed}"


class PerformerAttention(KernelAttention):
    """FAVOR+ (Choromanski et al. 2021): an unbiased random-feature estimate of softmax attention.

    Query features are stabilised per token (the factor cancels in the ratio); key features share one
    stabiliser per (batch, head) taken over real keys only, so huge or padded keys can neither
    overflow the exponent nor underflow the others. Call `redraw()` periodically in training.
    """

    def __init__(
        self,
        head_dim: int,
        num_heads: int,
        num_features: int = 256,
        seed: int = 0,
        chunk_size: int = 64,
        eps: float = 1e-6,
    ) -> None:
        super().__init__(head_dim, num_heads, chunk_size=chunk_size, eps=eps)
        self.phi = FavorFeatureMap(head_dim, num_features=num_features, seed=seed)

    def redraw(self) -> None:
        self.phi.redraw()

    def query_features(self, q: Tensor) -> tuple[Tensor, Tensor | None]:
        return self.phi.stabilised(q)

    def key_features(self, k: Tensor, key_padding_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        dots, half_norm = self.phi.projections(k)
        logits = dots.sub_(half_norm)  # (B, H, N, m), log(phi(k) sqrt(m)), in place as above
        if key_padding_mask is not None:
            logits = logits.masked_fill_(~key_padding_mask[:, None, :, None], -math.inf)
        peak = logits.amax(dim=(-2, -1), keepdim=True).detach()  # (B, H, 1, 1)
        # A sequence with no real key leaves -inf; any finite scale works there.
        peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
        return logits.sub_(peak).exp_(), peak - 0.5 * math.log(self.phi.num_features)
