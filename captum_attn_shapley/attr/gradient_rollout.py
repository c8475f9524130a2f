#!/usr/bin/env python3
"""Chefer et al.'s gradient-weighted attention rollout, as a Captum attribution.

Chefer, Gur and Wolf, "Generic Attention-model Explainability for Interpreting Bi-Modal and
Encoder-Decoder Transformers" (ICCV 2021), self-attention rules (their equations 5 and 6): with
``R = I`` (``T x T``) and, layer by layer in the order the model runs them,

    Abar_l = mean_h relu(dy/dA[l, h] * A[l, h]),        R <- R + Abar_l R,

each token's relevance is its entry in the classification position's row of the final ``R``.
Since ``A >= 0``, ``relu(G * A) = A * relu(G)``: ``Abar_l`` is the layer's Grad-Att matrix of the
mathematics page, before the mean over layers.
"""

from typing import Any, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_attn_shapley._utils.forward import as_tuple
from captum_attn_shapley._utils.input_warnings import warn_below_precision
from captum_attn_shapley._utils.log import log_usage
from captum_attn_shapley._utils.targets import TargetLike
from captum_attn_shapley.attr.attention_attribution import AttentionAttribution
from captum_attn_shapley.capture import InfluenceRequest
from captum_attn_shapley.capture.players import infer_layout

AttributionOutput = Union[Tensor, Tuple[Tensor, ...]]


def rollout_rows(attentions: Sequence[Tensor], gradients: Sequence[Tensor], positions: Tensor) -> Tensor:
    r"""
    The classification rows of Chefer et al.'s rollout ``R = (I + Abar_L) ... (I + Abar_1)``.

    Only row ``c`` of ``R`` is needed, so it is computed as a row vector from the last layer down,
    ``r <- r + r Abar_l``: ``O(L T^2)`` per example instead of the ``O(L T^3)`` of the matrix
    recursion ``R <- R + Abar_l R`` (same product, other association), in float64.

    Args:
        attentions (sequence of Tensor): Per layer, in the order the model runs them, the attention
                    probabilities ``(batch, heads, T, T)``.
        gradients (sequence of Tensor): The gradients of the target logit w.r.t. them (same shapes).
        positions (Tensor): ``(batch,)``: each example's classification position ``c``.

    Returns:
        Tensor: ``(batch, T)``, float64: ``R[c, :]`` of each example.
    """
    if len(attentions) == 0 or len(attentions) != len(gradients):
        raise ValueError(
            f"rollout_rows needs one gradient per attention layer and at least one layer; got "
            f"{len(attentions)} attention and {len(gradients)} gradient tensors."
        )
    batch, num_tokens = attentions[0].shape[0], attentions[0].shape[-1]
    device = attentions[0].device
    row = torch.zeros(batch, num_tokens, dtype=torch.float64, device=device)
    row[torch.arange(batch, device=device), positions.to(device).long()] = 1.0
    for attention, gradient in zip(reversed(list(attentions)), reversed(list(gradients))):
        layer = (attention.double() * gradient.double().clamp_min(0)).mean(dim=1)  # (batch, T, T)
        row = row + torch.bmm(row.unsqueeze(1), layer).squeeze(1)
    return row


class GradientRollout(AttentionAttribution):
    r"""
    Gradient-weighted attention rollout (Chefer, Gur and Wolf, "Generic Attention-model
    Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers", ICCV 2021): per
    layer the head mean of ``relu(dy/dA * A)`` (``Abar_l``), propagated through the residual
    stream by ``R <- R + Abar_l R`` from ``R = I``; each token's score is its entry of the
    classification position's row of ``R``. One forward and one backward pass for the whole batch
    (the attention and its gradient are captured per layer; see
    :class:`~captum_attn_shapley.capture.AttentionCapture`).

    The rollout holds every selected layer's ``(batch, heads, T, T)`` attention and gradient at
    once (it multiplies the layers' matrices), so its memory grows as ``L T^2``, unlike the
    attention games, which reduce each layer as it comes.

    Args: see :class:`~captum_attn_shapley.attr.AttentionAttribution`.

    Examples::

        >>> rollout = GradientRollout(model)
        >>> scores = rollout.attribute(input_ids, target=1, additional_forward_args=(attention_mask,))
        >>> scores.shape  # (batch, seq_len), zero at [CLS], [SEP] and padding
    """

    @classmethod
    def get_name(cls) -> str:
        return "Chefer-Rollout"

    @log_usage()
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike = None,
        additional_forward_args: Any = None,
        layers: Optional[Sequence[int]] = None,
        player_mask: Optional[Tensor] = None,
    ) -> AttributionOutput:
        r"""
        Args:
            inputs, target, additional_forward_args, player_mask: As in
                        :meth:`AttnGradShapley.attribute`.
            layers (sequence of int, optional): The layers rolled out, in the order the model runs
                        them (default: all; negative indices count from the end). The others are
                        skipped, i.e. treated as ``Abar_l = 0``.

        Returns:
            *Tensor* or *tuple[Tensor, ...]*: ``R[c, i]`` in the layout of
            :meth:`AttnGradShapley.attribute` (zero for non-players).
        """
        selected, mask = self._check_call(inputs, additional_forward_args, layers, player_mask)
        inputs_tuple = as_tuple(inputs)
        captured = self.capturer.capture(
            inputs,
            target=target,
            additional_forward_args=additional_forward_args,
            layers=selected,
            request=InfluenceRequest("raw", "grad_attention"),
            classification_position=self.classification_position,
        )
        layout = infer_layout(captured, self.model, inputs_tuple, self.classification_position)
        assert captured.gradients is not None and layout.cls_positions is not None
        players = self._player_mask(captured, layout, inputs_tuple, mask)
        rows = rollout_rows(captured.attentions, captured.gradients, layout.cls_positions)
        dtype = captured.attentions[0].dtype
        scores = torch.where(players.to(rows.device), rows, torch.zeros((), dtype=rows.dtype)).to(dtype)
        attributions = self._format_output(inputs, scores, layout)
        warn_below_precision(attributions, self.model)
        return attributions
