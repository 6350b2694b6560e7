"""Softmax, linear, Performer and LUNA attention behind one interface, for any PyTorch model."""

from luna.base import AttentionBackend, KernelAttention
from luna.kernel import KernelState
from luna.learned import LearnedFeatureMap, LunaAttention
from luna.linear import EluFeatureMap, LinearAttention
from luna.linearize import linearize as linearize
from luna.multihead import MultiHeadAttention
from luna.performer import FavorFeatureMap, PerformerAttention
from luna.softmax import SoftmaxAttention

__all__ = [
    "AttentionBackend",
    "EluFeatureMap",
    "FavorFeatureMap",
    "KernelAttention",
    "KernelState",
    "LearnedFeatureMap",
    "LinearAttention",
    "LunaAttention",
    "MultiHeadAttention",
    "PerformerAttention",
    "SoftmaxAttention",
]
