"""The embedded default vision classifier: a small ViT trained from scratch on texture images.

On first use :func:`load_texture_classifier` trains a 4-layer Vision Transformer (8 x 8 patches
of 8 pixels plus ``[CLS]``) on the procedural images of :mod:`captum_attn_shapley.demos.textures`
(a few minutes on 2 CPU cores, no network), measures its held-out accuracy, and caches it
with a matching ViT image processor under
:func:`~captum_attn_shapley.demos.model_cache.cache_dir` (keyed by the code and the package versions);
later calls only load it. Since the
images come with their object masks and each class depends on one known concept
(:data:`~captum_attn_shapley.demos.textures.PLANTED_CONCEPT`), attributions and concept tests of this
model can be checked against ground truth.
"""

import logging
import pathlib
import sys
import time
from typing import Any, Dict, List, Optional, Tuple, Union, cast

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm
from transformers import ViTForImageClassification
from transformers.image_processing_utils import BaseImageProcessor

from captum_attn_shapley.demos import _texture_drawing, texture_vit, textures
from captum_attn_shapley.demos.model_cache import build_cached, loaded_info, model_path, write_metrics
from captum_attn_shapley.demos.texture_vit import (
    HIDDEN_SIZE,
    IMAGE_PROCESSOR_CLASS,
    NUM_HEADS,
    NUM_LAYERS,
    PATCH_SIZE,
    evaluate_texture_classifier,
    texture_image_processor,
    texture_vit_config,
    to_pixel_values,
)
from captum_attn_shapley.demos.textures import IMAGE_SIZE, TextureImages, make_texture_dataset
from captum_attn_shapley.demos.training import label_config, optimisation_step, reproducible_training

logger = logging.getLogger(__name__)

#: Name of the cached texture classifier inside ``model_cache.cache_dir()`` (a change of its code or of
#: the package versions trains a new one: see :func:`~captum_attn_shapley.demos.model_cache.training_key`).
VISION_MODEL_NAME = "texture-vit-v1"
#: Training recipe of :func:`load_texture_classifier`.
TRAIN_SIZE = 10000
TEST_SIZE = 1000
TRAIN_SEED = 0
TEST_SEED = 1
EPOCHS = 8
BATCH_SIZE = 64
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 0.05
WARMUP_FRACTION = 0.05
MAX_GRAD_NORM = 1.0

Loaded = Tuple[ViTForImageClassification, BaseImageProcessor, Dict[str, Any]]


