#!/usr/bin/env python3
"""The LRP-weighted attention each token receives (Grad-SAM's axis, AttnLRP's gradient), as Captum attributions.

``weighting="lrp_attention"``: ``R = mean_{l, h} A[l, h] * relu(dA[l, h])`` with ``dA`` the gradient AttnLRP's
modified backward brings to the attention probabilities (:mod:`~captum_attn_shapley.capture.lrp_attention`),
the LRP analogue of Grad-SAM's ``A * relu(dy/dA)``. The same weighting drives the games of
:class:`~captum_attn_shapley.attr.AttnGradShapley` (Shapley-LRP-Att-CLS, -Mutual, -Max-Mutual).
"""

from typing import Any, List, Optional, Sequence, Tuple, Union

from torch import Tensor

from captum_attn_shapley._utils.log import log_usage
from captum_attn_shapley._utils.targets import TargetLike
from captum_attn_shapley.attr._attention_layers import token_scores
from captum_attn_shapley.attr._received import AttributionOutput, ReceivedAttentionAttribution
from captum_attn_shapley.attr.layer_attention import LayerReceivedAttention


class LRPAttentionReceived(ReceivedAttentionAttribution):
    r"""
    The positive LRP relevance of the attention probabilities, aggregated per token like Grad-SAM: the
    attention weighted by the ReLU of the gradient that AttnLRP's backward brings to it (the uniform rule's
    half of ``dO V^T``, see :class:`~captum_attn_shapley.attr.AttnLRP`), ``R = mean_{l, h} A[l, h] *
    relu(dA[l, h])``, and ``score_i = mean_q R[q, i]`` over the real query rows. AttnLRP's rules hold in every
    layer whatever ``layers`` selects (they shape the gradient reaching the selected ones).
    ``attribute(..., signed=True)`` skips the ReLU: ``A * dA`` is then the attention's signed LRP relevance.

    Needs the fused engine: a Hugging Face model on ``sdpa`` attention, in eval mode.

    Args: see :class:`~captum_attn_shapley.AttentionAttribution`.

    Examples::

        >>> scores = LRPAttentionReceived(model).attribute(input_ids, additional_forward_args=(attention_mask,))
    """

    weighting = "lrp_attention"

    @classmethod
    def get_name(cls) -> str:
        return "LRP-Att"

    @log_usage()
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike = None,
        additional_forward_args: Any = None,
        layers: Optional[Sequence[int]] = None,
        player_mask: Optional[Tensor] = None,
        signed: bool = False,
    ) -> AttributionOutput:
        r"""
        Args:
            inputs, target, additional_forward_args, layers, player_mask: As in
                        :meth:`AttnGradShapley.attribute <captum_attn_shapley.attr.AttnGradShapley.attribute>`.
            signed (bool): Keep the sign of the LRP gradient (no ReLU). Default: False.

        Returns:
            *Tensor* or *tuple[Tensor, ...]*: Scores in the layout of ``AttnGradShapley.attribute`` (zero
            for non-players).
        """
        return self._received_scores(inputs, target, additional_forward_args, layers, player_mask, signed)[0]


class LayerLRPAttentionReceived(LayerReceivedAttention):
    r"""
    :class:`LRPAttentionReceived` read on one layer (AttnLRP's rules still hold in every layer):
    ``score_i = mean_{h, q} (A[l, h] * relu(dA[l, h]))[q, i]``. Equal to
    ``LRPAttentionReceived(forward_func).attribute(..., layers=method.layer_indices[0])``.

    Args: see :class:`~captum_attn_shapley.attr.LayerReceivedAttention`.

    Examples::

        >>> lrp_att = LayerLRPAttentionReceived(model, list(model.bert.encoder.layer))
        >>> per_layer = lrp_att.attribute(enc["input_ids"], additional_forward_args=(enc["attention_mask"],))
    """

    method_class = LRPAttentionReceived

    @classmethod
    def get_name(cls) -> str:
        return "Layer LRP-Att"

    @log_usage()
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike = None,
        additional_forward_args: Any = None,
        player_mask: Optional[Tensor] = None,
        signed: bool = False,
    ) -> Union[Tensor, List[Tensor]]:
        r"""
        Args:
            inputs, target, additional_forward_args, player_mask, signed: As in
                        :meth:`LRPAttentionReceived.attribute`.

        Returns:
            *Tensor* or *list[Tensor]*: The layer's token scores (zero for non-players); a list, one per
            layer, if ``layer`` is a list.
        """
        method = self.received
        assert isinstance(method, LRPAttentionReceived)
        args = (inputs, target, additional_forward_args, None, player_mask, signed)
        return self._per_layer(
            lambda groups: [token_scores(out) for out in method._received_scores(*args, groups=groups)]
        )
