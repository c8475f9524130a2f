#!/usr/bin/env python3
"""Figures in a report: matplotlib figures and image arrays as PNG ``data:`` URIs inside ``<img>`` tags."""

import base64
import html
import io
import math
from typing import Any, Mapping, Optional, Union

import numpy as np

from captum_attn_shapley.visualization.heatmaps import _image_hwc

#: Display width, in pixels, below which embedded images are enlarged (nearest neighbour).
MIN_IMAGE_PIXELS = 160


def figure_to_png(figure: Any, dpi: int = 110, close: bool = True) -> bytes:
    r"""
    A matplotlib figure as PNG bytes (without matplotlib's "Software" metadata).

    Args:
        figure (matplotlib.figure.Figure): The figure.
        dpi (int): Resolution. Default: 110
        close (bool): Close the figure afterwards (frees its memory). Default: True

    Returns:
        bytes: The PNG file.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    if close:
        import matplotlib.pyplot as plt

        plt.close(figure)
    return buffer.getvalue()


def array_to_png(image: Any, min_size: int = MIN_IMAGE_PIXELS) -> bytes:
    r"""
    An RGB image array as PNG bytes, enlarged by an integer factor (nearest neighbour)
    until its shorter side reaches ``min_size`` pixels.

    Args:
        image (Tensor or array): ``(H, W, 3)`` or ``(3, H, W)``, values in [0, 1].
        min_size (int): Minimum size of the shorter side. Default: 160

    Returns:
        bytes: The PNG file.
    """
    from matplotlib.image import imsave

    array = _image_hwc(image)
    factor = max(1, math.ceil(min_size / max(1, min(array.shape[:2]))))
    if factor > 1:
        array = np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)
    buffer = io.BytesIO()
    imsave(buffer, np.clip(array, 0.0, 1.0), format="png", metadata={"Software": None})  # type: ignore[dict-item]
    return buffer.getvalue()


def png_data_uri(png: Union[bytes, Any]) -> str:
    r"""
    A ``data:image/png;base64,...`` URI for an ``<img src=...>``.

    Args:
        png (bytes or matplotlib.figure.Figure): PNG bytes, or a figure (saved with
                    :func:`figure_to_png` and closed).

    Returns:
        str: The URI.
    """
    data = png if isinstance(png, (bytes, bytearray)) else figure_to_png(png)
    return "data:image/png;base64," + base64.b64encode(bytes(data)).decode("ascii")


def img_html(png: Union[bytes, Any], alt: str, css_class: str = "") -> str:
    """An ``<img>`` of PNG bytes or a figure (see :func:`png_data_uri`), ``alt`` escaped."""
    cls = f' class="{css_class}"' if css_class else ""
    return f'<img{cls} src="{png_data_uri(png)}" alt="{html.escape(alt)}">'


def figures_html(figures: Optional[Mapping[str, Any]]) -> str:
    """Caption -> figure (or PNG bytes) as ``<figure>`` elements; empty for none."""
    if not figures:
        return ""
    return "\n".join(
        f"<figure>{img_html(fig, caption, 'figure')}<figcaption>{html.escape(caption)}</figcaption></figure>"
        for caption, fig in figures.items()
    )
