#!/usr/bin/env python3
"""What one capture pass returns."""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from torch import Tensor


@dataclass
class CapturedAttention:
    r"""
    What one capture pass returns.

    Attributes:
        logits (Tensor): The model's output logits, shape ``(batch, num_classes)``, detached.
        target (Tensor): The target class of each example, shape ``(batch,)``.
        attentions (list[Tensor]): With the ``"raw"`` reduction: for each selected layer, the
                    post-softmax attention probabilities, shape ``(batch, heads, tokens, tokens)``,
                    detached; empty otherwise.
        gradients (list[Tensor] or None): With the ``"raw"`` reduction and gradients: for each selected
                    layer, the gradient of the example's target logit w.r.t. that layer's attention
                    probabilities (same shapes); None otherwise.
        model_inputs (dict): The keyword arguments the transformer received (e.g. ``input_ids``,
                    ``attention_mask``, ``pixel_values``), recovered by a forward pre-hook, so that a
                    wrapper's internals are visible.
        layer_indices (list[int]): The indices of the selected layers (attention calls, in call order).
        states (list[Tensor] or None): When ``state_modules`` were given, each one's output (the first
                    tensor of a tuple output), e.g. a transformer block's token states
                    ``(batch, tokens, hidden)``, detached.
        state_gradients (list[Tensor] or None): The gradient of the summed target logits w.r.t. each of
                    those outputs, when requested.
        influence (Tensor or None): The requested reduction of the influence matrix (``"matrix"``:
                    ``(batch, T, T)``; ``"cls_row"`` and ``"received"``: ``(batch, T)``;
                    ``"pair_sums"``: ``(batch, 2, T)``).
        layer_rows (list[Tensor] or None): With ``"layer_cls_rows"``: per selected layer, the
                    classification position's row of the head-averaged attention, ``(batch, T)``.
        batch_size (int): Examples in the batch.
        num_tokens (int): ``T``, the attention's sequence length.
        real_tokens (Tensor or None): Bool ``(batch, T)``: the non-padding tokens.
        cls_positions (Tensor or None): ``(batch,)``: each example's classification position.
        players (Tensor or None): With the ``"pair_sums"`` reduction: the bool ``(batch, T)`` player mask it
                    was accumulated for.
        engine (str): ``"fused"`` or ``"hooks"``: the engine that ran.
    """

    logits: Tensor
    target: Tensor
    attentions: List[Tensor]
    gradients: Optional[List[Tensor]]
    model_inputs: Dict[str, Any] = field(default_factory=dict)
    layer_indices: List[int] = field(default_factory=list)
    states: Optional[List[Tensor]] = None
    state_gradients: Optional[List[Tensor]] = None
    influence: Optional[Tensor] = None
    layer_rows: Optional[List[Tensor]] = None
    batch_size: int = 0
    num_tokens: int = 0
    real_tokens: Optional[Tensor] = None
    cls_positions: Optional[Tensor] = None
    players: Optional[Tensor] = None
    engine: str = "hooks"
