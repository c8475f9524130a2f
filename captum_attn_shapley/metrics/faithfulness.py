#!/usr/bin/env python3
"""Faithfulness metrics of token attributions (SPEC §6): comprehensiveness, sufficiency, F1.

In the style of :func:`captum.metrics.infidelity`: plain functions taking the forward
function, the inputs, the attributions, the target and the additional forward arguments,
batched, returning one value per example. They accept any Captum attribution of token
inputs: shape ``(batch, seq)``, or ``(batch, seq, hidden)`` (e.g. ``LayerIntegratedGradients``
on the embeddings), which is summed over the last axis.

For an example with ``n`` players (real tokens other than the classification token and the
special tokens, which are never replaced) let ``r_k`` be the ``ceil(n * k / 100)`` players with
the highest attribution (ties broken by position, earlier first). With ``p`` the softmax
probability of the explained class (by default the class predicted on the original input)::

    comprehensiveness = 1 / (|K| + 1) * sum_{k in K} [p(x) - p(x with r_k replaced)]
    sufficiency       = 1 / (|K| + 1) * sum_{k in K} [p(x) - p(x with all players but r_k replaced)]

with the paper's bins ``K = {0, 10, 20, 50}`` by default and the ``|K| + 1`` divisor of ERASER
(DeYoung et al., 2020). The F1 compares gold labels with the predictions on the sufficiency
input at ``k = 20``.
"""

import math
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_attn_shapley._utils.forward import logits_from_output
from captum_attn_shapley._utils.targets import TargetLike, normalize_target
from captum_attn_shapley.capture.attention import find_model
from captum_attn_shapley.capture.players import (
    model_special_token_ids,
    offline_tokenizer,
    text_player_mask,
    unique_ids,
)

#: The paper's bins, in percent of the players.
DEFAULT_BINS: Tuple[float, ...] = (0, 10, 20, 50)

#: Replacement tokens that can be named instead of given as an id.
NAMED_REPLACEMENTS = ("mask", "pad", "unk")

Replacement = Union[int, str]


@dataclass
class FaithfulnessCurves:
    r"""
    Probability drops of every example at every bin: the raw material of the metrics.

    Attributes:
        bins (tuple[float, ...]): The bins ``K``, in percent of the players, ascending.
        target (Tensor): The explained class of each example, shape ``(batch,)``.
        probability (Tensor): ``p(x)``, shape ``(batch,)``.
        num_players (Tensor): ``n`` of each example, shape ``(batch,)``.
        num_selected (Tensor): ``|r_k|``, shape ``(batch, len(bins))``.
        comprehensiveness_drops (Tensor): ``p(x) - p(x with r_k replaced)``, shape
                    ``(batch, len(bins))``.
        sufficiency_drops (Tensor): ``p(x) - p(x with all players but r_k replaced)``,
                    shape ``(batch, len(bins))``.
        sufficiency_predictions (Tensor): The class predicted on each sufficiency input,
                    shape ``(batch, len(bins))``.
    """

    bins: Tuple[float, ...]
    target: Tensor
    probability: Tensor
    num_players: Tensor
    num_selected: Tensor
    comprehensiveness_drops: Tensor
    sufficiency_drops: Tensor
    sufficiency_predictions: Tensor

    def comprehensiveness(self) -> Tensor:
        """Comprehensiveness of each example, shape ``(batch,)`` (higher is better)."""
        return self.comprehensiveness_drops.sum(dim=1) / (len(self.bins) + 1)

    def sufficiency(self) -> Tensor:
        """Sufficiency of each example, shape ``(batch,)`` (lower is better)."""
        return self.sufficiency_drops.sum(dim=1) / (len(self.bins) + 1)

    def predictions_at(self, k: float) -> Tensor:
        """The predictions on the sufficiency inputs of bin ``k``, shape ``(batch,)``."""
        return self.sufficiency_predictions[:, _bin_index(self.bins, k)]


