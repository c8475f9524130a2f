#!/usr/bin/env python3
"""Digests that key caches, so that results of one model or setting are never reused for another."""

import hashlib
import json
from typing import Any, Dict

import torch
from torch import Tensor
from torch.nn import Module


def settings_digest(obj: Any) -> str:
    r"""
    A digest of JSON-like settings (keys sorted; other objects through ``repr``).

    Args:
        obj (Any): The settings.

    Returns:
        str: 16 hex digits.
    """
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def state_digest(state_dict: Dict[str, Tensor]) -> str:
    r"""
    SHA-256 of a state dict: every tensor's name and bytes, in name order.

    Args:
        state_dict (dict): Tensors by name (a module's ``state_dict()`` or a loaded weights file).

    Returns:
        str: 64 hex digits.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(state_dict.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def model_fingerprint(model: Module) -> str:
    r"""
    A digest of a model's parameters and buffers (to never reuse results of another model).

    Args:
        model (Module): The model.

    Returns:
        str: 16 hex digits (the start of :func:`state_digest`).
    """
    return state_digest(model.state_dict())[:16]
