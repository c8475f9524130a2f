#!/usr/bin/env python3
"""Heatmaps of per-token scores (T-TCAV's ``D_t``, or any attribution); their localisation checks are in
:mod:`captum_attn_shapley.metrics.localisation`.

Images: per-patch maps upsampled onto the image and overlaid, with a colour bar. Text:
tokens highlighted by score. Every figure function has an array counterpart
(:func:`upsample_patch_map`, :func:`overlay_patch_heatmap`, :func:`token_colours`).
"""

from typing import Any, Optional, Sequence, Tuple, Union, cast

import numpy as np
from numpy.typing import NDArray
from torch import Tensor

from captum_attn_shapley._utils.arrays import ArrayLike, as_tensor
from captum_attn_shapley.visualization.images import patch_attributions_to_pixels


def _height_width(image_hwc: NDArray[Any]) -> Tuple[int, int]:
    """``(H, W)`` of an ``(H, W, C)`` image array."""
    return int(image_hwc.shape[0]), int(image_hwc.shape[1])


def _image_hwc(image: ArrayLike) -> NDArray[Any]:
    array = as_tensor(image).numpy()
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = np.transpose(array, (1, 2, 0))
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3):
        raise ValueError(f"Expected an image of shape (3, H, W) or (H, W, 3), got {array.shape}.")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if array.min() < -1e-6 or array.max() > 1 + 1e-6:
        raise ValueError(
            "The image must hold values in [0, 1] (for display): undo the model's normalisation first, "
            "e.g. with captum_attn_shapley.demos.texture_vit.to_images."
        )
    return np.clip(array, 0.0, 1.0)


def _symmetric_norm(values: NDArray[Any], vmax: Optional[float]) -> Any:
    from matplotlib.colors import Normalize

    limit = float(np.abs(values).max()) if vmax is None else float(vmax)
    limit = limit if limit > 0 else 1.0
    return Normalize(vmin=-limit, vmax=limit)


def upsample_patch_map(
    patch_scores: ArrayLike, image_size: Union[Tuple[int, int], Tensor], mode: str = "bilinear"
) -> Tensor:
    r"""
    Upsamples per-patch scores onto the pixel grid.

    Args:
        patch_scores (Tensor or array): ``(rows, cols)`` or ``(batch, rows, cols)``.
        image_size (tuple[int, int] or Tensor): ``(H, W)``, or the pixel batch itself.
        mode (str): ``"bilinear"`` (smooth, default) or ``"nearest"`` (uniform patches).

    Returns:
        Tensor: ``(H, W)`` or ``(batch, H, W)``, matching the input.

    Examples::

        >>> maps = tcav.token_sensitivity(pixel_values, [striped, dotted], striped, layer=4)
        >>> pixels = upsample_patch_map(maps, (64, 64))        # (batch, 64, 64)
    """
    scores = as_tensor(patch_scores)
    single = scores.dim() == 2
    if single:
        scores = scores.unsqueeze(0)
    if scores.dim() != 3:
        raise ValueError(
            f"Expected patch scores of shape (rows, cols) or (batch, rows, cols), got {tuple(scores.shape)}."
        )
    pixels = patch_attributions_to_pixels(scores, image_size, mode=mode)[:, 0]
    return pixels[0] if single else pixels


def overlay_patch_heatmap(
    image: ArrayLike,
    patch_scores: ArrayLike,
    cmap: str = "bwr",
    alpha: float = 0.55,
    mode: str = "bilinear",
    vmax: Optional[float] = None,
) -> NDArray[Any]:
    r"""
    The image with the upsampled patch map blended over it, as an RGB array.

    Args:
        image (Tensor or array): ``(3, H, W)`` or ``(H, W, 3)``, values in [0, 1].
        patch_scores (Tensor or array): ``(rows, cols)``.
        cmap (str): A diverging matplotlib colour map centred on 0. Default: ``"bwr"``
        alpha (float): Opacity of the map. Default: 0.55
        mode (str): Upsampling mode. Default: ``"bilinear"``
        vmax (float, optional): Colour scale limit (symmetric); default: the largest ``|score|``.

    Returns:
        ndarray: ``(H, W, 3)`` floats in [0, 1].
    """
    from matplotlib import colormaps

    base = _image_hwc(image)
    heat = upsample_patch_map(patch_scores, _height_width(base), mode=mode).numpy()
    colours = colormaps[cmap](_symmetric_norm(heat, vmax)(heat))[..., :3]
    return cast(NDArray[Any], (1 - alpha) * base + alpha * colours)