def check_bins(bins: Sequence[float]) -> Tuple[float, ...]:
    r"""
    Validates bins given in percent of the players.

    Args:
        bins (sequence of float): Percentages in ``[0, 100]``.

    Returns:
        tuple[float, ...]: The distinct bins, ascending.
    """
    if isinstance(bins, (str, bytes)) or not hasattr(bins, "__iter__"):
        raise TypeError(f"`bins` must be a sequence of percentages, e.g. {DEFAULT_BINS}; got {bins!r}.")
    values = list(bins)
    if not values:
        raise ValueError(f"`bins` is empty: give at least one percentage, e.g. {DEFAULT_BINS}.")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TypeError(f"`bins` must hold numbers (percentages), got {value!r}.")
        if not 0 <= value <= 100:
            raise ValueError(
                f"bin {value} is outside 0-100: bins are percentages of the players, e.g. {DEFAULT_BINS}."
            )
    return tuple(sorted(set(float(v) for v in values)))


def _bin_index(bins: Tuple[float, ...], k: float) -> int:
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
    replacement: Replacement, tokenizer: Any = None, forward_func: Optional[Callable] = None
) -> int:
    r"""
    The token id that replaces removed tokens.

    Args:
        replacement (int or str): A token id, or ``"mask"``, ``"pad"`` or ``"unk"``, looked up
                    on ``tokenizer``, else on the tokenizer saved beside the model behind
                    ``forward_func`` (offline), else on the model's config.
        tokenizer (optional): A Hugging Face tokenizer.
        forward_func (Callable, optional): The forward function (to find the model).

    Returns:
        int: The replacement id.
    """
    if isinstance(replacement, bool):
        raise TypeError("`replacement` must be a token id or one of 'mask', 'pad', 'unk', not a bool.")
    if isinstance(replacement, int):
        if replacement < 0:
            raise ValueError(f"`replacement` must be a non-negative token id, got {replacement}.")
        return replacement
    if not isinstance(replacement, str) or replacement.lower() not in NAMED_REPLACEMENTS:
        raise ValueError(
            f"Unknown replacement {replacement!r}: give a token id or one of {', '.join(NAMED_REPLACEMENTS)}."
        )
    name = replacement.lower() + "_token_id"
    candidates = [tokenizer]
    if tokenizer is None and forward_func is not None:
        candidates += _offline_tokenizer_and_config(forward_func)
    for source in candidates:
        value = getattr(source, name, None) if source is not None else None
        if isinstance(value, int):
            return value
    raise ValueError(
        f"Cannot find the {replacement} token's id: pass `tokenizer=` (a Hugging Face tokenizer with "
        f"`{name}`) or the id itself as `replacement=`."
    )


def _offline_tokenizer_and_config(forward_func: Callable) -> List[Any]:
    try:
        model = find_model(forward_func)
    except (TypeError, ValueError):
        return []
    return [offline_tokenizer(model), getattr(model, "config", None)]


def resolve_special_token_ids(
    special_token_ids: Optional[Sequence[int]], tokenizer: Any = None, forward_func: Optional[Callable] = None
) -> List[int]:
    r"""
    The ids that are never replaced (and never players).

    Args:
        special_token_ids (sequence of int, optional): Given explicitly.
        tokenizer (optional): Else ``tokenizer.all_special_ids``.
        forward_func (Callable, optional): Else those of the model behind it (the tokenizer
                    saved beside it, loaded offline, and its config).

    Returns:
        list[int]: Sorted ids.
    """
    if special_token_ids is not None:
        return unique_ids(special_token_ids)
    if tokenizer is not None:
        return unique_ids(tokenizer.all_special_ids)
    ids: List[int] = []
    if forward_func is not None:
        try:
            model = find_model(forward_func)
        except (TypeError, ValueError):
            model = None
        if model is not None:
            ids = model_special_token_ids(model)
    if not ids:
        raise ValueError(
            "Cannot tell the special tokens (never replaced) from the players: pass `tokenizer=`, "
            "`special_token_ids=` (e.g. tokenizer.all_special_ids) or `player_mask=`."
        )
    return unique_ids(ids)


def _token_ids(inputs: Union[Tensor, Tuple[Tensor, ...]]) -> Tuple[Tensor, Tuple[Any, ...]]:
    inputs_tuple = inputs if isinstance(inputs, tuple) else (inputs,)
    if not inputs_tuple or not isinstance(inputs_tuple[0], Tensor):
        raise TypeError("`inputs` must be a tensor of token ids (batch, seq), or a tuple starting with one.")
    ids = inputs_tuple[0]
    if ids.dim() != 2 or ids.is_floating_point() or ids.dtype == torch.bool:
        raise ValueError(
            f"`inputs` must be integer token ids of shape (batch, seq), got dtype {ids.dtype} and shape "
            f"{tuple(ids.shape)}. The metrics replace tokens by an id, so they need the ids, not embeddings."
        )
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


