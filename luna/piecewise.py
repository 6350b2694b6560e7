"""One-hidden-layer ReLU MLPs of a scalar, evaluated exactly as the piecewise-linear functions they are.

psi_l(s) = sum_j w2[l, j] relu(w1_j s + b1_j) + b2[l] is linear between the `hidden` breakpoints
t_j = -b1_j / w1_j. Tabulating the slope and intercept of every segment (O(hidden L) work per call)
turns the evaluation of N scalars into a search and two gathers: O(N L) time and memory instead of
the O(N hidden) activation that the plain MLP keeps for its backward pass. Gradients are exact: they
flow through the gathered table entries, which are differentiable sums of the parameters.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def segment_tables(
    in_weight: Tensor, in_bias: Tensor, out_weight: Tensor, out_bias: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Sorted breakpoints (G, H) and per-segment slopes and intercepts (G, H + 1, C).

    in_weight, in_bias: (G, H), the first-layer units of G groups; out_weight (C', H), out_bias (C').
    One group (G = 1) feeds all C = C' channels; otherwise group l feeds channel l alone (C = 1).
    """
    shared = in_weight.shape[0] == 1
    with torch.no_grad():
        # A unit with zero input weight is constant: always on, so its breakpoint is -inf.
        breakpoints = torch.where(in_weight != 0, -in_bias / in_weight, torch.full_like(in_bias, -math.inf))
        order = breakpoints.argsort(dim=-1)  # (G, H)
    readout = out_weight.T[None] if shared else out_weight[..., None]  # (G, H, C)
    bias = out_bias.view(1, 1, -1) if shared else out_bias.view(-1, 1, 1)  # (G, 1, C)
    # A flat unit is on everywhere when its bias is positive and nowhere otherwise (as relu is).
    gate = ((in_weight != 0) | (in_bias > 0)).to(in_weight.dtype)[..., None]
    rising = (in_weight >= 0)[..., None]  # on right of its breakpoint (flat units: everywhere)
    index = order[..., None].expand(-1, -1, readout.shape[-1])
    rising = rising.expand(-1, -1, readout.shape[-1]).gather(1, index)

    tables = []
    for per_unit in (in_weight[..., None] * readout * gate, in_bias[..., None] * readout * gate):  # (G, H, C)
        per_unit = per_unit.gather(1, index)  # in breakpoint order
        up = torch.where(rising, per_unit, 0.0)
        down = torch.where(rising, 0.0, per_unit)
        zero = torch.zeros_like(up[:, :1])
        # Segment k lies right of the first k breakpoints: the rising units among those are on,
        # and so are the falling units among the rest.
        up_before = torch.cat([zero, up.cumsum(dim=1)], dim=1)
        down_after = down.sum(dim=1, keepdim=True) - torch.cat([zero, down.cumsum(dim=1)], dim=1)
        tables.append(up_before + down_after)
    slopes, intercepts = tables
    return breakpoints.gather(1, order), slopes, intercepts + bias


class _SegmentRelu(torch.autograd.Function):
    """relu(slope s + intercept), (slope, intercept) taken from row `rows[r]` of a (T, 2K) table.

    The backward is written out because autograd's (an accumulating index_put) is ten times slower
    on the CPU than index_add and dominated the whole attention layer. Saving the output costs
    nothing: the attention that consumes it keeps it anyway.
    """

    @staticmethod
    def forward(ctx, s: Tensor, rows: Tensor, table: Tensor) -> Tensor:
        width = table.shape[1] // 2
        picked = table.index_select(0, rows)  # (R, 2K): slopes, then intercepts
        out = torch.addcmul(picked[:, width:], picked[:, :width], s).relu_()  # (R, K)
        ctx.save_for_backward(s, rows, table, out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        s, rows, table, out = ctx.saved_tensors
        width = table.shape[1] // 2
        grad = grad * (out > 0)
        grad_s = grad_table = None
        if ctx.needs_input_grad[0]:
            slopes = table[:, :width].contiguous().index_select(0, rows)
            grad_s = (grad * slopes).sum(dim=1, keepdim=True)
        if ctx.needs_input_grad[2]:
            per_row = torch.cat([grad * s, grad], dim=1)  # (R, 2K)
            grad_table = torch.zeros_like(table).index_add_(0, rows, per_row)
        return grad_s, None, grad_table


def piecewise_relu(
    s: Tensor, in_weight: Tensor, in_bias: Tensor, out_weight: Tensor, out_bias: Tensor, scale: float = 1.0
) -> Tensor:
    """relu(scale * psi(s)) for scalars s (...,): (..., C), C = out_weight.shape[0], exactly the MLP's."""
    breakpoints, slopes, intercepts = segment_tables(in_weight, in_bias, out_weight, out_bias)
    groups, segments, _ = slopes.shape
    flat = s.reshape(-1, 1).to(breakpoints.dtype)  # (P, 1)
    if groups == 1:
        # One row per scalar holding all C channels' slopes and intercepts: (H + 1, 2C).
        table = torch.cat([slopes[0], intercepts[0]], dim=1) * scale
        rows = torch.searchsorted(breakpoints[0], flat[:, 0])  # (P,)
    else:
        # One row per (scalar, channel), each channel with its own breakpoints: (C (H + 1), 2).
        table = torch.cat([slopes, intercepts], dim=2).reshape(groups * segments, 2) * scale
        segment = torch.searchsorted(breakpoints, flat.T.expand(groups, -1).contiguous())  # (C, P)
        rows = (segment + torch.arange(groups, device=s.device)[:, None] * segments).T.reshape(-1)
        flat = flat.expand(-1, groups).reshape(-1, 1)  # (P C, 1), channel-fastest like rows
    out = _SegmentRelu.apply(flat, rows, table)
    return out.reshape(*s.shape, -1).to(s.dtype)
