#!/usr/bin/env python3
"""The shared computation of Att and Grad-SAM: the (weighted) attention each token receives."""

from typing import Any, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_attn_shapley._utils.input_warnings import warn_below_precision
from captum_attn_shapley._utils.log import log_usage
from captum_attn_shapley._utils.targets import TargetLike
from captum_attn_shapley.attr.attention_attribution import AttentionAttribution

AttributionOutput = Union[Tensor, Tuple[Tensor, ...]]


class ReceivedAttentionAttribution(AttentionAttribution):
    r"""
    Base of :class:`~captum_attn_shapley.attr.AttentionReceived` (Att) and
    :class:`~captum_attn_shapley.attr.GradSAM`, which differ only in the influence matrix
    (:attr:`weighting`): each token's score is the mean over the selected layers, all heads
    and the real query rows of what it receives, ``score_i = mean_{l, h, q} M[l, h][q, i]``.

    Args: see :class:`~captum_attn_shapley.attr.AttentionAttribution`.
    """

    #: ``"attention"`` (Att) or ``"grad_attention"`` (Grad-SAM).
    weighting = "attention"

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
            inputs, target, additional_forward_args, layers, player_mask: As in
                        :meth:`AttnGradShapley.attribute`. ``target`` only matters for
                        Grad-SAM; Att ignores it.

        Returns:
            *Tensor* or *tuple[Tensor, ...]*: Scores in the same layout as
            :meth:`AttnGradShapley.attribute` (zero for non-players).
        """
        layers, player_mask = self._check_call(inputs, additional_forward_args, layers, player_mask)
        batch = self._prepare(
            inputs, target, additional_forward_args, self.weighting, layers, player_mask, reduction="received"
        )
        scores = batch.matrix
        scores = torch.where(batch.players, scores, torch.zeros_like(scores))
        attributions = self._format_output(inputs, scores, batch.layout)
        warn_below_precision(attributions, self.model)
        return attributions
