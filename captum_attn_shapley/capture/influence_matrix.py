#!/usr/bin/env python3
"""Influence matrices: attention, optionally weighted by (ReLU'd) attention gradients.

See the mathematics page of the documentation, section "Influence matrices".
"""

from typing import List, Optional, Sequence

from torch import Tensor

from captum_attn_shapley._utils.checks import check_choice

#: Accepted values of the ``weighting`` option.
WEIGHTINGS = ("attention", "grad_attention", "ig_attention", "lrp_attention")


def check_weighting(weighting: str) -> str:
    r"""
    Validates the ``weighting`` option.

    Args:
        weighting (str): ``"attention"`` (Att, ``M = mean A``), ``"grad_attention"``
                    (Grad-Att, ``M = mean A * relu(dy/dA)``) or ``"ig_attention"`` (IG-Att, Hao et al. 2021:
                    ``M = mean A * relu(mean_k dy/dA at k/m A)``, the attention scaled along a path)
                    or ``"lrp_attention"`` (LRP-Att: ``M = mean A * relu(dA)`` with ``dA`` the gradient that
                    AttnLRP's modified backward brings to ``A``, :mod:`.lrp_attention`).

    Returns:
        str: The weighting.
    """
    return check_choice(weighting, WEIGHTINGS, "weighting")


def check_signed(signed: bool, weighting: str) -> bool:
    r"""
    Validates the ``signed`` option: keep the sign of the gradient factor (``A * G`` instead of
    ``A * relu(G)``). Only a gradient weighting has a sign to keep (``A >= 0``).

    Args:
        signed (bool): The option.
        weighting (str): The weighting it goes with.

    Returns:
        bool: ``signed``.
    """
    if not isinstance(signed, bool):
        raise ValueError(f"signed must be True or False, got {signed!r}.")
    if signed and weighting == "attention":
        raise ValueError(
            "signed=True keeps the sign of the gradient factor, but weighting='attention' has none (the "
            "attention is never negative): use a gradient weighting (e.g. 'grad_attention') or signed=False."
        )
    return signed


def influence_matrix(
    attentions: Sequence[Tensor], gradients: Optional[List[Tensor]] = None, overwrite_gradients: bool = False
) -> Tensor:
    r"""
    Averages attention (times ReLU'd gradients) over the given layers and all heads.

    ``M = mean_{l,h} A[l,h]`` or ``M = mean_{l,h} A[l,h] * relu(G[l,h])``.

    Args:
        attentions (sequence of Tensor): Per layer, shape ``(batch, heads, T, T)``.
        gradients (list of Tensor, optional): The gradients of the target logit w.r.t.
                    each attention tensor (same shapes). If given, the gradient-weighted
                    matrix is returned.
        overwrite_gradients (bool): Compute ``relu(G) * A`` in place in the gradient
                    tensors (saves two layer-sized allocations per layer; the gradients
                    are garbage afterwards). Default: False.

    Returns:
        Tensor: ``M`` of shape ``(batch, T, T)`` (rows are queries, columns keys).
    """
    if len(attentions) == 0:
        raise ValueError("No attention layers selected.")
    if gradients is not None and len(gradients) != len(attentions):
        raise ValueError("`gradients` must hold one tensor per attention layer.")
    total: Optional[Tensor] = None
    for i, attn in enumerate(attentions):
        if gradients is None:
            layer = attn
        elif overwrite_gradients:
            layer = gradients[i].clamp_(min=0).mul_(attn)
        else:
            layer = attn * gradients[i].clamp_min(0)
        head_mean = layer.mean(dim=1)
        total = head_mean if total is None else total.add_(head_mean)
    assert total is not None
    return total / len(attentions)


def received_per_token(matrix: Tensor, query_mask: Tensor) -> Tensor:
    r"""
    Per-token column aggregation: the mean over real query rows of ``matrix[:, q, i]``.

    For the attention matrix this is the attention each token receives (the "Att"
    baseline; "The baselines" on :doc:`the mathematics page </mathematics>`); for the gradient-weighted
    one, Grad-SAM's token relevance.

    Args:
        matrix (Tensor): Shape ``(batch, T, T)``.
        query_mask (Tensor): Bool, shape ``(batch, T)``: the rows (queries) to average
                    over, i.e. the real (non-padding) tokens.

    Returns:
        Tensor: Shape ``(batch, T)``.
    """
    weights = query_mask.to(matrix.dtype)
    count = weights.sum(dim=1, keepdim=True).clamp_min(1)
    return (weights.unsqueeze(2) * matrix).sum(dim=1) / count
