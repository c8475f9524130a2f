#!/usr/bin/env python3
"""The F1 of the sufficiency inputs: gold labels against the predictions when only each
example's top ``k`` percent of players is kept (``k = 20`` in the paper).

See the mathematics page of the documentation, section "Faithfulness metrics".
"""

from typing import Any, Callable, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_attn_shapley._utils.deprecation import renamed_keyword
from captum_attn_shapley.metrics.faithfulness import faithfulness_curves
from captum_attn_shapley.metrics.token_selection import Replacement


@renamed_keyword("replacement", "baselines")
def sufficiency_predictions(
    forward_func: Callable[..., Any],
    inputs: Union[Tensor, Tuple[Tensor, ...]],
    attributions: Union[Tensor, Tuple[Tensor, ...]],
    k: float = 20,
    additional_forward_args: Any = None,
    baselines: Replacement = "mask",
    tokenizer: Any = None,
    special_token_ids: Optional[Sequence[int]] = None,
    player_mask: Optional[Tensor] = None,
) -> Tensor:
    r"""
    The model's predictions when only each example's top ``k`` percent of players is kept.

    Args:
        forward_func, inputs, attributions, additional_forward_args: As in :func:`faithfulness_curves`.
        baselines, tokenizer, special_token_ids, player_mask: As in :func:`faithfulness_curves`.
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
        baselines,
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


@renamed_keyword("replacement", "baselines")
def sufficiency_f1(
    forward_func: Callable[..., Any],
    inputs: Union[Tensor, Tuple[Tensor, ...]],
    attributions: Union[Tensor, Tuple[Tensor, ...]],
    labels: Any,
    k: float = 20,
    additional_forward_args: Any = None,
    baselines: Replacement = "mask",
    tokenizer: Any = None,
    special_token_ids: Optional[Sequence[int]] = None,
    player_mask: Optional[Tensor] = None,
    average: str = "macro",
) -> float:
    r"""
    F1 of the gold labels against the predictions on the sufficiency inputs at ``k``
    percent (k = 20 in the paper; "Faithfulness metrics" on :doc:`the mathematics page </mathematics>`).
    A dataset-level number, so it returns one float.

    Args:
        forward_func, inputs, attributions, additional_forward_args: As in :func:`faithfulness_curves`.
        baselines, tokenizer, special_token_ids, player_mask: As in :func:`faithfulness_curves`.
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
        baselines,
        tokenizer,
        special_token_ids,
        player_mask,
    )
    return f1_of_predictions(labels, predictions, average)
