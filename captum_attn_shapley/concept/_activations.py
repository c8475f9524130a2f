#!/usr/bin/env python3
"""The token states TokenTCAV works on: concept examples' activations, and the per-token sensitivity map.

The target examples' attention-weighted token gradients are
:class:`~captum_attn_shapley.attr.LayerAttentionWeightedGradient`'s (TokenTCAV's ``layer_attr_method``).
"""

from typing import Dict, List

import torch
from captum.concept import Concept
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley.attr.layer_weighted_gradient import CLS_ROWS
from captum_attn_shapley.capture.attention import AttentionCapture
from captum_attn_shapley.capture.players import real_token_mask
from captum_attn_shapley.concept._cav_training import TokenActivations


def token_activations(
    capturer: AttentionCapture,
    blocks: Dict[str, Module],
    attention_index: Dict[str, int],
    layers: List[str],
    concept: Concept,
) -> Dict[str, TokenActivations]:
    r"""
    The token activations of one concept's examples at the given blocks: one vector per
    non-padding token, one forward pass per batch of the concept's ``data_iter``.

    Args:
        capturer (AttentionCapture): The capturer of the model's attention.
        blocks (dict[str, Module]): The blocks by name (all of the TokenTCAV's layers, in order).
        attention_index (dict[str, int]): Each block's attention index, by name.
        layers (list[str]): The blocks to read (names of ``blocks``).
        concept (Concept): The concept; its ``data_iter`` yields model inputs.

    Returns:
        dict[str, TokenActivations]: By layer, the tokens' vectors (float, on the CPU) and
        each example's offsets into them.
    """
    unknown = [layer for layer in layers if layer not in blocks]
    if unknown:
        raise ValueError(f"Layers {unknown} were not given to this TokenTCAV (it has {list(blocks)}).")
    if concept.data_iter is None:
        raise ValueError(f"Concept {concept.name!r} (id {concept.id}) has no data_iter: give it examples.")
    chunks: Dict[str, List[Tensor]] = {layer: [] for layer in layers}
    counts: List[int] = []
    modules = [blocks[layer] for layer in layers]
    for batch in concept.data_iter:
        inputs = tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
        if not isinstance(inputs[0], Tensor) or inputs[0].dim() == 0:
            raise TypeError(
                f"Concept {concept.name!r}: data_iter must yield tensors or tuples of tensors (model inputs), "
                f"got {type(inputs[0]).__name__}."
            )
        if inputs[0].shape[0] == 0:
            continue
        captured = capturer.capture(
            inputs, layers=[attention_index[layers[0]]], state_modules=modules, request=CLS_ROWS
        )
        assert captured.states is not None
        states = captured.states
        valid = real_token_mask(captured, states[0].shape[0], states[0].shape[1], states[0].device)
        for layer, state in zip(layers, states):
            chunks[layer].append(state[valid].float().cpu())
        counts.extend(int(c) for c in valid.sum(dim=1))
    if not counts:
        raise ValueError(
            f"Concept {concept.name!r} (id {concept.id}) has no examples: its data_iter yielded nothing."
        )
    offsets = torch.zeros(len(counts) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(torch.tensor(counts), dim=0)
    return {layer: (torch.cat(chunks[layer]), offsets) for layer in layers}


def sensitivity_map(
    grad: Tensor, weight: Tensor, valid: Tensor, vector: Tensor, rescale: bool, attention_weighting: bool
) -> Tensor:
    r"""
    Per-token ``D_t = a_t (g_t . v)`` of a batch (see :meth:`TokenTCAV.token_sensitivity`).

    Args:
        grad (Tensor): Token gradients ``(B, T, F)``.
        weight (Tensor): Token weights ``(B, T)``.
        valid (Tensor): The valid-token mask ``(B, T)``.
        vector (Tensor): The CAV ``(F,)``.
        rescale (bool): Multiply each example's map by ``||a|| / ||S||``.
        attention_weighting (bool): Whether ``weight`` is the attention (else ``valid`` is ``a``).

    Returns:
        Tensor: ``(B, T)``.
    """
    sensitivity = (grad @ vector.to(grad.device)) * valid
    d = weight * sensitivity
    if rescale:
        attention = weight if attention_weighting else valid.float()
        norms = sensitivity.norm(dim=1, keepdim=True).clamp_min(1e-12)
        scale = attention.norm(dim=1, keepdim=True) / norms
        d = d * scale
    return d
