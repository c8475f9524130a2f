#!/usr/bin/env python3
"""Att, the paper's attention baseline, as a Captum attribution.

See the mathematics page of the documentation, section "The baselines".
"""

from captum_attn_shapley.attr._received import ReceivedAttentionAttribution


class AttentionReceived(ReceivedAttentionAttribution):
    r"""
    "Att": the attention each token receives,
    ``score_i = mean_{l, h, q} A[l, h][q, i]`` over the selected layers, all heads and the
    real (non-padding) query rows. (Summing each row over keys instead, as the reference
    code does, gives the constant 1 for every token; that defect is not reproduced.)

    Args: see :class:`~captum_attn_shapley.AttentionAttribution`.

    Examples::

        >>> att = AttentionReceived(model)
        >>> scores = att.attribute(input_ids, additional_forward_args=(attention_mask,))
    """

    weighting = "attention"

    @classmethod
    def get_name(cls) -> str:
        return "Att"