def plot_patch_heatmap(
    image: ArrayLike,
    patch_scores: ArrayLike,
    title: Optional[str] = None,
    cmap: str = "bwr",
    alpha: float = 0.55,
    mode: str = "bilinear",
    vmax: Optional[float] = None,
    ax: Any = None,
    colorbar: bool = True,
) -> Any:
    r"""
    A matplotlib figure of the patch map overlaid on the image, with a colour bar.

    Args:
        image (Tensor or array): ``(3, H, W)`` or ``(H, W, 3)``, values in [0, 1].
        patch_scores (Tensor or array): ``(rows, cols)``.
        title (str, optional): Axes title.
        cmap, alpha, mode, vmax: As for :func:`overlay_patch_heatmap`.
        ax (matplotlib Axes, optional): Draw into these axes; default: a new figure.
        colorbar (bool): Draw the colour bar. Default: True

    Returns:
        matplotlib.figure.Figure: The figure.

    Examples::

        >>> fig = plot_patch_heatmap(to_images(pixel_values)[0], maps[0], title="striped @ layer 4")
        >>> fig.savefig("striped.png")
    """
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable

    heat = upsample_patch_map(patch_scores, _height_width(_image_hwc(image)), mode=mode).numpy()
    norm = _symmetric_norm(heat, vmax)
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.2, 3.6))
    else:
        fig = ax.figure
    ax.imshow(overlay_patch_heatmap(image, patch_scores, cmap, alpha, mode, norm.vmax))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    if colorbar:
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.046, pad=0.04)
    return fig


def token_colours(scores: ArrayLike, cmap: str = "bwr", vmax: Optional[float] = None) -> NDArray[Any]:
    r"""
    The highlight colour of each token (a diverging map centred on 0).

    Args:
        scores (Tensor or array): ``(n_tokens,)``.
        cmap (str): Colour map. Default: ``"bwr"``
        vmax (float, optional): Colour scale limit; default: the largest ``|score|``.

    Returns:
        ndarray: ``(n_tokens, 4)`` RGBA in [0, 1].
    """
    from matplotlib import colormaps

    values = as_tensor(scores).numpy().reshape(-1)
    return cast(NDArray[Any], colormaps[cmap](_symmetric_norm(values, vmax)(values)))


def readable_text_colour(background: Sequence[float]) -> str:
    r"""
    Black or white, whichever reads better on a background colour.

    Args:
        background (sequence of float): RGB (or RGBA) in [0, 1].

    Returns:
        str: ``"black"`` or ``"white"``.
    """
    luminance = 0.299 * float(background[0]) + 0.587 * float(background[1]) + 0.114 * float(background[2])
    return "white" if luminance < 0.45 else "black"


def plot_token_heatmap(
    tokens: Sequence[str],
    scores: ArrayLike,
    title: Optional[str] = None,
    cmap: str = "bwr",
    vmax: Optional[float] = None,
    ax: Any = None,
    colorbar: bool = True,
    line_width: float = 0.95,
) -> Any:
    r"""
    A matplotlib figure of the tokens highlighted by score, wrapped over lines.

    Args:
        tokens (sequence of str): The tokens (e.g. ``tokenizer.convert_ids_to_tokens``).
        scores (Tensor or array): One score per token.
        title (str, optional): Axes title.
        cmap (str): Diverging colour map. Default: ``"bwr"``
        vmax (float, optional): Colour scale limit; default: the largest ``|score|``.
        ax (matplotlib Axes, optional): Draw into these axes.
        colorbar (bool): Draw a colour bar. Default: True
        line_width (float): Wrap width, as a fraction of the axes. Default: 0.95

    Returns:
        matplotlib.figure.Figure: The figure.

    Examples::

        >>> d = tcav.token_sensitivity(ids, [positive, negative], positive, 3,
        ...                            additional_forward_args=(mask,))
        >>> fig = plot_token_heatmap(tokenizer.convert_ids_to_tokens(ids[0]), d[0])
    """
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable

    values = as_tensor(scores).numpy().reshape(-1)
    if len(tokens) != values.size:
        raise ValueError(f"Got {len(tokens)} tokens but {values.size} scores: give one score per token.")
    norm = _symmetric_norm(values, vmax)
    colours = token_colours(values, cmap, norm.vmax)
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 1.2 + 0.35 * max(1, len(tokens) // 12)))
    else:
        fig = ax.figure
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    x, y = 0.0, 0.85
    to_axes = ax.transAxes.inverted()
    for token, colour in zip(tokens, colours):
        text = ax.text(
            x,
            y,
            token,
            transform=ax.transAxes,
            fontsize=10,
            va="top",
            family="monospace",
            color=readable_text_colour(colour),
            bbox=dict(boxstyle="round,pad=0.2", facecolor=colour, edgecolor="none"),
        )
        box = text.get_window_extent(renderer=renderer)
        width = to_axes.transform([[box.x1, 0]])[0, 0] - to_axes.transform([[box.x0, 0]])[0, 0]
        if x > 0 and x + width > line_width:
            x, y = 0.0, y - 0.22
            text.set_position((x, y))
        x += width + 0.012
    if colorbar:
        bar = fig.colorbar(
            ScalarMappable(norm=norm, cmap=cmap),
            ax=ax,
            orientation="horizontal",
            fraction=0.08,
            pad=0.02,
            aspect=40,
        )
        bar.set_ticks([norm.vmin, 0.0, norm.vmax])  # three ticks: small limits never overlap
        bar.ax.xaxis.set_major_formatter("{x:.3g}")
    return fig
