#!/usr/bin/env python3
"""The attention backward pass that also reduces the influence matrix, for the fused capture's gradient variants.

The fused kernel's own backward rebuilds the attention probabilities ``A`` and their gradient ``dA = dO V^T``
to compute the gradients of its inputs; rebuilding them a second time for the influence matrix would double
that work. :class:`ReducingAttention` runs the kernel forward (no probabilities kept) and a backward that, a
block of query rows at a time, rebuilds ``A`` and ``dA`` once and uses them for both: the reduction of
``A * relu(dA)`` (``A * dA`` when signed) and the input gradients

    dS = A * (dA - rowsum(dO * O)),   dQ = scale dS K,   dK = scale dS^T Q,   dV = A^T dO

(summed over the query heads that share a key/value head).
"""

from typing import TYPE_CHECKING, Any, Callable, List, Optional, Tuple

import torch
from torch import Tensor

from captum_attn_shapley.capture import native
from captum_attn_shapley.capture.workspace import workspace

if TYPE_CHECKING:
    from captum_attn_shapley.capture.fused import AttentionCall, FusedRecorder


class ReducingAttention(torch.autograd.Function):
    """``output = kernel(query, key, value)``; the backward reduces the layer's influence as it goes (with
    ``lrp=True``, under AttnLRP's attention rules: :mod:`~captum_attn_shapley.capture.lrp_attention`)."""

    @staticmethod
    def forward(
        ctx: Any,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        kernel: Callable[[], Tensor],
        call: "AttentionCall",
        layer: int,
        recorder: "FusedRecorder",
        lrp: bool,
        reduce: bool,
    ) -> Tensor:
        """Runs the kernel (``kernel()``, the call's original attention function); keeps its output. ``lrp``:
        AttnLRP's rules in the backward; ``reduce``: reduce the layer's influence there."""
        output = kernel()
        ctx.save_for_backward(output)
        ctx.call, ctx.layer, ctx.recorder, ctx.lrp, ctx.reduce = call, layer, recorder, lrp, reduce
        return output

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tuple[Optional[Tensor], ...]:
        """The input gradients (:func:`attention_backward`), reducing the layer on the way."""
        (output,) = ctx.saved_tensors
        call: AttentionCall = ctx.call
        want = ctx.needs_input_grad[:3]
        grads = attention_backward(call, output, grad_output, ctx.recorder, ctx.layer, want, ctx.lrp, ctx.reduce)
        if ctx.reduce:
            ctx.recorder.reduced.add(ctx.layer)
        return (*grads, None, None, None, None, None, None)


