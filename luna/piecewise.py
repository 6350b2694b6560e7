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

from luna.native import segment_relu_kernel


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


def _rows(s: Tensor, breakpoints: Tensor) -> Tensor:
    """For the PyTorch path: (P G,) rows of the (G (H + 1), 2 W) flattened table, group-fastest."""
    groups, hidden = breakpoints.shape
    if groups == 1:
        return torch.searchsorted(breakpoints[0], s)
    segment = torch.searchsorted(breakpoints, s.expand(groups, -1).contiguous())  # (G, P)
    return (segment + torch.arange(groups, device=s.device)[:, None] * (hidden + 1)).T.reshape(-1)


class _SegmentRelu(torch.autograd.Function):
    """relu(slope s + intercept) for scalars s (P,), the (slope, intercept) of each group's segment of s.

    breakpoints (G, H) sorted; table (G, H + 1, 2 W), W slopes then W intercepts per segment; out (P, G W).
    On the CPU a compiled kernel (luna/csrc) does it in one pass; elsewhere, or without a compiler,
    PyTorch operations do, with the backward written out because autograd's (an accumulating
    index_put) is ten times slower on the CPU than index_add. Saving the output costs nothing: the
    attention that consumes it keeps it anyway.
    """

    @staticmethod
    def forward(ctx, s: Tensor, breakpoints: Tensor, table: Tensor) -> Tensor:
        kernel = segment_relu_kernel(s)
        ctx.kernel = kernel
        if kernel is not None:
            out = kernel.forward(s, breakpoints, table)
            ctx.save_for_backward(s, breakpoints, table, out, None)
            return out
        groups, _, width = table.shape
        width //= 2
        rows = _rows(s, breakpoints)
        picked = table.reshape(-1, 2 * width).index_select(0, rows).view(-1, groups, 2 * width)
        out = torch.addcmul(picked[..., width:], picked[..., :width], s[:, None, None]).relu_()
        out = out.view(-1, groups * width)
        ctx.save_for_backward(s, breakpoints, table, out, rows)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        s, breakpoints, table, out, rows = ctx.saved_tensors
        need_s, _, need_table = ctx.needs_input_grad
        if ctx.kernel is not None:
            grad_s, grad_table = ctx.kernel.backward(
                grad.contiguous(), s, breakpoints, table, out, need_s, need_table
            )
            return (grad_s if need_s else None), None, (grad_table if need_table else None)
        groups, _, width = table.shape
        width //= 2
        flat_table = table.reshape(-1, 2 * width)
        grad = (grad * (out > 0)).view(-1, groups, width)
        grad_s = grad_table = None
        if need_s:
            slopes = flat_table[:, :width].contiguous().index_select(0, rows).view_as(grad)
            grad_s = (grad * slopes).sum(dim=(1, 2))
        if need_table:
            per_row = grad.new_empty(*grad.shape[:2], 2 * width)
            torch.mul(grad, s[:, None, None], out=per_row[..., :width])
            per_row[..., width:] = grad
            grad_table = torch.zeros_like(flat_table).index_add_(0, rows, per_row.view(-1, 2 * width))
            grad_table = grad_table.view_as(table)
        return grad_s, None, grad_table


def piecewise_relu(
    s: Tensor, in_weight: Tensor, in_bias: Tensor, out_weight: Tensor, out_bias: Tensor, scale: float = 1.0
) -> Tensor:
    """relu(scale * psi(s)) for scalars s (...,): (..., C), C = out_weight.shape[0], exactly the MLP's."""
    breakpoints, slopes, intercepts = segment_tables(in_weight, in_bias, out_weight, out_bias)
    # One group holds all C channels (W = C); separate groups hold one channel each (W = 1).
    table = torch.cat([slopes, intercepts], dim=2) * scale  # (G, H + 1, 2 W)
    flat = s.reshape(-1).to(breakpoints.dtype).contiguous()
    out = _SegmentRelu.apply(flat, breakpoints.contiguous(), table)
    return out.reshape(*s.shape, out_weight.shape[0]).to(s.dtype)
