#!/usr/bin/env python3
"""What a concept's examples are, as a digest: TokenTCAV reuses cached CAVs only for the same examples.

The digest covers every batch the concept's ``data_iter`` yields, in order: each tensor's dtype,
shape and bytes, and the structure of tuples, lists and dicts around them. Concept ids and names are
not part of it (the id names the CAV files; the name is only a label).
"""

import collections.abc
import hashlib
from typing import Any

import torch
from captum.concept import Concept
from torch import Tensor


def _update(digest: "hashlib._Hash", value: Any) -> None:
    """Feeds one batch (or a part of it) into ``digest``, its structure included."""
    if isinstance(value, Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"tensor {tensor.dtype} {tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, (tuple, list)):
        digest.update(f"{type(value).__name__} {len(value)}(".encode())
        for item in value:
            _update(digest, item)
        digest.update(b")")
    elif isinstance(value, dict):
        digest.update(f"dict {len(value)}(".encode())
        for key in sorted(value, key=repr):
            digest.update(f"{key!r}:".encode())
            _update(digest, value[key])
        digest.update(b")")
    else:
        digest.update(f"{type(value).__name__} {value!r};".encode())


def examples_digest(concept: Concept) -> str:
    r"""
    A digest of a concept's examples: equal for the same batches (dtype, shape and values), different
    as soon as one value, shape or batch changes.

    A ``data_iter`` that can be read only once (a generator or another iterator) is read here and
    replaced on the concept by the list of its batches, so that TokenTCAV can still compute the
    activations from it.

    Args:
        concept (Concept): The concept; its ``data_iter`` yields model inputs.

    Returns:
        str: 16 hex digits.

    Raises:
        ValueError: If the concept has no ``data_iter``.

    Examples::

        >>> a = image_concept(0, "striped", pixels)
        >>> b = image_concept(0, "striped", pixels.clone())
        >>> examples_digest(a) == examples_digest(b)
        True
    """
    data = concept.data_iter
    if data is None:
        raise ValueError(f"Concept {concept.name!r} (id {concept.id}) has no data_iter: give it examples.")
    if isinstance(data, collections.abc.Iterator):  # one pass only: keep the batches for the activations
        data = concept.data_iter = list(data)
    digest = hashlib.sha256()
    for batch in data:
        _update(digest, batch)
        digest.update(b"|")
    return digest.hexdigest()[:16]
