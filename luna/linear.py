"""Linear Transformer attention with the elu(x) + 1 feature map (Katharopoulos et al. 2020)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from luna.base import KernelAttention


class EluFeatureMap(nn.Module):
    """phi(x) = elu(x) + 1: positive, parameter-free, as many features as the head dimension."""

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.num_features = head_dim

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(x) + 1.0


class LinearAttention(KernelAttention):
    """ "Transformers are RNNs" (Katharopoulos et al. 2020): phi(Q) (phi(K)^T V), normalised.

    `feature_map` swaps in another non-negative map (a module from (B, H, N, D) to (B, H, N, F)).
    """

    def __init__(
        self,
        head_dim: int,
        num_heads: int,
        feature_map: nn.Module | None = None,
        chunk_size: int = 64,
        eps: float = 1e-6,
    ) -> None:
        super().__init__(head_dim, num_heads, chunk_size=chunk_size, eps=eps)
        self.phi = feature_map if feature_map is not None else EluFeatureMap(head_dim)
