#!/usr/bin/env python3
"""Digests that key caches, so that results of one model or setting are never reused for another."""
import hashlib
import json
from typing import Any

import torch
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


def model_fingerprint(model: Module) -> str:
    r"""
    A digest of a model's parameters and buffers (to never reuse results of another model).

    Args:
        model (Module): The model.

    Returns:
        str: 16 hex digits.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]
