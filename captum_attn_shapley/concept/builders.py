#!/usr/bin/env python3
"""Captum :class:`~captum.concept.Concept` objects from word lists, texts and images."""

from typing import Any, List, Sequence, Tuple

import torch
from captum.concept import Concept
from torch import Tensor


def text_concept(
    id: int, name: str, texts: Sequence[str], tokenizer: Any, batch_size: int = 64, max_length: int = 64
) -> Concept:
    r"""
    A text concept: its examples are texts (sentences, phrases or single words), whose
    word-piece tokens become the concept's token activations.

    Args:
        id (int): The concept id (unique among the concepts of one TCAV run; it names
                    the cached CAV files, as in Captum).
        name (str): The concept name.
        texts (sequence of str): The examples.
        tokenizer: The model's tokenizer.
        batch_size (int): Examples per forward pass. Default: 64
        max_length (int): Truncation length in tokens. Default: 64

    Returns:
        Concept: A Captum concept whose ``data_iter`` yields ``(input_ids, attention_mask)``.

    Examples::

        >>> positive = text_concept(0, "positive words", ["great", "lovely", "win"], tokenizer)
    """
    texts = [str(t) for t in texts]
    if not texts:
        raise ValueError(f"Concept {name!r} has no examples: give at least one text.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    batches: List[Tuple[Tensor, Tensor]] = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(
            texts[start : start + batch_size],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=max_length,
        )
        batches.append((enc["input_ids"], enc["attention_mask"]))
    return Concept(id, name, batches)  # a list, so that data_iter can be read more than once


def image_concept(id: int, name: str, pixel_values: Tensor, batch_size: int = 64) -> Concept:
    r"""
    An image concept: its examples are images, whose patch (and class) tokens become
    the concept's token activations.

    Args:
        id (int): The concept id.
        name (str): The concept name.
        pixel_values (Tensor): The model inputs, shape ``(n, channels, H, W)``.
        batch_size (int): Images per forward pass. Default: 64

    Returns:
        Concept: A Captum concept whose ``data_iter`` yields pixel batches.

    Examples::

        >>> striped = image_concept(0, "striped", processor(images, return_tensors="pt")["pixel_values"])
    """
    if not isinstance(pixel_values, Tensor) or pixel_values.dim() != 4:
        shape = tuple(pixel_values.shape) if isinstance(pixel_values, Tensor) else type(pixel_values).__name__
        raise ValueError(f"Concept {name!r}: pixel_values must be a (n, channels, H, W) tensor, got {shape}.")
    if pixel_values.shape[0] == 0:
        raise ValueError(f"Concept {name!r} has no examples: give at least one image.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    return Concept(id, name, list(torch.split(pixel_values, batch_size)))
