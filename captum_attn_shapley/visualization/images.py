#!/usr/bin/env python3
"""From per-patch attributions to pixel-resolution maps for Captum's image visualisation."""

from typing import Tuple, Union

from captum.attr import LayerAttribution
from torch import Tensor


def patch_attributions_to_pixels(
    patch_attributions: Tensor, image_size: Union[Tuple[int, int], Tensor], mode: str = "nearest"
) -> Tensor:
    r"""
    Upsamples per-patch scores ``(batch, rows, cols)`` to pixel maps ``(batch, 1, H, W)``
    with Captum's :meth:`captum.attr.LayerAttribution.interpolate`.

    Args:
        patch_attributions (Tensor): As returned by
                    :meth:`AttnGradShapley.attribute` for an image model.
        image_size (tuple[int, int] or Tensor): ``(H, W)``, or the ``pixel_values``
                    batch itself.
        mode (str): Interpolation mode: ``"nearest"`` (default: each patch a uniform
                    block, exact) or ``"bilinear"`` (smooth).

    Returns:
        Tensor: Shape ``(batch, 1, H, W)``.

    Examples::

        >>> from captum.attr import visualization as viz
        >>> patches = AttnGradShapley(vit).attribute(pixel_values)
        >>> pixels = patch_attributions_to_pixels(patches, pixel_values)
        >>> viz.visualize_image_attr(
        ...     pixels[0].permute(1, 2, 0).numpy(),                 # (H, W, 1)
        ...     image[0].permute(1, 2, 0).numpy(),                  # (H, W, 3), in [0, 1]
        ...     method="blended_heat_map", sign="all")
    """
    if patch_attributions.dim() != 3:
        raise ValueError(
            f"Expected per-patch attributions of shape (batch, rows, cols), got {tuple(patch_attributions.shape)}."
        )
    if isinstance(image_size, Tensor):
        if image_size.dim() < 2:
            raise ValueError("`image_size` tensor must be a pixel batch (..., H, W).")
        size = (int(image_size.shape[-2]), int(image_size.shape[-1]))
    else:
        size = (int(image_size[0]), int(image_size[1]))
    upsampled: Tensor = LayerAttribution.interpolate(patch_attributions.unsqueeze(1), size, interpolate_mode=mode)
    return upsampled
