"""Captum's calling conventions: inputs and additional forward arguments as tuples, logits, probabilities."""

from typing import Any, Optional, Tuple

import torch
from torch import Tensor


def as_tuple(inputs: Any) -> Tuple[Any, ...]:
    """Captum's tuple convention for inputs."""
    return inputs if isinstance(inputs, tuple) else (inputs,)


def forward_args_tuple(additional_forward_args: Any) -> Tuple[Any, ...]:
    """Captum's ``additional_forward_args`` as a tuple: ``()`` for None, a single argument wrapped."""
    if additional_forward_args is None:
        return ()
    return additional_forward_args if isinstance(additional_forward_args, tuple) else (additional_forward_args,)


def logits_from_output(output: Any) -> Tensor:
    r"""
    Extracts the classification logits from a model's output.

    Args:
        output (Any): A tensor, a Hugging Face ``ModelOutput`` with a ``logits`` field, or a
                    tuple/list whose first element is the logits.

    Returns:
        Tensor: The logits, shape ``(batch, num_classes)``.
    """
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, (tuple, list)) and len(output) > 0:
        logits = output[0]
    if logits is None and isinstance(output, Tensor):
        logits = output
    if not isinstance(logits, Tensor):
        raise TypeError(
            f"The forward function returned {type(output).__name__}, which holds no logits. "
            "It must return a tensor of logits of shape (batch, num_classes), or a Hugging Face "
            "output with a `logits` field."
        )
    if logits.dim() == 1:
        logits = logits.unsqueeze(1)
    if logits.dim() != 2:
        raise ValueError(
            f"Expected logits of shape (batch, num_classes), got shape {tuple(logits.shape)}. "
            "Wrap the model in a forward function that returns one row of class scores per example."
        )
    return logits


def class_probabilities(logits: Tensor) -> Tensor:
    r"""
    The softmax over classes of a batch of logits, in float64 (the probability every metric and
    game of this package compares).

    Args:
        logits (Tensor): ``(batch, num_classes)``, e.g. from :func:`logits_from_output`.

    Returns:
        Tensor: ``(batch, num_classes)`` probabilities, float64.
    """
    return torch.softmax(logits.double(), dim=1)


def args_for_rows(
    arg: Any, rows: Tensor, batch: int, seq: Optional[int] = None, trim: Optional[int] = None
) -> Any:
    r"""
    An extra forward argument for a pass whose row ``r`` belongs to example ``rows[r]`` of a batch.

    Per-example tensors (first axis ``batch``) are indexed by ``rows``, broadcast ones (first axis 1)
    expanded to the pass's rows, anything else returned unchanged; with ``trim``, a ``(rows, seq)`` tensor
    (a mask, token type ids) keeps its first ``trim`` positions.

    Args:
        arg (Any): The argument.
        rows (Tensor): The example of each row of the pass, ``(rows,)``.
        batch (int): The batch size.
        seq (int, optional): The sequence length (with ``trim``).
        trim (int, optional): Positions kept of a ``(rows, seq)`` tensor.

    Returns:
        Any: The argument for the pass.
    """
    if not isinstance(arg, Tensor) or arg.dim() == 0:
        return arg
    if arg.shape[0] == batch:
        arg = arg[rows.to(arg.device)]
    elif arg.shape[0] == 1:
        arg = arg.expand(rows.numel(), *arg.shape[1:])
    else:
        return arg
    if trim is not None and arg.dim() == 2 and arg.shape[1] == seq:
        arg = arg[:, :trim]
    return arg
