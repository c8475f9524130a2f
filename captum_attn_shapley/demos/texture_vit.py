"""The texture ViT's architecture and inputs: its configuration, pixel normalisation, image processor
and batched predictions.

The small Vision Transformer of :mod:`~captum_attn_shapley.demos.vision_model` (4 layers, 8 x 8 patches
of 8 pixels plus ``[CLS]``) takes ``[0, 1]`` images normalised by :func:`to_pixel_values`;
:func:`texture_image_processor` gives the same values from ``uint8`` images, and
:func:`evaluate_texture_classifier` measures a classifier on labelled texture images.
"""

from typing import Any, Dict

import torch
from torch import Tensor
from transformers import ViTConfig, ViTForImageClassification
from transformers.image_processing_utils import BaseImageProcessor

from captum_attn_shapley.demos.textures import CLASS_NAMES, IMAGE_SIZE, TextureImages
from captum_attn_shapley.demos.training import label_config

try:  # transformers' ViTImageProcessor is this class without torchvision (after a warning)
    from transformers import ViTImageProcessorPil as _ViTImageProcessor
except ImportError:  # pragma: no cover - transformers without the PIL backend split
    from transformers import ViTImageProcessor as _ViTImageProcessor  # type: ignore[assignment]

#: The image processor class of the texture ViT: ``ViTImageProcessorPil`` where transformers has it
#: (what ``transformers.ViTImageProcessor`` gives without torchvision), else ``ViTImageProcessor``.
IMAGE_PROCESSOR_CLASS = _ViTImageProcessor

#: Architecture of :func:`texture_vit_config`.
PATCH_SIZE = 8
HIDDEN_SIZE = 96
NUM_LAYERS = 4
NUM_HEADS = 4
INTERMEDIATE_SIZE = 192
#: Mean and standard deviation of the input normalisation (per channel).
PIXEL_MEAN = 0.5
PIXEL_STD = 0.5


def texture_vit_config(num_labels: int = len(CLASS_NAMES), image_size: int = IMAGE_SIZE) -> ViTConfig:
    r"""Configuration of the small texture ViT (eager attention, no dropout).

    Args:
        num_labels (int, optional): Number of classes; with the default, ``id2label`` holds
            :data:`~captum_attn_shapley.demos.textures.CLASS_NAMES`. Default: ``5``
        image_size (int, optional): Image side in pixels, a multiple of the 8-pixel patch.
            Default: ``64``

    Returns:
        ViTConfig: 4 layers, hidden size 96, 4 heads, MLP size 192, 8-pixel patches
        (an 8 x 8 grid plus ``[CLS]`` at 64 px) and ``attn_implementation="eager"``.

    Raises:
        ValueError: If ``num_labels`` is not positive or ``image_size`` is not a positive
            multiple of 8.

    Examples::

        >>> from transformers import ViTForImageClassification
        >>> from captum_attn_shapley.demos.texture_vit import texture_vit_config
        >>> model = ViTForImageClassification(texture_vit_config())
        >>> model.config.id2label[0]
        'striped'
    """
    if num_labels < 1:
        raise ValueError(f"num_labels must be positive, got {num_labels}")
    if image_size < PATCH_SIZE or image_size % PATCH_SIZE:
        raise ValueError(f"image_size must be a positive multiple of {PATCH_SIZE}, got {image_size}")
    names = CLASS_NAMES if num_labels == len(CLASS_NAMES) else tuple(f"LABEL_{i}" for i in range(num_labels))
    # generic PretrainedConfig arguments, which the typed ViTConfig signature does not list
    generic: Dict[str, Any] = {**label_config(names), "attn_implementation": "eager"}
    return ViTConfig(
        image_size=image_size,
        patch_size=PATCH_SIZE,
        num_channels=3,
        hidden_size=HIDDEN_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        intermediate_size=INTERMEDIATE_SIZE,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        **generic,
    )


def to_pixel_values(images: Tensor) -> Tensor:
    r"""Normalise ``[0, 1]`` images into the texture ViT's input, ``(x - 0.5) / 0.5``.

    The image processor saved with the model (:func:`texture_image_processor`) gives the same
    values from ``uint8`` images (PIL or numpy ``(H, W, 3)``).

    Args:
        images (Tensor): ``(..., 3, H, W)`` images in ``[0, 1]``.

    Returns:
        Tensor: ``pixel_values`` of the same shape, in ``[-1, 1]``.

    Examples::

        >>> from captum_attn_shapley.demos.textures import make_texture_dataset
        >>> from captum_attn_shapley.demos.texture_vit import to_pixel_values
        >>> pixel_values = to_pixel_values(make_texture_dataset(2).images)
        >>> logits = model(pixel_values=pixel_values).logits
    """
    return (images - PIXEL_MEAN) / PIXEL_STD


