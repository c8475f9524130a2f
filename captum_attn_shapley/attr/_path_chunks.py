#!/usr/bin/env python3
"""``internal_batch_size`` for ``weighting="ig_attention"``: the path's pass in chunks of examples.

The path's pass runs every example at every point of the path, ``batch x n_steps`` rows, in one forward and
one backward pass. When that is more than ``internal_batch_size`` rows, the examples are split into chunks of
``max(1, internal_batch_size // n_steps)`` and each chunk is one such pass (the steps of one example always
stay in one pass: the step mean is finished inside the attention rebuild, before the ReLU and the reduction).
The chunks' results are concatenated: the same numbers as one pass, up to float round-off.
"""

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar, cast

import torch
from torch import Tensor

from captum_attn_shapley._utils.forward import as_tuple, forward_args_tuple
from captum_attn_shapley.capture.captured import CapturedAttention

_Batch = TypeVar("_Batch")


def example_chunks(batch: int, n_steps: int, internal_batch_size: Optional[int]) -> List[slice]:
    r"""
    The chunks of examples of the path's pass.

    Args:
        batch (int): Examples.
        n_steps (int): Points of the path.
        internal_batch_size (int, optional): Most rows of one pass (None: one pass).

    Returns:
        list[slice]: Consecutive chunks covering every example once.
    """
    if internal_batch_size is None or batch * n_steps <= internal_batch_size:
        return [slice(0, batch)]
    size = max(1, internal_batch_size // n_steps)
    return [slice(start, min(start + size, batch)) for start in range(0, batch, size)]


def _rows(value: Any, batch: int, chunk: slice) -> Any:
    if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == batch:
        return value[chunk]
    if isinstance(value, list) and len(value) == batch:
        return value[chunk]
    return value


def prepare_in_chunks(
    prepare: Callable[..., _Batch],
    chunks: List[slice],
    inputs: Any,
    target: Any,
    additional_forward_args: Any,
    player_mask: Optional[Tensor],
    **options: Any,
) -> _Batch:
    r"""
    Runs ``prepare`` (an attribution's ``_prepare``) on each chunk of examples and concatenates the results.

    Args:
        prepare (Callable): Returns a ``PreparedBatch`` for ``(inputs, target, additional_forward_args,
                    player_mask=..., **options)``.
        chunks (list[slice]): From :func:`example_chunks`.
        inputs, target, additional_forward_args, player_mask: The call's, for the whole batch.
        **options: The other arguments of ``prepare``.

    Returns:
        PreparedBatch: For the whole batch.
    """
    batch = as_tuple(inputs)[0].shape[0]
    parts = []
    for chunk in chunks:
        chunk_inputs: Any = tuple(_rows(v, batch, chunk) for v in as_tuple(inputs))
        if not isinstance(inputs, tuple):
            chunk_inputs = chunk_inputs[0]
        extra: Tuple[Any, ...] = tuple(_rows(v, batch, chunk) for v in forward_args_tuple(additional_forward_args))
        mask = None if player_mask is None else player_mask[chunk]
        parts.append(
            prepare(chunk_inputs, _rows(target, batch, chunk), extra or None, player_mask=mask, **options)
        )
    first: Any = parts[0]
    layout = dataclasses.replace(
        first.layout,
        cls_positions=None
        if first.layout.cls_positions is None
        else torch.cat([p.layout.cls_positions for p in parts]),  # type: ignore[attr-defined]
    )
    return dataclasses.replace(  # type: ignore[no-any-return]
        first,
        captured=concatenate([p.captured for p in parts]),  # type: ignore[attr-defined]
        matrix=torch.cat([p.matrix for p in parts]),  # type: ignore[attr-defined]
        players=torch.cat([p.players for p in parts]),  # type: ignore[attr-defined]
        real_tokens=torch.cat([p.real_tokens for p in parts]),  # type: ignore[attr-defined]
        layout=layout,
    )


def concatenate(parts: List[CapturedAttention]) -> CapturedAttention:
    r"""
    One capture from captures of consecutive chunks of examples (same padded length).

    Args:
        parts (list[CapturedAttention]): The chunks' captures, in order.

    Returns:
        CapturedAttention: Their concatenation along the batch.
    """
    first = parts[0]
    if len(parts) == 1:
        return first

    def cat(values: List[Optional[Tensor]]) -> Optional[Tensor]:
        return None if values[0] is None else torch.cat(cast(List[Tensor], values), dim=0)

    inputs: Dict[str, Any] = {}
    for name, value in first.model_inputs.items():
        if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == first.batch_size:
            inputs[name] = torch.cat([p.model_inputs[name] for p in parts], dim=0)
        else:
            inputs[name] = value
    gradients = None
    if first.gradients is not None:
        per_part = [cast(List[Tensor], p.gradients) for p in parts]
        gradients = [torch.cat([grads[i] for grads in per_part]) for i in range(len(first.gradients))]
    return CapturedAttention(
        logits=torch.cat([p.logits for p in parts]),
        target=torch.cat([p.target for p in parts]),
        attentions=[torch.cat([p.attentions[i] for p in parts]) for i in range(len(first.attentions))],
        gradients=gradients,
        model_inputs=inputs,
        layer_indices=first.layer_indices,
        influence=cat([p.influence for p in parts]),
        batch_size=sum(p.batch_size for p in parts),
        num_tokens=first.num_tokens,
        real_tokens=cat([p.real_tokens for p in parts]),
        cls_positions=cat([p.cls_positions for p in parts]),
        players=cat([p.players for p in parts]),
        engine=first.engine,
    )
