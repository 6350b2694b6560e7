"""transformers plumbing for `luna.linearize`: an attention function that runs each layer's own backend."""

from __future__ import annotations

import torch
from torch import Tensor, nn

# The name under which the function below is registered in transformers' attention interface.
IMPLEMENTATION = "luna_backend"
# The attribute of each self-attention module that holds its backend (a registered submodule).
BACKEND_ATTRIBUTE = "attention_backend"
# (query, key, value) Linear names across the supported families: BERT's, and ViT's since transformers 5.
PROJECTION_NAMES = (("query", "key", "value"), ("q_proj", "k_proj", "v_proj"))


def key_padding_from_mask(attention_mask: Tensor | None, num_keys: int) -> Tensor | None:
    """The (B, N) bool key padding mask, True on real keys, from the mask transformers hands an attention function.

    Depending on the version and the mask interface that mask is None (no padding), a boolean
    (B, 1, Nq, Nk) "may attend" mask, or an additive float mask holding 0 where attention is allowed and a
    large negative number elsewhere. For an encoder every query row holds the same padding pattern.
    """
    if attention_mask is None:
        return None
    if attention_mask.shape[-1] != num_keys:
        raise ValueError(f"attention mask covers {attention_mask.shape[-1]} keys, the layer has {num_keys}")
    allowed = attention_mask if attention_mask.dtype == torch.bool else attention_mask == 0
    # Any query (and head) that may see a key makes it a real key: (B, ..., Nq, Nk) -> (B, Nk).
    key_padding_mask = allowed.flatten(start_dim=1, end_dim=-2).any(dim=1)
    return None if bool(key_padding_mask.all()) else key_padding_mask


def backend_attention(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: object,
) -> tuple[Tensor, None]:
    """transformers' attention-function contract: (B, H, N, D) inputs -> (B, N, H, D) output, no weights.

    `kwargs` is the interface's own catch-all (cache positions, output flags): none of it concerns an
    encoder's self-attention. `dropout` on attention probabilities has no counterpart in linear attention
    and is not applied.
    """
    backend = getattr(module, BACKEND_ATTRIBUTE, None)
    if backend is None:
        raise RuntimeError(
            f"{type(module).__name__} has no `{BACKEND_ATTRIBUTE}`: the model's attention implementation is "
            f"'{IMPLEMENTATION}' but this module was not converted by luna.linearize"
        )
    head_dim = query.shape[-1]
    # Every backend applies (or, for linear maps, assumes) the 1 / sqrt(D) of SDPA; fold in any other scale.
    if scaling is not None and abs(scaling * head_dim**0.5 - 1.0) > 1e-12:
        query = query * (scaling * head_dim**0.5)
    key_padding_mask = key_padding_from_mask(attention_mask, key.shape[-2])
    out = backend(query, key, value, key_padding_mask=key_padding_mask)  # (B, H, N, D)
    return out.transpose(1, 2).contiguous(), None


def register() -> None:
    """Make IMPLEMENTATION a valid `attn_implementation`; masks are built as for SDPA (bool or None)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(IMPLEMENTATION, backend_attention)
    AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)


def self_attention_modules(model: nn.Module) -> list[nn.Module]:
    """The modules that project hidden states to queries, keys and values with their own Linear layers."""
    found = []
    for module in model.modules():
        for names in PROJECTION_NAMES:
            if all(isinstance(getattr(module, name, None), nn.Linear) for name in names):
                found.append(module)
                break
    return found


def heads_of(module: nn.Module, num_heads: int) -> tuple[int, int]:
    """(head_dim, num_heads) of one self-attention module; the config's head count is the fallback."""
    num_heads = getattr(module, "num_attention_heads", num_heads)
    query = module.query if hasattr(module, "query") else module.q_proj
    return query.out_features // num_heads, num_heads
