#!/usr/bin/env python3
"""Which tokens the faithfulness metrics replace, and by what.

See the mathematics page of the documentation, section "Faithfulness metrics".

The bins ``K`` (percentages of the players), the top-``k`` players ``r_k`` of each example, one
score per token from a Captum attribution, and the replacement token (``baselines``) and the
special tokens that are never replaced.
"""

import math
from typing import Any, Callable, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley._utils.validation import DEFAULT_BINS, check_bins, check_token_ids
from captum_attn_shapley.capture.special_tokens import model_token_id_sources, resolve_special_token_ids

__all__ = [
    "DEFAULT_BINS",
    "NAMED_REPLACEMENTS",
    "Replacement",
    "check_bins",
    "resolve_replacement",
    "resolve_special_token_ids",
    "selection_size",
    "token_ids",
    "token_scores",
    "top_players",
]

#: Replacement tokens that can be named instead of given as an id.
NAMED_REPLACEMENTS = ("mask", "pad", "unk")

Replacement = Union[int, str]


def bin_index(bins: Tuple[float, ...], k: float) -> int:
    """The position of bin ``k`` in ``bins``, or an error naming the bins."""
    if float(k) not in bins:
        raise ValueError(f"k={k} is not one of the bins {bins}; add it to `bins`.")
    return bins.index(float(k))


def selection_size(num_players: Tensor, k: float) -> Tensor:
    r"""
    ``ceil(n * k / 100)``, computed without floating-point surprises (``ceil(10 * 10 / 100)``
    is 1, not 2).

    Args:
        num_players (Tensor): ``n`` per example.
        k (float): The bin, in percent.

    Returns:
        Tensor: The number of top players of each example, long.
    """
    exact = num_players.double() * float(k) / 100.0
    return torch.ceil(exact - 1e-9).clamp(min=0).long()


def resolve_replacement(
    baselines: Replacement, tokenizer: Any = None, forward_func: Optional[Callable[..., Any]] = None
) -> int:
    r"""
    The token id that replaces removed tokens.

    Args:
        baselines (int or str): A token id, or ``"mask"``, ``"pad"`` or ``"unk"``, looked up
                    on ``tokenizer``, else on the tokenizer saved beside the model behind
                    ``forward_func`` (offline), else on the model's config.
        tokenizer (optional): A Hugging Face tokenizer.
        forward_func (Callable, optional): The forward function (to find the model).

    Returns:
        int: The replacement id.
    """
    if isinstance(baselines, bool):
        raise TypeError("`baselines` must be a token id or one of 'mask', 'pad', 'unk', not a bool.")
    if isinstance(baselines, int):
        if baselines < 0:
            raise ValueError(f"`baselines` must be a non-negative token id, got {baselines}.")
        return baselines
    if not isinstance(baselines, str) or baselines.lower() not in NAMED_REPLACEMENTS:
        raise ValueError(
            f"Unknown replacement {baselines!r}: give a token id or one of {', '.join(NAMED_REPLACEMENTS)}."
        )
    name = baselines.lower() + "_token_id"
    candidates = [tokenizer]
    if tokenizer is None and forward_func is not None:
        candidates += model_token_id_sources(forward_func)
    for source in candidates:
        value = getattr(source, name, None) if source is not None else None
        if isinstance(value, int):
            return value
    raise ValueError(
        f"Cannot find the {baselines} token's id: pass `tokenizer=` (a Hugging Face tokenizer with "
        f"`{name}`) or the id itself as `baselines=`."
    )


def token_ids(
    inputs: Union[Tensor, Tuple[Tensor, ...]], model: Optional[Module] = None
) -> Tuple[Tensor, Tuple[Any, ...]]:
    r"""
    Splits the metrics' inputs into the token ids and the rest, validating the ids (the metrics replace
    tokens by an id, so they need the ids, not embeddings).

    Args:
        inputs (Tensor or tuple): Token ids ``(batch, seq)``, or a tuple whose first element
                    they are.
        model (Module, optional): The model behind the forward function (its vocabulary and length limit).

    Returns:
        tuple: The ids and the remaining inputs (passed on unchanged).
    """
    inputs_tuple = inputs if isinstance(inputs, tuple) else (inputs,)
    if not inputs_tuple:
        raise TypeError("`inputs` must be a tensor of token ids (batch, seq), or a tuple starting with one.")
    ids = check_token_ids(inputs_tuple[0], model)
    if ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError(f"`inputs` is empty (shape {tuple(ids.shape)}): give at least one token per example.")
    return ids, inputs_tuple[1:]


def token_scores(attributions: Union[Tensor, Tuple[Tensor, ...]], shape: Tuple[int, ...]) -> Tensor:
    r"""
    One score per token from a Captum attribution of token inputs.

    Args:
        attributions (Tensor or tuple): Shape ``(batch, seq)``, or ``(batch, seq, hidden)``
                    (summed over the last axis); a tuple is read from its first element
                    (Captum returns a tuple for tuple inputs).
        shape (tuple[int, int]): ``(batch, seq)`` of the inputs.

    Returns:
        Tensor: float64 scores of shape ``(batch, seq)``.
    """
    if isinstance(attributions, tuple):
        if not attributions:
            raise ValueError("`attributions` is an empty tuple.")
        attributions = attributions[0]
    if not isinstance(attributions, Tensor):
        attributions = torch.as_tensor(attributions)
    scores = attributions.detach()
    if scores.dim() == 3:
        scores = scores.sum(dim=-1)
    if tuple(scores.shape) != tuple(shape):
        raise ValueError(
            f"attributions have shape {tuple(attributions.shape)}, expected (batch, seq) = {tuple(shape)} "
            "or (batch, seq, hidden): one score (or one embedding-sized vector) per input token."
        )
    scores = scores.double()
    if not bool(torch.isfinite(scores).all()):
        raise ValueError("attributions contain NaN or infinite values.")
    return scores


def top_players(scores: Tensor, players: Tensor, k: float) -> Tensor:
    r"""
    The mask of ``r_k``: each example's ``ceil(n * k / 100)`` highest-scoring players.

    Args:
        scores (Tensor): Shape ``(batch, seq)``.
        players (Tensor): Bool, shape ``(batch, seq)``.
        k (float): The bin, in percent.

    Returns:
        Tensor: Bool, shape ``(batch, seq)``; ties are broken by position (earlier first).
    """
    masked = torch.where(players, scores, torch.full_like(scores, -math.inf))
    order = torch.sort(masked, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(scores.shape[1], device=scores.device).expand_as(order).contiguous())
    count = selection_size(players.sum(dim=1), k)
    return (rank < count.unsqueeze(1)) & players
