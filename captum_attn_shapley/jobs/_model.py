"""The model of a dataset job, loaded once per process: a Hugging Face sequence classifier and its
tokenizer, or an image classifier (ViT, DeiT) and its image processor, from a local directory or a hub id."""

import functools
from typing import Any, Tuple

import torch
from torch.nn import Module

from captum_attn_shapley._utils.fingerprint import model_fingerprint, settings_digest


def _load_image_model(source: str) -> Tuple[Module, Any]:
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    try:
        model = AutoModelForImageClassification.from_pretrained(source)
    except ValueError as err:  # a configuration of another kind (a text model)
        reason = " ".join(str(err).split())[:300]
        raise ValueError(
            f"model {source!r} is not an image classifier ({reason}); an image job needs a model that "
            "AutoModelForImageClassification loads (ViT, DeiT, ...)."
        ) from None
    try:
        processor = AutoImageProcessor.from_pretrained(source)
    except (OSError, ValueError) as err:
        reason = " ".join(str(err).split())[:300]
        raise ValueError(
            f"model {source!r} has no image processor ({reason}); save one beside the model, e.g. "
            "AutoImageProcessor.from_pretrained(<its base model>).save_pretrained(<model dir>)."
        ) from None
    return model, processor


def load_model(source: str, images: bool = False) -> Tuple[Module, Any]:
    r"""
    Loads a classifier and its tokenizer (Hugging Face's default attention implementation, eval mode),
    once per process and source; with ``images``, an image classifier and its image processor.

    Args:
        source (str): A directory saved with ``save_pretrained`` (with its tokenizer or image
                    processor) or a hub id.
        images (bool): Load ``AutoModelForImageClassification`` and ``AutoImageProcessor``. Default: False

    Returns:
        tuple: ``(model, tokenizer)``, or ``(model, image processor)``.

    Raises:
        ValueError: With ``images``, for a model that is not an image classifier or has no image processor.
    """
    return _load(source, bool(images))  # one cache entry however it is called


@functools.lru_cache(maxsize=2)
def _load(source: str, images: bool) -> Tuple[Module, Any]:
    if images:
        model, preprocess = _load_image_model(source)
    else:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model = AutoModelForSequenceClassification.from_pretrained(source)
        preprocess = AutoTokenizer.from_pretrained(source)
    model.eval()
    return model, preprocess


@functools.lru_cache(maxsize=2)
def model_digest(source: str, images: bool = False) -> str:
    r"""
    A digest of a job's model: its configuration and its weights (and, with ``images``, its image
    processor's settings, which make the pixels).

    Args:
        source (str): As for :func:`load_model`.
        images (bool): As for :func:`load_model`. Default: False

    Returns:
        str: 16 hex digits.
    """
    model, preprocess = load_model(source, images)
    config = getattr(model, "config", None)
    settings = config.to_dict() if config is not None else {}
    settings.pop("_name_or_path", None)  # where it was loaded from does not change its numbers
    settings.pop("transformers_version", None)
    parts = {"config": settings, "weights": model_fingerprint(model), "dtype": str(torch.get_default_dtype())}
    if images:
        parts["image_processor"] = {"type": type(preprocess).__name__, **preprocess.to_dict()}
    return settings_digest(parts)
