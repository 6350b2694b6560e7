"""Post-hoc conversion: swap the softmax self-attention of a pretrained BERT or ViT for any backend."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable

import torch
from torch import Tensor, nn

from luna.base import AttentionBackend
from luna.hf_attention import BACKEND_ATTRIBUTE, IMPLEMENTATION, heads_of, register, self_attention_modules
from luna.learned import LunaAttention
from luna.linear import LinearAttention
from luna.performer import PerformerAttention
from luna.softmax import SoftmaxAttention

BACKENDS: dict[str, type[AttentionBackend]] = {
    "softmax": SoftmaxAttention,
    "linear": LinearAttention,
    "performer": PerformerAttention,
    "luna": LunaAttention,
}
# BERT routes its attention through transformers' AttentionInterface from 5.0 on (ViT from 4.52).
MIN_TRANSFORMERS_MAJOR = 5


def _check_transformers() -> None:
    import transformers

    if int(transformers.__version__.split(".")[0]) < MIN_TRANSFORMERS_MAJOR:
        raise ImportError(
            f"luna.linearize needs transformers>={MIN_TRANSFORMERS_MAJOR}.0, found {transformers.__version__}"
        )


def linearize(
    model: nn.Module,
    attention: str | Callable[..., AttentionBackend] = "luna",
    **backend_options: object,
) -> nn.Module:
    """Give every self-attention layer of a transformers BERT- or ViT-family encoder its own `attention`
    backend, in place, and return the model.

    `attention` is a name in BACKENDS or a backend class or partial (e.g. a Hydra `_partial_` config);
    `backend_options` go straight to its constructor, which rejects unknown ones. The query, key, value
    and output weights are kept: only the softmax between them is replaced, padding included, so
    `attention="softmax"` reproduces the original model. Each backend is a submodule of its layer's
    attention module (`<module>.attention_backend`), saved in the `state_dict`.
    """
    _check_transformers()
    config = model.config
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        raise ValueError("linearize converts encoders only: this model is a decoder or has cross-attention")
    if isinstance(attention, str) and attention not in BACKENDS:
        raise ValueError(f"attention must be one of {sorted(BACKENDS)} or a backend class, got {attention!r}")
    build = BACKENDS[attention] if isinstance(attention, str) else attention
    modules = self_attention_modules(model)
    if len(modules) != config.num_hidden_layers:
        raise ValueError(
            f"found {len(modules)} self-attention modules with query/key/value projections in "
            f"{type(model).__name__}, expected one per layer ({config.num_hidden_layers})"
        )
    for module in modules:
        head_dim, num_heads = heads_of(module, config.num_attention_heads)
        weight = next(module.parameters())
        backend = build(head_dim=head_dim, num_heads=num_heads, **backend_options)
        setattr(module, BACKEND_ATTRIBUTE, backend.to(device=weight.device, dtype=weight.dtype))
    register()
    model.set_attn_implementation(IMPLEMENTATION)
    return model


def attention_backends(model: nn.Module) -> list[AttentionBackend]:
    """The backends linearize installed, one per layer, in layer order."""
    return [getattr(m, BACKEND_ATTRIBUTE) for m in model.modules() if hasattr(m, BACKEND_ATTRIBUTE)]


def backend_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters linearize added (LUNA's feature maps); none for softmax, linear and Performer."""
    return [p for backend in attention_backends(model) for p in backend.parameters()]


def _masked_mse(output: Tensor, target: Tensor, key_padding_mask: Tensor | None) -> Tensor:
    per_token = (output.float() - target.float()).pow(2).mean(dim=(1, 3))  # (B, N)
    return per_token.mean() if key_padding_mask is None else per_token[key_padding_mask].mean()


@contextmanager
def attention_transfer(model: nn.Module) -> Iterator[list[Tensor]]:
    """While active, every converted layer passes on the softmax attention of its own queries, keys and
    values, so the model computes exactly as the original one, and appends to the yielded list the MSE,
    over real query tokens, between its backend's output and that softmax output (attention transfer as
    in LoLCATs: each layer learns from the teacher's inputs, not from its own earlier mistakes).
    """
    losses: list[Tensor] = []

    def make_hook(teacher: SoftmaxAttention) -> Callable[..., Tensor]:
        def hook(backend: nn.Module, args: tuple, kwargs: dict, output: Tensor) -> Tensor:
            q, k, v = args
            key_padding_mask = kwargs.get("key_padding_mask")
            with torch.no_grad():
                target = teacher(q, k, v, key_padding_mask=key_padding_mask)
            losses.append(_masked_mse(output, target, key_padding_mask))
            return target

        return hook

    handles = [
        backend.register_forward_hook(
            make_hook(SoftmaxAttention(backend.head_dim, backend.num_heads)), with_kwargs=True
        )
        for backend in attention_backends(model)
    ]
    if not handles:
        raise ValueError("attention_transfer needs a model converted by luna.linearize")
    try:
        yield losses
    finally:
        for handle in handles:
            handle.remove()
