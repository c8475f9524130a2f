#!/usr/bin/env python3
"""The shared computation of Att and Grad-SAM: the (weighted) attention each token receives."""

from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_attn_shapley._utils.input_warnings import warn_below_precision
from captum_attn_shapley._utils.log import log_usage
from captum_attn_shapley._utils.targets import TargetLike
from captum_attn_shapley.attr.attention_attribution import AttentionAttribution
from captum_attn_shapley.capture.influence_matrix import check_signed
from captum_attn_shapley.capture.integrated_attention import (
    DEFAULT_STEPS,
    check_internal_batch_size,
    check_n_steps,
)

AttributionOutput = Union[Tensor, Tuple[Tensor, ...]]


class ReceivedAttentionAttribution(AttentionAttribution):
    r"""
    Base of :class:`~captum_attn_shapley.attr.AttentionReceived` (Att) and
    :class:`~captum_attn_shapley.attr.GradSAM`, which differ only in the influence matrix
    (:attr:`weighting`): each token's score is the mean over the selected layers, all heads
    and the real query rows of what it receives, ``score_i = mean_{l, h, q} M[l, h][q, i]``.

    Args: see :class:`~captum_attn_shapley.attr.AttentionAttribution`.
    """

    #: ``"attention"`` (Att), ``"grad_attention"`` (Grad-SAM) or ``"ig_attention"`` (IG-Att received).
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
        return self._received_scores(inputs, target, additional_forward_args, layers, player_mask)[0]

    def _received_scores(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike,
        additional_forward_args: Any,
        layers: Optional[Sequence[int]],
        player_mask: Optional[Tensor],
        signed: bool = False,
        n_steps: int = DEFAULT_STEPS,
        internal_batch_size: Optional[int] = None,
        groups: Optional[Sequence[Sequence[int]]] = None,
    ) -> List[AttributionOutput]:
        """:meth:`attribute`'s computation, with the gradient weightings' options (checked here): the scores in a
        list of one; with ``groups`` (lists of layer indices, the layer attributions), one per group, all groups
        from one capture pass."""
        check_signed(signed, self.weighting)
        check_n_steps(n_steps)
        check_internal_batch_size(internal_batch_size)
        layers, player_mask = self._check_call(inputs, additional_forward_args, layers, player_mask)
        args = (inputs, target, additional_forward_args, self.weighting, layers, player_mask, "received")
        prepared = self._prepare(
            *args, signed=signed, n_steps=n_steps, internal_batch_size=internal_batch_size, groups=groups
        )
        results = []
        for batch in prepared.per_group():
            scores = torch.where(batch.players, batch.matrix, torch.zeros_like(batch.matrix))
            attributions = self._format_output(inputs, scores, batch.layout)
            warn_below_precision(attributions, self.model)
            results.append(attributions)
        return results
