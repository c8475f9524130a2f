#!/usr/bin/env python3
"""Grad-SAM, the paper's gradient-weighted attention baseline, as a Captum attribution.

See the mathematics page of the documentation, section "The baselines".
"""

from captum_attn_shapley.attr._received import ReceivedAttentionAttribution


class GradSAM(ReceivedAttentionAttribution):
    r"""
    Grad-SAM (Barkan et al., "Grad-SAM: Explaining Transformers via Gradient
    Self-Attention Maps", CIKM 2021): the attention maps weighted elementwise by the ReLU
    of the gradient of the target logit w.r.t. them, averaged over layers and heads,
    ``R = mean_{l, h} A[l, h] * relu(dy / dA[l, h])``, and aggregated per token over the
    KEY axis: ``score_i = mean_q R[q, i]`` over the real query rows q, i.e. how much
    gradient-weighted attention token ``i`` receives (the same axis as Att).

    Args: see :class:`~captum_attn_shapley.AttentionAttribution`.

    Examples::

        >>> scores = GradSAM(model).attribute(input_ids, target=1,
        ...                                   additional_forward_args=(attention_mask,))
    """

    weighting = "grad_attention"

    @classmethod
    def get_name(cls) -> str:
        return "Grad-SAM"
