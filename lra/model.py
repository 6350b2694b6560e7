"""The LRA Transformer encoder with a pluggable attention backend, pooling, and classification heads."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from luna import AttentionBackend, MultiHeadAttention

POOLINGS = ("mean", "cls")


class LearnedPositions(nn.Module):
    def __init__(self, max_length: int, dim: int) -> None:
        super().__init__()
        self.table = nn.Embedding(max_length, dim)
        nn.init.normal_(self.table.weight, std=0.02)

    def forward(self, length: int) -> Tensor:
        return self.table.weight[:length]  # (N, dim)


class SinusoidalPositions(nn.Module):
    def __init__(self, max_length: int, dim: int) -> None:
        super().__init__()
        position = torch.arange(max_length, dtype=torch.float32)[:, None]
        frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10_000.0) / dim))
        table = torch.zeros(max_length, dim)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
        self.register_buffer("table", table, persistent=False)

    def forward(self, length: int) -> Tensor:
        return self.table[:length]


POSITIONS = {"learned": LearnedPositions, "sinusoidal": SinusoidalPositions}


class EncoderBlock(nn.Module):
    """Pre-LayerNorm Transformer block: x + attn(LN(x)), then x + FFN(LN(x))."""

    def __init__(
        self, dim: int, num_heads: int, ffn_dim: int, dropout: float, backend: Callable[..., AttentionBackend]
    ) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = MultiHeadAttention(dim, num_heads, backend)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.dropout(self.attention(self.attention_norm(x), key_padding_mask=mask))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class Encoder(nn.Module):
    """Token ids (B, N) and mask (B, N) -> one pooled vector per sequence (B, dim), real tokens only."""

    def __init__(
        self,
        *,
        vocab_size: int,
        max_length: int,
        dim: int,
        num_layers: int,
        num_heads: int,
        ffn_dim: int,
        dropout: float,
        backend: Callable[..., AttentionBackend],
        positions: str = "learned",
        pooling: str = "mean",
    ) -> None:
        super().__init__()
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {sorted(POSITIONS)}, got {positions!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {pooling!r}")
        self.pooling = pooling
        self.tokens = nn.Embedding(vocab_size, dim)
        nn.init.normal_(self.tokens.weight, std=0.02)
        # CLS pooling prepends one learned vector, which takes the first position.
        self.cls = nn.Parameter(torch.zeros(1, 1, dim)) if pooling == "cls" else None
        self.positions = POSITIONS[positions](max_length + (pooling == "cls"), dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(dim, num_heads, ffn_dim, dropout, backend) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, inputs: Tensor, mask: Tensor) -> Tensor:
        x = self.tokens(inputs)  # (B, N, dim)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)
            mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)
        x = self.dropout(x + self.positions(x.shape[1]))
        for block in self.blocks:
            x = block(x, mask)
        x = self.norm(x)
        if self.cls is not None:
            return x[:, 0]
        real = mask.unsqueeze(-1)
        # `where`, not a product: padded rows must not leak even as NaN.
        total = torch.where(real, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum(dim=1)
        return total / real.sum(dim=1).clamp_min(1)


def _head(in_dim: int, hidden: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


class Classifier(nn.Module):
    """One sequence -> class logits: encoder, pooled vector, two-layer MLP head."""

    def __init__(self, encoder: Encoder, dim: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = _head(dim, hidden, num_classes)

    def forward(self, inputs: Tensor, mask: Tensor) -> Tensor:
        return self.head(self.encoder(inputs, mask))


class PairClassifier(nn.Module):
    """Two documents (B, 2, N) -> logits: one shared encoder, head on [u, v, u * v, u - v] (LRA Retrieval)."""

    def __init__(self, encoder: Encoder, dim: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = _head(4 * dim, hidden, num_classes)

    def forward(self, inputs: Tensor, mask: Tensor) -> Tensor:
        batch = inputs.shape[0]
        # Both documents go through the encoder as one batch of 2B sequences.
        pooled = self.encoder(inputs.flatten(0, 1), mask.flatten(0, 1)).view(batch, 2, -1)
        u, v = pooled[:, 0], pooled[:, 1]
        return self.head(torch.cat([u, v, u * v, u - v], dim=-1))


def build_classifier(
    *,
    vocab_size: int,
    max_length: int,
    num_classes: int,
    paired: bool,
    dim: int,
    num_layers: int,
    num_heads: int,
    ffn_dim: int,
    dropout: float,
    backend: Callable[..., AttentionBackend],
    positions: str,
    pooling: str,
) -> nn.Module:
    encoder = Encoder(
        vocab_size=vocab_size,
        max_length=max_length,
        dim=dim,
        num_layers=num_layers,
        num_heads=num_heads,
        ffn_dim=ffn_dim,
        dropout=dropout,
        backend=backend,
        positions=positions,
        pooling=pooling,
    )
    head = PairClassifier if paired else Classifier
    return head(encoder, dim, ffn_dim, num_classes)
