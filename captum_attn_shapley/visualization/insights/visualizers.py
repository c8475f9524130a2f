#!/usr/bin/env python3
"""Ready Captum Insights visualizers of Hugging Face text and image classifiers."""

from typing import Any, List, Optional, Sequence

import torch
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley._utils.labels import model_label_names
from captum_attn_shapley.capture.discovery import find_model
from captum_attn_shapley.visualization.insights.availability import insights_modules
from captum_attn_shapley.visualization.insights.forwards import ImageLogitsForward, TextEmbeddingForward
from captum_attn_shapley.visualization.insights.methods import register_insights_methods


def _label_names(model: Module, label_names: Optional[Sequence[str]]) -> List[str]:
    """The class names Insights shows: ``label_names``, else the model's ``config.id2label`` in class order."""
    if label_names is not None:
        return [str(c) for c in label_names]
    names = model_label_names(model)
    if not names:
        raise ValueError("The model's config has no id2label: pass `label_names=` (one name per output).")
    return [names[i] for i in sorted(names)]


def _scores(logits: Tensor) -> Tensor:
    """Insights' ``score_func``: the softmax of the logits, in their dtype (what Insights shows as scores)."""
    return torch.softmax(logits, dim=1)


def _labels(labels: Sequence[int], n: int, num_classes: int) -> List[int]:
    if labels is None or len(labels) != n:
        given = "no labels" if labels is None else f"{len(labels)} labels"
        raise ValueError(
            f"Got {given} for {n} examples: give one label per example (Captum Insights leaves out examples "
            "without a label)."
        )
    gold = [int(v) for v in labels]
    if any(not 0 <= v < num_classes for v in gold):
        raise ValueError(f"Labels must be class indices in [0, {num_classes}), got {gold}.")
    return gold


def text_visualizer(
    model: Module,
    tokenizer: Any,
    texts: Sequence[str],
    labels: Sequence[int],
    label_names: Optional[Sequence[str]] = None,
    max_length: int = 128,
) -> Any:
    r"""
    A Captum Insights visualizer of a Hugging Face text classifier, with our methods
    registered next to Captum's (Captum's gradient methods attribute to the word
    embeddings, with an all-zero embedding baseline; ours to the tokens).

    Args:
        model (Module): A Hugging Face sequence classifier (``eval()`` mode).
        tokenizer: Its tokenizer.
        texts (sequence of str): The examples to show (one Insights batch each, unpadded).
        labels (sequence of int): Their true class indices (Insights shows only labelled examples).
        label_names (sequence of str, optional): Class names (default: ``model.config.id2label``);
                    Insights' ``classes``.
        max_length (int): Truncation length.

    Returns:
        captum.insights.AttributionVisualizer: Call ``.serve()`` (a local web page) or
        ``.render()`` (a notebook widget).

    Raises:
        InsightsUnavailableError: Without Captum Insights (captum >= 0.9); see
                    :data:`INSIGHTS_HELP`.

    Examples::

        >>> from captum_attn_shapley.visualization.insights import text_visualizer
        >>> visualizer = text_visualizer(model, tokenizer, ["the crew was rude"], labels=[0])
        >>> port = visualizer.serve()   # http://localhost:<port>/
    """
    insights, _, features = insights_modules()
    register_insights_methods()
    if len(texts) == 0:
        raise ValueError("No texts given: pass at least one text to visualise.")
    forward = TextEmbeddingForward(model).eval()
    names = _label_names(model, label_names)
    gold = _labels(labels, len(texts), len(names))
    dataset = []
    for text, label in zip(texts, gold):
        if not text.strip():
            raise ValueError("One of the texts is empty: give non-empty texts.")
        ids = tokenizer([text], return_tensors="pt", truncation=True, max_length=max_length)["input_ids"]
        dataset.append(insights.Batch(inputs=ids, labels=torch.tensor([label]), additional_args=(ids,)))

    def to_tokens(ids: Tensor) -> List[str]:
        return list(tokenizer.convert_ids_to_tokens(ids.reshape(-1).tolist()))

    feature = features.TextFeature(
        "Text", baseline_transforms=None, input_transforms=[forward.embed], visualization_transform=to_tokens
    )
    return insights.AttributionVisualizer(
        models=[forward], classes=names, features=[feature], dataset=dataset, score_func=_scores
    )


def image_visualizer(
    model: Module,
    images: Tensor,
    labels: Sequence[int],
    label_names: Optional[Sequence[str]] = None,
    image_mean: Optional[Sequence[float]] = None,
    image_std: Optional[Sequence[float]] = None,
    processor: Any = None,
) -> Any:
    r"""
    A Captum Insights visualizer of a Hugging Face image classifier (ViT, DeiT, ...), with
    our methods registered next to Captum's. Our per-patch scores are shown as pixel maps.

    Args:
        model (Module): A Hugging Face image classifier (``eval()`` mode).
        images (Tensor): ``(n, 3, H, W)`` images in ``[0, 1]`` at the model's input size.
        labels (sequence of int): Their true class indices (Insights shows only labelled examples).
        label_names (sequence of str, optional): Class names (default: ``model.config.id2label``);
                    Insights' ``classes``.
        image_mean, image_std (sequence of float, optional): Normalisation into the
                    model's ``pixel_values``; default: the ``processor``'s.
        processor (optional): The model's image processor (gives mean and std).

    Returns:
        captum.insights.AttributionVisualizer: Call ``.serve()`` or ``.render()``.

    Raises:
        InsightsUnavailableError: Without Captum Insights (captum >= 0.9).

    Examples::

        >>> from captum_attn_shapley.visualization.insights import image_visualizer
        >>> visualizer = image_visualizer(vit, images, labels, processor=processor)
        >>> port = visualizer.serve()
    """
    insights, _, features = insights_modules()
    register_insights_methods()
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[0] == 0:
        raise ValueError("`images` must be a non-empty (n, 3, H, W) tensor of images in [0, 1].")
    if image_mean is None or image_std is None:
        if processor is None:
            raise ValueError(
                "Give the model's normalisation: `processor=` or both `image_mean=` and `image_std=`."
            )
        image_mean = image_mean if image_mean is not None else processor.image_mean
        image_std = image_std if image_std is not None else processor.image_std
    assert image_mean is not None and image_std is not None
    forward = ImageLogitsForward(model, image_mean, image_std).eval()
    find_model(forward)  # a model without discoverable attention fails here, clearly
    names = _label_names(model, label_names)
    gold = _labels(labels, images.shape[0], len(names))
    dataset = [insights.Batch(inputs=images[i : i + 1], labels=torch.tensor([g])) for i, g in enumerate(gold)]
    feature = features.ImageFeature("Image", baseline_transforms=None, input_transforms=None)
    return insights.AttributionVisualizer(
        models=[forward], classes=names, features=[feature], dataset=dataset, score_func=_scores
    )