@torch.no_grad()
def _probabilities(
    forward_func: Callable, ids: Tensor, rest: Tuple[Any, ...], extra: Tuple[Any, ...], apply_softmax: bool
) -> Tensor:
    logits = logits_from_output(forward_func(ids, *rest, *extra))
    if logits.shape[0] != ids.shape[0]:
        raise ValueError(
            f"The forward function returned {logits.shape[0]} rows for {ids.shape[0]} examples: it must "
            "return one row of class scores per example."
        )
    return torch.softmax(logits.double(), dim=1) if apply_softmax else logits.double()


def faithfulness_curves(
    forward_func: Callable,
    inputs: Union[Tensor, Tuple[Tensor, ...]],
    attributions: Union[Tensor, Tuple[Tensor, ...]],
    target: TargetLike = None,
    additional_forward_args: Any = None,
    bins: Sequence[float] = DEFAULT_BINS,
    replacement: Replacement = "mask",
    tokenizer: Any = None,
    special_token_ids: Optional[Sequence[int]] = None,
    player_mask: Optional[Tensor] = None,
    apply_softmax: bool = True,
) -> FaithfulnessCurves:
    r"""
    Replaces each example's top (or all but its top) players at every bin and records the
    drop of the explained class's probability: 2 forward passes over the batch per bin.

    Args:
        forward_func (Callable): The model or a function returning logits (or a Hugging Face
                    output with ``logits``), called as ``forward_func(ids, *rest_of_inputs,
                    *additional_forward_args)``.
        inputs (Tensor or tuple): Token ids ``(batch, seq)``, or a tuple whose first element
                    they are (the rest is passed on unchanged).
        attributions (Tensor or tuple): Scores ``(batch, seq)`` or ``(batch, seq, hidden)``.
        target (int, list, Tensor or None): The explained class (Captum conventions).
                    Default: the class predicted on the original input, as in the paper.
        additional_forward_args (Any, optional): E.g. ``(attention_mask,)``; passed unchanged
                    to every forward call.
        bins (sequence of float): ``K``, percentages of the players in ``[0, 100]``.
                    Default: ``(0, 10, 20, 50)``.
        replacement (int or str): The id written over removed tokens, or ``"mask"`` (default),
                    ``"pad"``, ``"unk"`` (looked up on the tokenizer).
        tokenizer (optional): A Hugging Face tokenizer (replacement and special ids).
        special_token_ids (sequence of int, optional): Ids never replaced; default
                    ``tokenizer.all_special_ids`` (padding is thus never replaced either), else
                    those of the model's saved tokenizer and config.
        player_mask (Tensor, optional): Bool ``(batch, seq)``: the replaceable tokens, instead
                    of the special-token rule.
        apply_softmax (bool): Turn the forward function's outputs into probabilities
                    (False if it already returns probabilities).

    Returns:
        FaithfulnessCurves: Per-example, per-bin drops and predictions.

    Examples::

        >>> curves = faithfulness_curves(model, input_ids, attributions,
        ...                              additional_forward_args=(attention_mask,), tokenizer=tokenizer)
        >>> curves.comprehensiveness()   # (batch,)
        >>> curves.comprehensiveness_drops.mean(0)   # the AOPC curve over the bins
    """
    ids, rest = _token_ids(inputs)
    scores = token_scores(attributions, tuple(ids.shape))
    kept_bins = check_bins(bins)
    if player_mask is None:
        special = resolve_special_token_ids(special_token_ids, tokenizer, forward_func)
        players = text_player_mask(ids, None, special)
    else:
        players = torch.as_tensor(player_mask, device=ids.device)
        if tuple(players.shape) != tuple(ids.shape):
            raise ValueError(
                f"player_mask has shape {tuple(players.shape)}, expected (batch, seq) = {tuple(ids.shape)}."
            )
        players = players.bool()
    replacement_id = resolve_replacement(replacement, tokenizer, forward_func)
    extra = additional_forward_args
    extra = () if extra is None else (extra if isinstance(extra, tuple) else (extra,))

    original = _probabilities(forward_func, ids, rest, extra, apply_softmax)
    explained = normalize_target(target, original)
    scores = scores.to(ids.device)
    rows = torch.arange(ids.shape[0], device=original.device)
    p_x = original[rows, explained]
    replacement_ids = torch.full_like(ids, replacement_id)

    comp: List[Tensor] = []
    suff: List[Tensor] = []
    preds: List[Tensor] = []
    sizes: List[Tensor] = []
    for k in kept_bins:
        top = top_players(scores, players, k)
        sizes.append(top.sum(dim=1))
        for removed, drops in ((top, comp), (players & ~top, suff)):
            if bool(removed.any()):
                probs = _probabilities(
                    forward_func, torch.where(removed, replacement_ids, ids), rest, extra, apply_softmax
                )
            else:
                probs = original
            drops.append(p_x - probs[rows, explained])
            if drops is suff:
                preds.append(probs.argmax(dim=1))
    return FaithfulnessCurves(
        bins=kept_bins,
        target=explained,
        probability=p_x,
        num_players=players.sum(dim=1),
        num_selected=torch.stack(sizes, dim=1),
        comprehensiveness_drops=torch.stack(comp, dim=1),
        sufficiency_drops=torch.stack(suff, dim=1),
        sufficiency_predictions=torch.stack(preds, dim=1),
    )