def to_images(pixel_values: Tensor) -> Tensor:
    r"""Undo :func:`to_pixel_values`: the texture ViT's input back to ``[0, 1]`` images.

    Args:
        pixel_values (Tensor): ``(..., 3, H, W)`` normalised images.

    Returns:
        Tensor: Images of the same shape (not clipped).

    Examples::

        >>> import torch
        >>> from captum_attn_shapley.demos.texture_vit import to_images, to_pixel_values
        >>> images = torch.rand(1, 3, 64, 64)
        >>> torch.allclose(to_images(to_pixel_values(images)), images)
        True
    """
    return pixel_values * PIXEL_STD + PIXEL_MEAN


def texture_image_processor() -> BaseImageProcessor:
    r"""The image processor of the texture ViT: no resizing, ``uint8`` rescaled, mean/std 0.5.

    ``processor(images=list_of_uint8_images, return_tensors="pt")["pixel_values"]`` equals
    :func:`to_pixel_values` of the same images divided by 255. Images must already have the
    model's size (64 px).

    Returns:
        BaseImageProcessor: A ViT image processor with ``do_resize=False``,
        ``do_rescale=True`` (``1 / 255``) and ``do_normalize=True`` with
        ``image_mean = image_std = [0.5, 0.5, 0.5]``. It is a ``ViTImageProcessorPil``,
        which is what ``transformers.ViTImageProcessor`` gives without torchvision (imported
        directly to avoid its warning); it is saved as ``"ViTImageProcessor"``, so
        ``AutoImageProcessor`` loads it.

    Examples::

        >>> import numpy as np
        >>> from captum_attn_shapley.demos.texture_vit import texture_image_processor
        >>> image = np.zeros((64, 64, 3), dtype=np.uint8)
        >>> texture_image_processor()(images=[image], return_tensors="pt")["pixel_values"].shape
        torch.Size([1, 3, 64, 64])
    """
    return IMAGE_PROCESSOR_CLASS(
        do_resize=False,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[PIXEL_MEAN] * 3,
        image_std=[PIXEL_STD] * 3,
    )


@torch.no_grad()
def predict(model: ViTForImageClassification, images: Tensor, batch_size: int = 250) -> Tensor:
    r"""Arg-max predictions of an image classifier on ``[0, 1]`` images (batched, no gradients).

    Args:
        model (ViTForImageClassification): The classifier; it is put in eval mode.
        images (Tensor): ``(n, 3, H, W)`` images in ``[0, 1]`` (normalised with
            :func:`to_pixel_values`).
        batch_size (int, optional): Images per forward pass. Default: ``250``

    Returns:
        Tensor: ``(n,)`` int64 predicted label indices.

    Examples::

        >>> from captum_attn_shapley.demos.textures import make_texture_dataset
        >>> from captum_attn_shapley.demos.texture_vit import predict
        >>> from captum_attn_shapley.demos.vision_model import load_texture_classifier
        >>> model, processor, info = load_texture_classifier()
        >>> data = make_texture_dataset(100, seed=5)
        >>> float((predict(model, data.images) == data.labels).float().mean()) > 0.9
        True
    """
    model.eval()
    device = next(model.parameters()).device
    parts = [
        model(pixel_values=to_pixel_values(images[start : start + batch_size]).to(device)).logits.argmax(-1)
        for start in range(0, images.shape[0], batch_size)
    ]
    return torch.cat(parts).cpu()


def evaluate_texture_classifier(
    model: ViTForImageClassification, data: TextureImages, batch_size: int = 250
) -> Dict[str, Any]:
    r"""Accuracy of a texture classifier, overall and per class.

    Args:
        model (ViTForImageClassification): The classifier, whose label indices are those of
            ``data.class_names``.
        data (TextureImages): Labelled images, e.g. from
            :func:`~captum_attn_shapley.demos.textures.make_texture_dataset`.
        batch_size (int, optional): Images per forward pass. Default: ``250``

    Returns:
        dict: ``accuracy`` (float), ``per_class_accuracy`` (class name to float, for the
        classes present) and, if ``data.backgrounds`` is set, ``background_accuracy``: the
        accuracy on the same images with the object removed (chance level, 1 / number of
        classes for balanced data, if the model looks at the object).

    Examples::

        >>> from captum_attn_shapley.demos.textures import make_texture_dataset
        >>> from captum_attn_shapley.demos.texture_vit import evaluate_texture_classifier
        >>> data = make_texture_dataset(200, seed=7, with_backgrounds=True)
        >>> metrics = evaluate_texture_classifier(model, data)
    """
    predicted = predict(model, data.images, batch_size)
    correct = predicted == data.labels
    metrics: Dict[str, Any] = {
        "accuracy": float(correct.float().mean()),
        "per_class_accuracy": {
            name: float(correct[data.labels == i].float().mean())
            for i, name in enumerate(data.class_names)
            if bool((data.labels == i).any())
        },
    }
    if data.backgrounds is not None:
        on_backgrounds = predict(model, data.backgrounds, batch_size)
        metrics["background_accuracy"] = float((on_backgrounds == data.labels).float().mean())
        metrics["background_predictions"] = {
            name: int((on_backgrounds == i).sum()) for i, name in enumerate(data.class_names)
        }
    return metrics
