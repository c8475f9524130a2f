"""Procedural texture images with known ground truth: the default *vision* task.

This is a ground-truth version of the zebra / dalmatian / fire-engine TCAV experiment. Each image
shows one object (an ellipse, rectangle, triangle or blob, covering 20-45 % of the image) on a
muted, low-contrast natural background (a random crop of the CC0 ``brick``, ``grass`` or
``gravel`` texture of :mod:`skimage.data`). The class is the object's *filling*:

* ``"striped"``: parallel stripes of two palette colours, random angle, period 6-10 px;
* ``"dotted"``: dots (radius 1.5-2.5 px, at most 0.3 of the spacing) of one palette colour on
  another, on a rotated grid of spacing 6-9 px with jittered centres;
* ``"zigzag"``: zigzag lines (a triangle wave of amplitude 3-4.5 px and wavelength 7-11 px,
  lines 7-10 px apart) of one palette colour on another;
* ``"red"`` / ``"blue"``: a plain red / blue object.

The two colours of a textured object are drawn from the whole :data:`PALETTE` (red, blue,
green, yellow, white, black), so colour says nothing about the three texture classes, while the
two colour classes depend on colour only: :data:`PLANTED_CONCEPT` names the one concept each
class depends on, and :attr:`TextureImages.masks` says where the object is.
:func:`concept_images` draws concept examples (and Captum's ``"random"`` concept) for TCAV.

Geometry is given for :data:`IMAGE_SIZE` (64 px) and scaled with ``image_size``. Everything is
drawn from one ``numpy.random.default_rng(seed)``: the same arguments give the same images, and
no global random state is touched.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from captum_attn_shapley.demos._texture_drawing import (
    BACKGROUNDS,
    COLOUR_JITTER,
    IMAGE_SIZE,
    NOISE_STD,
    OBJECT_FRACTION,
    PALETTE,
    TEXTURE_CONCEPTS,
    draw_background,
    draw_filling,
    draw_noise,
    draw_object_mask,
    draw_random_image,
    finish_image,
)

__all__ = [
    "BACKGROUNDS",
    "CLASS_NAMES",
    "COLOUR_CONCEPTS",
    "COLOUR_JITTER",
    "IMAGE_SIZE",
    "NOISE_STD",
    "OBJECT_FRACTION",
    "PALETTE",
    "PLANTED_CONCEPT",
    "TEXTURE_CONCEPTS",
    "TextureImages",
    "concept_images",
    "make_texture_dataset",
    "patch_mask_fraction",
]

#: The classes, defined by the object's filling; labels index this tuple.
CLASS_NAMES: Tuple[str, ...] = ("striped", "dotted", "zigzag", "red", "blue")
#: Colour concepts (plain fills); ``"green"`` and ``"yellow"`` are concepts no class depends on.
COLOUR_CONCEPTS: Tuple[str, ...] = ("red", "blue", "green", "yellow")
#: The concept each class depends on, by construction.
PLANTED_CONCEPT: Dict[str, str] = {
    "striped": "striped",
    "dotted": "dotted",
    "zigzag": "zigzag",
    "red": "red",
    "blue": "blue",
}


@dataclass
class TextureImages:
    r"""Images of textured or plain objects on natural backgrounds, with ground truth.

    Attributes:
        images (Tensor): ``(n, 3, H, W)`` float32 images in ``[0, 1]``.
        labels (Tensor): ``(n,)`` int64 indices into ``class_names``.
        masks (Tensor): ``(n, H, W)`` bool, true at the pixels of the object.
        class_names (tuple of str): Name of each label index.
        backgrounds (Tensor, optional): ``(n, 3, H, W)``: the same images with the object
            replaced by the background (same noise), if requested with
            ``make_texture_dataset(..., with_backgrounds=True)``; else ``None``.
    """

    images: Tensor
    labels: Tensor
    masks: Tensor
    class_names: Tuple[str, ...]
    backgrounds: Optional[Tensor] = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


# ----------------------------------------------------------------------------- validation


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")


def _check_image_size(image_size: int) -> None:
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, (int, np.integer))
        or image_size < 16
        or image_size % 8
    ):
        raise ValueError(f"image_size must be a multiple of 8 and at least 16, got {image_size!r}")


def make_texture_dataset(
    n: int,
    seed: int = 0,
    image_size: int = IMAGE_SIZE,
    classes: Sequence[str] = CLASS_NAMES,
    *,
    with_backgrounds: bool = False,
) -> TextureImages:
    r"""Random images of one textured or plain object on a natural background.

    The classes are balanced (``n // len(classes)`` images each, the remainder going one each
    to the first classes) and shuffled. Each image draws a background (a tinted,
    low-contrast crop of one of :data:`BACKGROUNDS`), an object shape (ellipse, rectangle,
    triangle or blob covering 20-45 % of the image, at least one pixel from the border) and
    the filling of its class (see the module docstring), then light Gaussian pixel noise
    everywhere. Everything is drawn from ``numpy.random.default_rng(seed)``: the same
    arguments give the same images.

    Args:
        n (int): Number of images.
        seed (int, optional): Seed of the images. Default: ``0``
        image_size (int, optional): Side in pixels, a multiple of 8, at least 16; the geometry
            (stripe period, dot size, ...) is given for 64 px and scales with it.
            Default: ``64``
        classes (sequence of str, optional): Classes to draw, a subset of
            :data:`CLASS_NAMES` in any order; labels index ``classes``.
            Default: :data:`CLASS_NAMES`
        with_backgrounds (bool, optional): Also return each image with its object replaced
            by the background (same noise), e.g. to check that a classifier needs the object.
            Default: ``False``

    Returns:
        TextureImages: ``images`` ``(n, 3, H, W)`` float32 in ``[0, 1]``, ``labels`` ``(n,)``
        int64, ``masks`` ``(n, H, W)`` bool (the object's pixels), ``class_names`` (the
        tuple of ``classes``) and ``backgrounds`` (or ``None``).

    Raises:
        ValueError: If ``n`` is not a positive integer, ``image_size`` is invalid, or
            ``classes`` is empty, repeats a class or names an unknown one.

    Examples::

        >>> from captum_attn_shapley.demos.textures import make_texture_dataset, CLASS_NAMES
        >>> data = make_texture_dataset(10, seed=0)
        >>> data.images.shape, data.masks.shape
        (torch.Size([10, 3, 64, 64]), torch.Size([10, 64, 64]))
        >>> CLASS_NAMES[int(data.labels[0])] in CLASS_NAMES
        True
    """
    _check_n(n)
    _check_image_size(image_size)
    classes = tuple(classes)
    if not classes:
        raise ValueError(f"classes must name at least one of {CLASS_NAMES}")
    unknown = [name for name in classes if name not in CLASS_NAMES]
    if unknown:
        raise ValueError(f"unknown classes {unknown}; valid classes are {CLASS_NAMES}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must not repeat a class, got {classes}")

    rng = np.random.default_rng(seed)
    counts = [n // len(classes) + (i < n % len(classes)) for i in range(len(classes))]
    labels = rng.permutation(np.repeat(np.arange(len(classes)), counts))
    images = np.empty((n, 3, image_size, image_size), dtype=np.float32)
    masks = np.empty((n, image_size, image_size), dtype=bool)
    backgrounds = np.empty_like(images) if with_backgrounds else None
    for i, label in enumerate(labels):
        background = draw_background(image_size, rng)
        mask = draw_object_mask(image_size, rng)
        filling = draw_filling(classes[label], image_size, rng)
        noise = draw_noise(image_size, rng)
        images[i] = finish_image(np.where(mask[None], filling, background), noise)
        masks[i] = mask
        if backgrounds is not None:
            backgrounds[i] = finish_image(background, noise)
    return TextureImages(
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels.astype(np.int64)),
        masks=torch.from_numpy(masks),
        class_names=classes,
        backgrounds=None if backgrounds is None else torch.from_numpy(backgrounds),
    )


def concept_images(concept: str, n: int, seed: int = 0, image_size: int = IMAGE_SIZE) -> Tensor:
    r"""Example images of a concept, e.g. for Captum's TCAV.

    * a texture concept (:data:`TEXTURE_CONCEPTS`): the whole image is that filling, with
      random colours, orientation and scale drawn as for the objects;
    * a colour concept (:data:`COLOUR_CONCEPTS`): the whole image is that plain colour, with
      the same jitter as plain objects;
    * ``"random"``: random crops of the tinted :data:`BACKGROUNDS` and of scikit-learn's two
      sample photographs (:func:`sklearn.datasets.load_sample_images`, rescaled from crops of
      up to half their height; nearly flat crops are drawn again), the random concept of
      Captum's statistical test.

    Light Gaussian pixel noise is added everywhere, as in :func:`make_texture_dataset`.

    Args:
        concept (str): A name of :data:`TEXTURE_CONCEPTS` or :data:`COLOUR_CONCEPTS`, or
            ``"random"``.
        n (int): Number of images.
        seed (int, optional): Seed of the images. Default: ``0``
        image_size (int, optional): Side in pixels, a multiple of 8, at least 16.
            Default: ``64``

    Returns:
        Tensor: ``(n, 3, H, W)`` float32 images in ``[0, 1]``.

    Raises:
        ValueError: If ``concept`` is unknown, ``n`` is not a positive integer or
            ``image_size`` is invalid.

    Examples::

        >>> from captum_attn_shapley.demos.textures import concept_images
        >>> concept_images("striped", 4).shape
        torch.Size([4, 3, 64, 64])
        >>> float(concept_images("red", 2)[:, 0].mean()) > 0.7
        True
    """
    valid = TEXTURE_CONCEPTS + COLOUR_CONCEPTS + ("random",)
    if concept not in valid:
        raise ValueError(f"unknown concept {concept!r}; valid concepts are {valid}")
    _check_n(n)
    _check_image_size(image_size)
    rng = np.random.default_rng(seed)
    images = np.empty((n, 3, image_size, image_size), dtype=np.float32)
    for i in range(n):
        if concept == "random":
            clean = draw_random_image(image_size, rng)
        else:
            clean = draw_filling(concept, image_size, rng)
        images[i] = finish_image(clean, draw_noise(image_size, rng))
    return torch.from_numpy(images)


def patch_mask_fraction(masks: Tensor, patch_size: int) -> Tensor:
    r"""Fraction of each patch covered by the object: ground truth at a ViT's patch grid.

    Args:
        masks (Tensor): ``(n, H, W)`` object masks (bool or 0/1), e.g.
            :attr:`TextureImages.masks`.
        patch_size (int): Patch side in pixels; it must divide ``H`` and ``W``.

    Returns:
        Tensor: ``(n, H / patch_size, W / patch_size)`` float32 in ``[0, 1]``, row-major
        like the ViT's patch tokens (``.flatten(1)`` gives token order after ``[CLS]``).

    Raises:
        ValueError: If ``masks`` is not 3-D or ``patch_size`` does not divide its sides.

    Examples::

        >>> import torch
        >>> from captum_attn_shapley.demos.textures import patch_mask_fraction
        >>> masks = torch.zeros(1, 4, 4, dtype=torch.bool)
        >>> masks[0, :2, :1] = True
        >>> patch_mask_fraction(masks, 2)
        tensor([[[0.5000, 0.0000],
                 [0.0000, 0.0000]]])
    """
    if masks.dim() != 3:
        raise ValueError(f"masks must have shape (n, H, W), got {tuple(masks.shape)}")
    n, height, width = masks.shape
    if (
        isinstance(patch_size, bool)
        or not isinstance(patch_size, (int, np.integer))
        or patch_size < 1
        or height % patch_size
        or width % patch_size
    ):
        raise ValueError(
            f"patch_size must be a positive integer dividing the mask sides {(height, width)}, got {patch_size!r}"
        )
    p = int(patch_size)
    blocks = masks.to(torch.float32).reshape(n, height // p, p, width // p, p)
    return blocks.mean(dim=(2, 4))
