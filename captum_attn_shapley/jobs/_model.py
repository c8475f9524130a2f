"""The model of a dataset job, loaded once per process: a Hugging Face sequence classifier and its
tokenizer, from a local directory or a hub id."""

import functools
from typing import Any, Tuple

import torch
from torch.nn import Module

from captum_attn_shapley._utils.fingerprint import model_fingerprint, settings_digest


@functools.lru_cache(maxsize=2)
def load_model(source: str) -> Tuple[Module, Any]:
    r"""
    Loads a classifier and its tokenizer (Hugging Face's default attention implementation, eval mode),
    once per process and source.

    Args:
        source (str): A directory saved with ``save_pretrained`` (with its tokenizer) or a hub id.

    Returns:
        tuple: ``(model, tokenizer)``.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(source)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model.eval()
    return model, tokenizer


@functools.lru_cache(maxsize=2)
def model_digest(source: str) -> str:
    r"""
    A digest of a job's model: its configuration and its weights.

    Args:
        source (str): As for :func:`load_model`.

    Returns:
        str: 16 hex digits.
    """
    model, _ = load_model(source)
    config = getattr(model, "config", None)
    settings = config.to_dict() if config is not None else {}
    settings.pop("_name_or_path", None)  # where it was loaded from does not change its numbers
    settings.pop("transformers_version", None)
    return settings_digest(
        {"config": settings, "weights": model_fingerprint(model), "dtype": str(torch.get_default_dtype())}
    )