def attention_backward(
    call: "AttentionCall",
    output: Tensor,
    grad_output: Tensor,
    recorder: "FusedRecorder",
    layer: int,
    want: Tuple[bool, ...],
    lrp: bool = False,
    reduce: bool = True,
) -> Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    r"""
    The gradients of one attention call's inputs, reducing its influence on the way.

    Args:
        call (AttentionCall): The call.
        output (Tensor): Its output ``(batch, queries, heads, dim)``.
        grad_output (Tensor): The gradient of the target logits w.r.t. the output (same shape).
        recorder (FusedRecorder): The capture (its reducer and block size).
        layer (int): The call's layer index.
        want (tuple[bool, bool, bool]): Which of query, key, value need a gradient.
        lrp (bool): AttnLRP's rules (:mod:`.lrp_attention`; ``call`` an ``LRPAttentionCall``, whose value is
                    read at half weight): ``dV``, ``dQ`` and ``dK`` get the uniform rule's factor 1/2 on top.
        reduce (bool): Reduce the layer's influence (False: the gradients only).

    Returns:
        tuple: The gradients of query, key and value (None where not wanted).
    """
    from captum_attn_shapley.capture.fused import blocks

    if not lrp and reduce:  # the compiled kernel, where it applies
        compiled = native.reducing_backward(
            call, output, grad_output, recorder.reducer, layer, want, recorder.grad_row_budget
        )
        if compiled is not None:
            return _input_gradients(call, *compiled)
    query, key, value = call.operands()
    d_out = grad_output.transpose(1, 2).float()
    half = 0.5 if lrp else 1.0  # the uniform rule of A V and Q K^T (AttnLRP)
    delta = (d_out * output.transpose(1, 2).float()).sum(dim=-1, keepdim=True).mul_(half)
    batch, heads, num_queries, _ = query.shape
    num_keys = key.shape[2]
    recorder.reducer.resolve(batch, num_keys, query.device)
    d_query = torch.zeros_like(query) if want[0] else None
    # contiguous: blocks of examples are accumulated into as flat (example * head) batches
    d_key = torch.zeros_like(key, memory_format=torch.contiguous_format) if want[1] else None
    d_value = torch.zeros_like(value, memory_format=torch.contiguous_format) if want[2] else None
    buffers: List[Optional[Tensor]] = [None, None, None]
    for examples, rows in blocks(batch, heads, num_queries, num_keys, recorder.grad_row_budget):
        shape = (examples.stop - examples.start, heads, rows.stop - rows.start, num_keys)
        buffers[0], attention_out = workspace(buffers[0], shape, query)
        buffers[1], grad_out = workspace(buffers[1], shape, query)
        buffers[2], weighted_out = workspace(buffers[2], shape, query)
        attention = call.probabilities(query, key, examples, rows, out=attention_out)
        d_block = d_out[examples, :, rows]
        # P = A * dA; A >= 0, so A * relu(dA) = relu(P) (signed: P), and dS = A * (dA - delta) = P - A * delta.
        product = torch.matmul(d_block, value[examples].transpose(-1, -2), out=grad_out).mul_(attention)
        if reduce:
            signed = recorder.reducer.request.signed
            weighted = weighted_out.copy_(product) if signed else torch.clamp(product, min=0, out=weighted_out)
            recorder.reducer.add(layer, rows, weighted, None, examples)
        if d_value is not None:
            _accumulate(d_value[examples], attention.transpose(-1, -2), d_block, half)
        if d_query is None and d_key is None:
            continue
        d_scores = product.addcmul_(attention, delta[examples, :, rows], value=-1.0)
        if d_query is not None:
            d_query[examples, :, rows] = torch.matmul(d_scores, key[examples]).mul_(call.scaling * half)
        if d_key is not None:
            _accumulate(d_key[examples], d_scores.transpose(-1, -2), query[examples, :, rows], call.scaling * half)
    return _input_gradients(call, d_query, d_key, d_value)


def _input_gradients(
    call: "AttentionCall", d_query: Optional[Tensor], d_key: Optional[Tensor], d_value: Optional[Tensor]
) -> Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    """The gradients in the dtypes of the call's inputs, the key's and value's summed over the query heads that
    share a key/value head."""
    return (
        d_query.to(call.query.dtype) if d_query is not None else None,
        _per_kv_head(d_key, call.key) if d_key is not None else None,
        _per_kv_head(d_value, call.value) if d_value is not None else None,
    )


def _accumulate(total: Tensor, left: Tensor, right: Tensor, alpha: float) -> None:
    """``total += alpha * left @ right`` over the leading (example, head) axes, without a temporary product."""
    flat = total.view(-1, *total.shape[-2:])
    flat.baddbmm_(left.reshape(-1, *left.shape[-2:]), right.reshape(-1, *right.shape[-2:]), alpha=alpha)


def _per_kv_head(grad: Tensor, original: Tensor) -> Tensor:
    """Sums the gradient of the query heads that share a key/value head (grouped-query attention)."""
    groups = grad.shape[1] // original.shape[1]
    if groups > 1:
        grad = grad.view(grad.shape[0], original.shape[1], groups, *grad.shape[2:]).sum(dim=2)
    return grad.to(original.dtype)
