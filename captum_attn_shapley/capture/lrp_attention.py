#!/usr/bin/env python3
"""AttnLRP's attention rules in the fused capture: the uniform rule on ``Q K^T`` and ``A V``, the softmax rule.

With relevance written as gradient x input (:mod:`.lrp_rules`), the rules of one attention call
``O = A V``, ``A = softmax(S)``, ``S = scale Q K^T + mask`` are a backward pass with fixed factors:

- ``A V`` (uniform rule): each factor gets half: ``dA = 1/2 dO V^T`` and ``dV = 1/2 A^T dO``;
- the softmax (the rule ``R_S = S * (R_A - A sum R_A)`` of the paper is gradient x input): the plain gradient
  ``dS = A * (dA - rowsum(A * dA))``;
- ``Q K^T`` (uniform rule): ``dQ = 1/2 scale dS K`` and ``dK = 1/2 scale dS^T Q``.

So ``dQ`` and ``dK`` are a quarter of the true gradients and ``dV`` half, as in the authors' library. The
relevance of the attention probabilities themselves is ``A * dA`` (``dA`` with its factor 1/2): the
``"lrp_attention"`` weighting reduces ``A * relu(dA)``, rebuilt block by block in the same backward pass
(:func:`~.fused_backward.attention_backward` with ``lrp=True``).
"""

from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple, cast

import torch
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley.capture.fused_backward import ReducingAttention
from captum_attn_shapley.capture.lrp_rules import UNIFORM, scale_gradient

if TYPE_CHECKING:
    from captum_attn_shapley.capture.fused import AttentionCall, FusedRecorder


class LRPAttentionCall:
    r"""
    An attention call under AttnLRP's rules: the :class:`~.fused.AttentionCall` it wraps, with its value read at
    the uniform rule's weight, so that ``dO V^T`` computed from :meth:`operands` is the rule's
    ``dA = 1/2 dO V^T`` (the capture's reductions read ``dA`` that way). Everything else is the wrapped call's.

    Args:
        call (AttentionCall): The call.
    """

    def __init__(self, call: "AttentionCall") -> None:
        self.call = call
        self.output: Optional[Tensor] = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.call, name)

    def operands(self) -> Tuple[Tensor, Tensor, Tensor]:
        """The query, the key and ``1/2`` the value, float32, one key/value head per query head."""
        query, key, value = self.call.operands()
        return query, key, value * UNIFORM


#: The rules' factor on the gradients of the query and the key: the uniform rule of ``A V`` then of ``Q K^T``.
QUERY_KEY = UNIFORM * UNIFORM


def lrp_attend(
    recorder: "FusedRecorder",
    module: Module,
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
    kernel: Callable[..., Any],
) -> Optional[Tensor]:
    r"""
    Runs one attention call of a capture under AttnLRP's rules (every call of the model's attention modules,
    selected or not: the rules hold in every layer).

    A selected layer whose every row the reduction reads is reduced in the backward pass itself
    (:class:`~.fused_backward.ReducingAttention` with ``lrp=True``); the others run the kernel's own backward
    with the rules' factors on the gradients of query, key and value (1/4, 1/4, 1/2), and the selected ones
    among them (the classification row, the raw probabilities) are kept for the capture's reduction after
    the backward.

    Returns:
        Tensor or None: The call's output ``(batch, queries, heads, dim)``, the kernel's values (None without
        gradients: the kernel runs as it is).
    """
    from captum_attn_shapley.capture.fused import _call_of

    if not torch.is_grad_enabled():
        return None
    call = LRPAttentionCall(_call_of(module, args, kwargs))
    layer = recorder.num_calls
    recorder.num_calls += 1
    recorder.batch_size, recorder.num_tokens = call.query.shape[0], call.key.shape[2]
    request = recorder.reducer.request
    selected = layer in recorder.layers
    reduce = selected and request.rows == "all" and request.reduction != "raw"

    if reduce:

        def run_kernel() -> Tensor:
            return cast(Tensor, kernel(module, *args, **kwargs)[0])

        apply = ReducingAttention.apply
        output = cast(Tensor, apply(args[0], args[1], args[2], run_kernel, call, layer, recorder, True, True))  # type: ignore[no-untyped-call]
    else:  # nothing to rebuild: the kernel's own backward, its inputs' gradients scaled by the rules
        scaled = [scale_gradient(x, factor) for x, factor in zip(args[:3], (QUERY_KEY, QUERY_KEY, UNIFORM))]
        output = cast(Tensor, kernel(module, *scaled, *args[3:], **kwargs)[0])
    if not output.requires_grad:
        output.requires_grad_(True)
    if selected:
        call.output = output
        recorder.calls[layer] = cast("AttentionCall", call)
    return output