def comprehensiveness(
    forward_func: Callable,
    inputs: Union[Tensor, Tuple[Tensor, ...]],
    attributions: Union[Tensor, Tuple[Tensor, ...]],
    target: TargetLike = None,
    additional_forward_args: Any = None,
    bins: Sequence[float] = DEFAULT_BINS,
    replacement: Replacement = "mask",
    tokenizer: Any = None,
    special_token_ids: Optional[Sequence[int]] = None,
    player_mask: Optional[Tensor] = None,
    apply_softmax: bool = True,
) -> Tensor:
    r"""
    Comprehensiveness (ERASER): how much the explained class's probability drops when the
    top-attributed players are replaced, averaged over the bins with the ``|K| + 1``
    divisor. Higher is better.

    Args:
        forward_func, inputs, attributions, target, additional_forward_args, bins,
        replacement, tokenizer, special_token_ids, player_mask, apply_softmax:
                    As in :func:`faithfulness_curves`.

    Returns:
        Tensor: float64, shape ``(batch,)``.

    Examples::

        >>> from captum.attr import LayerIntegratedGradients
        >>> attr = LayerIntegratedGradients(forward, model.bert.embeddings).attribute(
        ...     input_ids, baselines=pad_ids, target=0, additional_forward_args=(attention_mask,))
        >>> comprehensiveness(forward, input_ids, attr, target=0,
        ...                   additional_forward_args=(attention_mask,), tokenizer=tokenizer)
    """
    return faithfulness_curves(
        forward_func,
        inputs,
        attributions,
        target,
        additional_forward_args,
        bins,
        replacement,
        tokenizer,
        special_token_ids,
        player_mask,
        apply_softmax,
    ).comprehensiveness()


def sufficiency(
    forward_func: Callable,
    inputs: Union[Tensor, Tuple[Tensor, ...]],
    attributions: Union[Tensor, Tuple[Tensor, ...]],
    target: TargetLike = None,
    additional_forward_args: Any = None,
    bins: Sequence[float] = DEFAULT_BINS,
    replacement: Replacement = "mask",
    tokenizer: Any = None,
    special_token_ids: Optional[Sequence[int]] = None,
    player_mask: Optional[Tensor] = None,
    apply_softmax: bool = True,
) -> Tensor:
    r"""
    Sufficiency (ERASER): how much the explained class's probability drops when every player
    but the top-attributed ones is replaced, averaged over the bins with the ``|K| + 1``
    divisor. Lower is better.

    Args:
        forward_func, inputs, attributions, target, additional_forward_args, bins,
        replacement, tokenizer, special_token_ids, player_mask, apply_softmax:
                    As in :func:`faithfulness_curves`.

    Returns:
        Tensor: float64, shape ``(batch,)``.

    Examples::

        >>> sufficiency(model, input_ids, attributions, additional_forward_args=(attention_mask,),
        ...             tokenizer=tokenizer, bins=(0, 10, 20, 50))
    """
    return faithfulness_curves(
        forward_func,
        inputs,
        attributions,
        target,
        additional_forward_args,
        bins,
        replacement,
        tokenizer,
        special_token_ids,
        player_mask,
        apply_softmax,
    ).sufficiency()


