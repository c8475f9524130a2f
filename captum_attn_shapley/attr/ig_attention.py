#!/usr/bin/env python3
"""Attention attribution by integrated gradients (Hao et al., AAAI 2021) per token, as Captum attributions.

See the mathematics page of the documentation, section "Influence matrices" (``weighting="ig_attention"``).
The same weighting drives the games of :class:`~captum_attn_shapley.attr.AttnGradShapley`
(``weighting="ig_attention"``: Shapley-IG-Att-CLS, -Mutual, -Max-Mutual).
"""

from typing import Any, List, Optional, Sequence, Tuple, Union

from torch import Tensor

from captum_attn_shapley._utils.log import log_usage
from captum_attn_shapley._utils.targets import TargetLike
from captum_attn_shapley.attr._attention_layers import token_scores
from captum_attn_shapley.attr._received import AttributionOutput, ReceivedAttentionAttribution
from captum_attn_shapley.attr.layer_attention import LayerReceivedAttention
from captum_attn_shapley.capture.integrated_attention import DEFAULT_STEPS


class IGAttentionReceived(ReceivedAttentionAttribution):
    r"""
    Attention attribution (Hao et al., "Self-Attention Attribution: Interpreting Information Interactions
    Inside Transformer", AAAI 2021) aggregated per token like Grad-SAM: the attention scaled from 0 to ``A``
    along a straight path, its gradients integrated (right Riemann sum, ``n_steps`` points
    ``alpha = k / n_steps``, all in one batched forward and backward pass), ``R = mean_{l, h} A[l, h] *
    relu(mean_k dy/dA[l, h] at alpha_k A)``, and ``score_i = mean_q R[q, i]`` over the real query rows.
    The selected layers are scaled together; :class:`LayerIGAttentionReceived` scales one layer alone, as
    Hao et al. do. ``attribute(..., signed=True)`` skips the ReLU.

    Runs on the fused engine: a Hugging Face model in eval mode whose attention goes through transformers'
    registry (a model on eager attention is switched to ``sdpa`` for the call and restored). Cost: about
    ``n_steps`` forward and backward passes of the batch.

    Args: see :class:`~captum_attn_shapley.AttentionAttribution`.

    Examples::

        >>> scores = IGAttentionReceived(model).attribute(
        ...     input_ids, additional_forward_args=(attention_mask,), n_steps=20)
    """

    weighting = "ig_attention"

    @classmethod
    def get_name(cls) -> str:
        return "IG-Att"

    @log_usage()
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike = None,
        additional_forward_args: Any = None,
        layers: Optional[Sequence[int]] = None,
        player_mask: Optional[Tensor] = None,
        n_steps: int = DEFAULT_STEPS,
        internal_batch_size: Optional[int] = None,
        signed: bool = False,
    ) -> AttributionOutput:
        r"""
        Args:
            inputs, target, additional_forward_args, layers, player_mask: As in
                        :meth:`AttnGradShapley.attribute <captum_attn_shapley.attr.AttnGradShapley.attribute>`.
            n_steps (int): Points of the path. Default: 20.
            internal_batch_size (int, optional): The most rows (examples x ``n_steps``) of one forward
                        and backward pass; more examples run in chunks. Default: None (one pass).
            signed (bool): Keep the sign of the integrated gradient (no ReLU). Default: False.

        Returns:
            *Tensor* or *tuple[Tensor, ...]*: Scores in the layout of ``AttnGradShapley.attribute`` (zero
            for non-players).
        """
        path = (signed, n_steps, internal_batch_size)
        return self._received_scores(inputs, target, additional_forward_args, layers, player_mask, *path)[0]


class LayerIGAttentionReceived(LayerReceivedAttention):
    r"""
    :class:`IGAttentionReceived` on one layer: that layer's attention alone is scaled along the path (Hao et
    al.'s attention attribution of one layer), ``score_i = mean_{h, q} (A[l, h] * relu(mean_k dy/dA[l, h]
    at alpha_k A))[q, i]``. Equal to ``IGAttentionReceived(forward_func).attribute(...,
    layers=method.layer_indices[0])``.

    Args: see :class:`~captum_attn_shapley.attr.LayerReceivedAttention`.

    Examples::

        >>> ig_att = LayerIGAttentionReceived(model, list(model.bert.encoder.layer))
        >>> per_layer = ig_att.attribute(enc["input_ids"], additional_forward_args=(enc["attention_mask"],))
    """

    method_class = IGAttentionReceived

    @classmethod
    def get_name(cls) -> str:
        return "Layer IG-Att"

    @log_usage()
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike = None,
        additional_forward_args: Any = None,
        player_mask: Optional[Tensor] = None,
        n_steps: int = DEFAULT_STEPS,
        internal_batch_size: Optional[int] = None,
        signed: bool = False,
    ) -> Union[Tensor, List[Tensor]]:
        r"""
        Args:
            inputs, target, additional_forward_args, player_mask: As in :meth:`IGAttentionReceived.attribute`.
            n_steps, internal_batch_size, signed: As in :meth:`IGAttentionReceived.attribute`.

        Returns:
            *Tensor* or *list[Tensor]*: The layer's token scores (zero for non-players); a list, one per
            layer, if ``layer`` is a list.
        """
        method = self.received
        assert isinstance(method, IGAttentionReceived)
        args = (inputs, target, additional_forward_args, None, player_mask, signed, n_steps, internal_batch_size)
        return self._per_layer(
            lambda groups: [token_scores(out) for out in method._received_scores(*args, groups=groups)]
        )