def _augment(images: Tensor, generator: torch.Generator) -> Tensor:
    """Random horizontal flips and quarter turns (the task is invariant to both)."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    turns = torch.randint(0, 4, (images.shape[0],), generator=generator)
    out = images.clone()
    for k in range(1, 4):
        chosen = turns == k
        if chosen.any():
            out[chosen] = torch.rot90(images[chosen], k, dims=(-2, -1))
    return out


def train_texture_vit(
    data: TextureImages,
    *,
    seed: int = TRAIN_SEED,
    epochs: int = EPOCHS,
    batch_size: int = BATCH_SIZE,
    learning_rate: float = LEARNING_RATE,
    weight_decay: float = WEIGHT_DECAY,
    warmup_fraction: float = WARMUP_FRACTION,
    max_grad_norm: Optional[float] = MAX_GRAD_NORM,
    augment: bool = True,
    progress: bool = True,
    desc: str = "Training the texture ViT",
) -> ViTForImageClassification:
    r"""Train a texture ViT from scratch (:func:`texture_vit_config`) on labelled images.

    It runs inside :func:`~captum_attn_shapley.demos.training.reproducible_training` (fixed thread
    count, deterministic algorithms, ``torch.manual_seed(seed)``), and the batch order and
    augmentations are drawn from a generator seeded with ``seed``: the same inputs give
    bit-identical weights on the same kind of machine.
    Each epoch visits the images in a fresh random order; AdamW's learning rate warms up
    linearly over the first ``warmup_fraction`` of the steps, then follows a cosine decay to
    zero; the gradient norm is clipped to ``max_grad_norm``.

    Args:
        data (TextureImages): Training images and labels; ``data.class_names`` becomes the
            model's ``id2label``.
        seed (int, optional): Torch seed (initialisation, batch order, augmentation).
            Default: ``0``
        epochs (int, optional): Passes over the images. Default: ``8``
        batch_size (int, optional): Images per optimisation step. Default: ``64``
        learning_rate (float, optional): Peak AdamW learning rate. Default: ``2e-3``
        weight_decay (float, optional): AdamW weight decay. Default: ``0.05``
        warmup_fraction (float, optional): Fraction of the steps spent warming up.
            Default: ``0.05``
        max_grad_norm (float, optional): Clip the gradient norm of each step to this;
            ``None`` does not clip. Default: ``1.0``
        augment (bool, optional): Random horizontal flips and quarter turns. Default: ``True``
        progress (bool, optional): Show a tqdm progress bar. Default: ``True``
        desc (str, optional): Label of the progress bar. Default: ``"Training the texture ViT"``

    Returns:
        ViTForImageClassification: The trained classifier in eval mode (eager attention).

    Raises:
        ValueError: If ``data`` is empty or ``epochs`` / ``batch_size`` is not positive.

    Examples::

        >>> from captum_attn_shapley.demos.textures import make_texture_dataset
        >>> from captum_attn_shapley.demos.vision_model import train_texture_vit
        >>> model = train_texture_vit(make_texture_dataset(256), epochs=1, progress=False)
    """
    if len(data) == 0:
        raise ValueError("the training data is empty")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
    with reproducible_training(seed):
        return _train_loop(
            data,
            seed,
            epochs,
            batch_size,
            learning_rate,
            weight_decay,
            warmup_fraction,
            max_grad_norm,
            augment,
            progress,
            desc,
        )


def _train_loop(
    data: TextureImages,
    seed: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    warmup_fraction: float,
    max_grad_norm: Optional[float],
    augment: bool,
    progress: bool,
    desc: str,
) -> ViTForImageClassification:
    generator = torch.Generator().manual_seed(seed)
    config = texture_vit_config(len(data.class_names), int(data.images.shape[-1]))
    labels = label_config(data.class_names)
    config.id2label, config.label2id = labels["id2label"], labels["label2id"]
    model = ViTForImageClassification(config)
    steps_per_epoch = -(-len(data) // batch_size)
    steps = epochs * steps_per_epoch
    warmup = max(1, int(warmup_fraction * steps))
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            (s + 1) / warmup
            if s < warmup
            else 0.5 * (1.0 + float(np.cos(np.pi * (s - warmup) / max(steps - warmup, 1))))
        ),
    )
    model.train()
    bar = tqdm(total=steps, desc=desc, disable=not progress)
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data), batch_size):
            index = order[start : start + batch_size]
            images = data.images[index]
            if augment:
                images = _augment(images, generator)
            loss = model(pixel_values=to_pixel_values(images), labels=data.labels[index]).loss
            optimisation_step(model, loss, optimizer, scheduler, bar, max_grad_norm)
    bar.close()
    return cast(ViTForImageClassification, model.eval())


def _train(out_dir: pathlib.Path, progress: bool) -> Dict[str, Any]:
    """Train the texture ViT; save model, image processor and metrics in ``out_dir``."""
    start = time.perf_counter()
    train = make_texture_dataset(TRAIN_SIZE, seed=TRAIN_SEED)
    data_seconds = time.perf_counter() - start
    model = train_texture_vit(train, progress=progress, desc="Training the texture ViT (first use only)")
    train_seconds = time.perf_counter() - start
    model.save_pretrained(out_dir)
    texture_image_processor().save_pretrained(out_dir)
    test = make_texture_dataset(TEST_SIZE, seed=TEST_SEED, with_backgrounds=True)
    evaluation = evaluate_texture_classifier(model, test)
    metrics = {
        **evaluation,
        "n_train": len(train),
        "n_test": len(test),
        "seconds": round(time.perf_counter() - start, 1),
        "train_seconds": round(train_seconds, 1),
        "data_seconds": round(data_seconds, 1),
        "seed": TRAIN_SEED,
        "test_seed": TEST_SEED,
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH_SIZE,
        "hidden_size": HIDDEN_SIZE,
        "num_layers": NUM_LAYERS,
        "num_heads": NUM_HEADS,
        "epochs": EPOCHS,
        "learning_rate": LEARNING_RATE,
        "batch_size": BATCH_SIZE,
        "weight_decay": WEIGHT_DECAY,
        "max_grad_norm": MAX_GRAD_NORM,
        "augment": True,
    }
    write_metrics(out_dir, metrics)
    logger.info("Texture ViT trained: held-out accuracy %.3f in %.0f s", metrics["accuracy"], metrics["seconds"])
    return metrics


def training_modules() -> List[Any]:
    r"""The modules that define the texture ViT's data and training (their source keys its cache)."""
    return [textures, _texture_drawing, texture_vit, sys.modules[__name__]]


