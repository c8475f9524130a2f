#!/usr/bin/env python3
"""Captum-style ``target`` handling for classifiers, with range checks."""

from typing import List, Optional, Union

import torch
from torch import Tensor

TargetLike = Optional[Union[int, List[int], Tensor]]


def normalize_target(target: TargetLike, logits: Tensor) -> Tensor:
    r"""
    Turns a Captum-style target into one class index per example.

    Args:
        target (int, list[int], Tensor or None): As in Captum: a single class index for
                    every example, one index per example (list or 1-D tensor), a 0-d
                    tensor, or None for the class predicted by the model.
        logits (Tensor): The model's logits, shape ``(batch, num_classes)``.

    Returns:
        Tensor: Long tensor of shape ``(batch,)`` on the logits' device.
    """
    batch, num_classes = logits.shape
    if target is None:
        return logits.detach().argmax(dim=1)
    if isinstance(target, bool):
        raise TypeError("`target` must be a class index, not a bool.")
    if isinstance(target, int):
        idx = torch.full((batch,), target, dtype=torch.long, device=logits.device)
    elif isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex():
            raise TypeError(f"`target` must hold integer class indices, got dtype {target.dtype}.")
        if target.dim() == 0 or target.numel() == 1:
            idx = target.reshape(1).long().to(logits.device).expand(batch).clone()
        elif target.dim() == 1:
            idx = target.long().to(logits.device)
        else:
            raise ValueError(
                f"`target` tensor must be 0-d or 1-d (one class per example), got shape {tuple(target.shape)}."
            )
    elif isinstance(target, (list, tuple)):
        if any(isinstance(t, (tuple, list)) for t in target):
            raise ValueError(
                "Tuple targets (for multi-dimensional outputs) are not supported: the model must return "
                "logits of shape (batch, num_classes) and target one class per example."
            )
        idx = torch.as_tensor(list(target), dtype=torch.long, device=logits.device)
    else:
        raise TypeError(f"Unsupported `target` of type {type(target).__name__}.")
    if idx.shape[0] != batch:
        raise ValueError(
            f"`target` has {idx.shape[0]} entries but the batch has {batch} examples: give one class "
            "index per example, a single int for all, or None for the predicted class."
        )
    bad = (idx < 0) | (idx >= num_classes)
    if bool(bad.any()):
        raise ValueError(
            f"`target` {idx[bad].tolist()} out of range: the model has {num_classes} classes "
            f"(valid indices 0..{num_classes - 1})."
        )
    return idx