def sufficiency_predictions(
    forward_func: Callable,
    inputs: Union[Tensor, Tuple[Tensor, ...]],
    attributions: Union[Tensor, Tuple[Tensor, ...]],
    k: float = 20,
    additional_forward_args: Any = None,
    replacement: Replacement = "mask",
    tokenizer: Any = None,
    special_token_ids: Optional[Sequence[int]] = None,
    player_mask: Optional[Tensor] = None,
) -> Tensor:
    r"""
    The model's predictions when only each example's top ``k`` percent of players is kept.

    Args:
        forward_func, inputs, attributions, additional_forward_args, replacement, tokenizer,
        special_token_ids, player_mask: As in :func:`faithfulness_curves`.
        k (float): The bin, in percent (default 20, the paper's).

    Returns:
        Tensor: Long, shape ``(batch,)``.
    """
    curves = faithfulness_curves(
        forward_func,
        inputs,
        attributions,
        None,
        additional_forward_args,
        (k,),
        replacement,
        tokenizer,
        special_token_ids,
        player_mask,
    )
    return curves.predictions_at(k)


def f1_of_predictions(labels: Any, predictions: Any, average: str = "macro") -> float:
    r"""
    F1 of predictions against gold labels (scikit-learn's ``f1_score``).

    Args:
        labels (sequence of int or Tensor): Gold labels, one per example.
        predictions (sequence of int or Tensor): Predicted classes.
        average (str): scikit-learn's ``average`` (``"macro"`` by default; ``"binary"`` for
                    the positive class of a 2-class task).

    Returns:
        float: The F1 score.
    """
    from sklearn.metrics import f1_score

    if labels is None:
        raise ValueError("F1 needs the gold labels: pass `labels=` (one class index per example).")
    gold = torch.as_tensor(labels).reshape(-1).cpu()
    pred = torch.as_tensor(predictions).reshape(-1).cpu()
    if gold.numel() != pred.numel():
        raise ValueError(f"{gold.numel()} labels for {pred.numel()} examples: give one label per example.")
    if gold.numel() == 0:
        raise ValueError("F1 of zero examples is undefined.")
    return float(f1_score(gold.numpy(), pred.numpy(), average=average))


def sufficiency_f1(
    forward_func: Callable,
    inputs: Union[Tensor, Tuple[Tensor, ...]],
    attributions: Union[Tensor, Tuple[Tensor, ...]],
    labels: Any,
    k: float = 20,
    additional_forward_args: Any = None,
    replacement: Replacement = "mask",
    tokenizer: Any = None,
    special_token_ids: Optional[Sequence[int]] = None,
    player_mask: Optional[Tensor] = None,
    average: str = "macro",
) -> float:
    r"""
    F1 of the gold labels against the predictions on the sufficiency inputs at ``k``
    percent (SPEC §6: k = 20). A dataset-level number, so it returns one float.

    Args:
        forward_func, inputs, attributions, additional_forward_args, replacement, tokenizer,
        special_token_ids, player_mask: As in :func:`faithfulness_curves`.
        labels (sequence of int or Tensor): Gold labels, required.
        k (float): The bin, in percent.
        average (str): As in :func:`f1_of_predictions`.

    Returns:
        float: The F1 score.

    Examples::

        >>> sufficiency_f1(model, input_ids, attributions, labels, k=20,
        ...                additional_forward_args=(attention_mask,), tokenizer=tokenizer)
    """
    if labels is None:
        raise ValueError("F1 needs the gold labels: pass `labels=` (one class index per example).")
    predictions = sufficiency_predictions(
        forward_func,
        inputs,
        attributions,
        k,
        additional_forward_args,
        replacement,
        tokenizer,
        special_token_ids,
        player_mask,
    )
    return f1_of_predictions(labels, predictions, average)
