#!/usr/bin/env python3
"""Faithfulness metrics of token attributions: comprehensiveness, sufficiency, F1.

See the mathematics page of the documentation, section "Faithfulness metrics".

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

from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_attn_shapley._utils.deprecation import renamed_keyword
from captum_attn_shapley._utils.forward import (
    args_for_rows,
    class_probabilities,
    forward_args_tuple,
    logits_from_output,
)
from captum_attn_shapley._utils.input_warnings import warn_if_probabilities
from captum_attn_shapley._utils.targets import TargetLike, normalize_target
from captum_attn_shapley._utils.validation import check_binary_mask, check_inputs, check_token_id, unwrap_compiled
from captum_attn_shapley.capture import model_behind, text_player_mask
from captum_attn_shapley.metrics.token_selection import (
    DEFAULT_BINS,
    Replacement,
    bin_index,
    check_bins,
    resolve_replacement,
    resolve_special_token_ids,
    token_ids,
    token_scores,
    top_players,
)
from captum_attn_shapley.shapley._estimation import check_positive_int


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
        return self.sufficiency_predictions[:, bin_index(self.bins, k)]


#: Tokens per forward pass of the metrics by default: on a CPU, passes of a few thousand tokens
#: run faster per token than larger ones (measured in benchmarks/bench_reference_speed.py);
#: on an accelerator all bins' inputs of a batch share one pass up to 65,536 tokens.
DEFAULT_TOKENS_PER_PASS = {"cpu": 2**11, "accelerator": 2**16}


@torch.no_grad()
def _distinct_outputs(
    forward_func: Callable[..., Any],
    rows: Tensor,
    others: Tuple[Any, ...],
    apply_softmax: bool,
    internal_batch_size: Optional[int],
) -> Tuple[Tensor, Tensor]:
    r"""
    Runs every distinct input once. ``rows`` is ``(batch, r, seq)``: each example's original
    ids (``r = 0``) and its masked versions. Returns the class scores (probabilities, or the
    forward function's outputs when ``apply_softmax`` is False) of every row, shape
    ``(batch, r, classes)`` float64, and the logits of the original inputs.
    """
    batch, per_example, seq = rows.shape
    example = torch.arange(batch, device=rows.device).repeat_interleave(per_example)
    keyed = torch.cat([example.unsqueeze(1), rows.reshape(-1, seq)], dim=1)
    distinct, inverse = torch.unique(keyed, dim=0, return_inverse=True)
    budget = DEFAULT_TOKENS_PER_PASS["cpu" if rows.device.type == "cpu" else "accelerator"]
    limit = internal_batch_size or max(1, budget // max(seq, 1))
    outputs: List[Tensor] = []
    for start in range(0, distinct.shape[0], limit):
        part = distinct[start : start + limit]
        owner = part[:, 0]
        args = tuple(args_for_rows(arg, owner, batch) for arg in others)
        logits = logits_from_output(forward_func(part[:, 1:].to(rows.dtype), *args))
        if logits.shape[0] != part.shape[0]:
            raise ValueError(
                f"The forward function returned {logits.shape[0]} rows for {part.shape[0]} examples: it must "
                "return one row of class scores per example."
            )
        outputs.append(logits)
    logits = torch.cat(outputs)[inverse.to(outputs[0].device)].reshape(batch, per_example, -1)
    scores = class_probabilities(logits.flatten(0, 1)).reshape(logits.shape) if apply_softmax else logits.double()
    return scores, logits[:, 0]


@renamed_keyword("replacement", "baselines")
def faithfulness_curves(
    forward_func: Callable[..., Any],
    inputs: Union[Tensor, Tuple[Tensor, ...]],
    attributions: Union[Tensor, Tuple[Tensor, ...]],
    target: TargetLike = None,
    additional_forward_args: Any = None,
    bins: Sequence[float] = DEFAULT_BINS,
    baselines: Replacement = "mask",
    tokenizer: Any = None,
    special_token_ids: Optional[Sequence[int]] = None,
    player_mask: Optional[Tensor] = None,
    apply_softmax: bool = True,
    internal_batch_size: Optional[int] = None,
) -> FaithfulnessCurves:
    r"""
    Replaces each example's top (or all but its top) players at every bin and records the
    drop of the explained class's probability. All masked inputs of all bins are built first
    and run with the original inputs, each distinct input once (two bins that select the same
    tokens of a short example, or a bin that replaces nothing, cost nothing more), in forward
    passes of at most ``internal_batch_size`` inputs.

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
        baselines (int or str): The id written over removed tokens, or ``"mask"`` (default),
                    ``"pad"``, ``"unk"`` (looked up on the tokenizer). Formerly ``replacement``
                    (deprecated alias, removed in the next release).
        tokenizer (optional): A Hugging Face tokenizer (replacement and special ids).
        special_token_ids (sequence of int, optional): Ids never replaced; default
                    ``tokenizer.all_special_ids`` (padding is thus never replaced either), else
                    those of the model's saved tokenizer and config.
        player_mask (Tensor, optional): Bool ``(batch, seq)``: the replaceable tokens, instead
                    of the special-token rule.
        apply_softmax (bool): Turn the forward function's outputs into probabilities
                    (False if it already returns probabilities).
        internal_batch_size (int, optional): Most inputs per forward pass (Captum's name).
                    Default: as many as hold 2,048 tokens on a CPU (smaller passes run
                    faster per token there), 65,536 tokens on an accelerator.

    Returns:
        FaithfulnessCurves: Per-example, per-bin drops and predictions.

    Examples::

        >>> curves = faithfulness_curves(model, input_ids, attributions,
        ...                              additional_forward_args=(attention_mask,), tokenizer=tokenizer)
        >>> curves.comprehensiveness()   # (batch,)
        >>> curves.comprehensiveness_drops.mean(0)   # the AOPC curve over the bins
    """
    model = unwrap_compiled(model_behind(forward_func))
    ids, rest = token_ids(inputs, model)
    check_inputs(
        model, (ids, *rest), additional_forward_args, pad_token_id=getattr(tokenizer, "pad_token_id", None)
    )
    scores = token_scores(attributions, tuple(ids.shape))
    kept_bins = check_bins(bins)
    if internal_batch_size is not None:
        internal_batch_size = check_positive_int(internal_batch_size, "internal_batch_size")
    if player_mask is None:
        special = resolve_special_token_ids(special_token_ids, tokenizer, forward_func)
        players = text_player_mask(ids, None, special, model=model)
    else:
        players = check_binary_mask(player_mask, "player_mask").to(ids.device)
        if tuple(players.shape) != tuple(ids.shape):
            raise ValueError(
                f"player_mask has shape {tuple(players.shape)}, expected (batch, seq) = {tuple(ids.shape)}."
            )
    replacement_id = check_token_id(resolve_replacement(baselines, tokenizer, forward_func), model, "baselines")
    extra = forward_args_tuple(additional_forward_args)

    scores = scores.to(ids.device)
    removed: List[Tensor] = []
    sizes: List[Tensor] = []
    for k in kept_bins:
        top = top_players(scores, players, k)
        sizes.append(top.sum(dim=1))
        removed += [top, players & ~top]  # comprehensiveness, then sufficiency, of bin k
    masked = torch.where(torch.stack(removed, dim=1), replacement_id, ids.unsqueeze(1))
    rows = torch.cat([ids.unsqueeze(1), masked], dim=1)
    probs, original_logits = _distinct_outputs(
        forward_func, rows, rest + extra, apply_softmax, internal_batch_size
    )
    if apply_softmax:
        where = "the faithfulness metric (apply_softmax=True)"
        warn_if_probabilities(original_logits, where, "Pass apply_softmax=False, or return logits.")
    original = probs[:, 0]
    explained = normalize_target(target, original)
    index = explained.reshape(-1, 1, 1).expand(-1, rows.shape[1], 1).to(probs.device)
    p_all = probs.gather(2, index).squeeze(2)
    p_x = p_all[:, 0]
    return FaithfulnessCurves(
        bins=kept_bins,
        target=explained,
        probability=p_x,
        num_players=players.sum(dim=1),
        num_selected=torch.stack(sizes, dim=1),
        comprehensiveness_drops=p_x.unsqueeze(1) - p_all[:, 1::2],
        sufficiency_drops=p_x.unsqueeze(1) - p_all[:, 2::2],
        sufficiency_predictions=probs[:, 2::2].argmax(dim=2),
    )


@renamed_keyword("replacement", "baselines")
def comprehensiveness(
    forward_func: Callable[..., Any],
    inputs: Union[Tensor, Tuple[Tensor, ...]],
    attributions: Union[Tensor, Tuple[Tensor, ...]],
    target: TargetLike = None,
    additional_forward_args: Any = None,
    bins: Sequence[float] = DEFAULT_BINS,
    baselines: Replacement = "mask",
    tokenizer: Any = None,
    special_token_ids: Optional[Sequence[int]] = None,
    player_mask: Optional[Tensor] = None,
    apply_softmax: bool = True,
    internal_batch_size: Optional[int] = None,
) -> Tensor:
    r"""
    Comprehensiveness (ERASER): how much the explained class's probability drops when the
    top-attributed players are replaced, averaged over the bins with the ``|K| + 1``
    divisor. Higher is better.

    Args:
        forward_func, inputs, attributions, target: As in :func:`faithfulness_curves`.
        additional_forward_args, bins, baselines, tokenizer: As in :func:`faithfulness_curves`.
        special_token_ids, player_mask, apply_softmax: As in :func:`faithfulness_curves`.
        internal_batch_size: As in :func:`faithfulness_curves`.

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
        baselines,
        tokenizer,
        special_token_ids,
        player_mask,
        apply_softmax,
        internal_batch_size,
    ).comprehensiveness()


@renamed_keyword("replacement", "baselines")
def sufficiency(
    forward_func: Callable[..., Any],
    inputs: Union[Tensor, Tuple[Tensor, ...]],
    attributions: Union[Tensor, Tuple[Tensor, ...]],
    target: TargetLike = None,
    additional_forward_args: Any = None,
    bins: Sequence[float] = DEFAULT_BINS,
    baselines: Replacement = "mask",
    tokenizer: Any = None,
    special_token_ids: Optional[Sequence[int]] = None,
    player_mask: Optional[Tensor] = None,
    apply_softmax: bool = True,
    internal_batch_size: Optional[int] = None,
) -> Tensor:
    r"""
    Sufficiency (ERASER): how much the explained class's probability drops when every player
    but the top-attributed ones is replaced, averaged over the bins with the ``|K| + 1``
    divisor. Lower is better.

    Args:
        forward_func, inputs, attributions, target: As in :func:`faithfulness_curves`.
        additional_forward_args, bins, baselines, tokenizer: As in :func:`faithfulness_curves`.
        special_token_ids, player_mask, apply_softmax: As in :func:`faithfulness_curves`.
        internal_batch_size: As in :func:`faithfulness_curves`.

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
        baselines,
        tokenizer,
        special_token_ids,
        player_mask,
        apply_softmax,
        internal_batch_size,
    ).sufficiency()