def load_texture_vit(path: Optional[Union[str, pathlib.Path]] = None) -> Loaded:
    r"""Load a texture ViT saved with ``save_pretrained`` and its image processor.

    Args:
        path (str or pathlib.Path, optional): Its directory; ``None`` is the cached default
            (``model_cache.model_path("texture-vit-v1", training_modules())``), which must exist (see
            :func:`load_texture_classifier`). Default: ``None``

    Returns:
        tuple: ``(model, processor, info)`` as for :func:`load_texture_classifier`.

    Examples::

        >>> from captum_attn_shapley.demos.vision_model import load_texture_vit
        >>> model, processor, info = load_texture_vit("path/to/saved/vit")
    """
    path = pathlib.Path(path) if path is not None else model_path(VISION_MODEL_NAME, training_modules())
    model = ViTForImageClassification.from_pretrained(path, attn_implementation="eager")
    model.eval()
    processor = IMAGE_PROCESSOR_CLASS.from_pretrained(path)
    return model, processor, loaded_info(path, model.config.id2label or {})


def load_texture_classifier(retrain: bool = False, progress: bool = True) -> Loaded:
    r"""The default texture-image classifier (a small ViT), trained on first use.

    If the cache (``model_cache.model_path("texture-vit-v1", training_modules())``, keyed by this
    code and the installed versions) holds a complete model with matching weights, it is loaded.
    Otherwise a ViT (:func:`texture_vit_config`) is trained from scratch for
    :data:`EPOCHS` epochs on :data:`TRAIN_SIZE` images of
    :func:`~captum_attn_shapley.demos.textures.make_texture_dataset` (a few minutes on 2 CPU
    cores; held-out accuracy 0.968), evaluated on :data:`TEST_SIZE` images of another seed (and on the same images
    with their object removed, which should be at chance) and saved there atomically with
    its image processor and ``metrics.json``.

    Args:
        retrain (bool, optional): Train again and replace the cached model.
            Default: ``False``
        progress (bool, optional): Show a progress bar while training. Default: ``True``

    Returns:
        tuple: ``(model, processor, info)``: the classifier in eval mode (eager attention,
        ``id2label`` the :data:`~captum_attn_shapley.demos.textures.CLASS_NAMES`), its
        ViT image processor (see :func:`texture_image_processor`) and a
        dict with the training metrics (``accuracy``, ``per_class_accuracy``,
        ``background_accuracy``, ``n_train``, ``seconds``, ...), ``name_or_path`` (the cached
        directory) and ``id2label``.

    Examples::

        >>> from captum_attn_shapley.demos.textures import make_texture_dataset
        >>> from captum_attn_shapley.demos.texture_vit import to_pixel_values
        >>> from captum_attn_shapley.demos.vision_model import load_texture_classifier
        >>> model, processor, info = load_texture_classifier()
        >>> info["accuracy"] > 0.95
        True
        >>> logits = model(pixel_values=to_pixel_values(make_texture_dataset(4).images)).logits
    """
    final = build_cached(VISION_MODEL_NAME, lambda out: _train(out, progress), training_modules(), retrain)
    return load_texture_vit(final)
