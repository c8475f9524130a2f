#!/usr/bin/env python3
"""Captum Insights on the embedded models and data (``captum-attn-shapley insights``)."""

from typing import Any, Optional

from captum_attn_shapley.visualization.insights import check_insights_available, image_visualizer, text_visualizer

#: The embedded demos :func:`embedded_visualizer` serves.
EMBEDDED_TASKS = ("text", "image")


def embedded_visualizer(task: str = "text", n: int = 4, seed: int = 0) -> Any:
    r"""
    Insights on an embedded model and data, offline: the default sentiment classifier on
    held-out tweets (``"text"``), or the texture ViT on generated texture images
    (``"image"``).

    Args:
        task (str): ``"text"`` or ``"image"``.
        n (int): Examples (balanced over the classes; Insights shows four at a time).
        seed (int): Which examples.

    Returns:
        captum.insights.AttributionVisualizer: Ready to ``.serve()``.

    Raises:
        InsightsUnavailableError: Without Captum Insights (captum >= 0.9).

    Examples::

        >>> from captum_attn_shapley.visualization.insights import embedded_visualizer
        >>> port = embedded_visualizer("image").serve(blocking=True)
    """
    check_insights_available()
    if task not in EMBEDDED_TASKS:
        raise ValueError(f"Unknown task {task!r}: use one of {list(EMBEDDED_TASKS)}.")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}.")
    if task == "text":
        from captum_attn_shapley.demos.datasets import load_tweets
        from captum_attn_shapley.demos.default_model import load_default_classifier

        model, tokenizer, _ = load_default_classifier()
        tweets = load_tweets("test", n_per_class=(n + 1) // 2, seed=seed)
        return text_visualizer(model, tokenizer, tweets.texts[:n], tweets.labels[:n])
    from captum_attn_shapley.demos.textures import make_texture_dataset
    from captum_attn_shapley.demos.vision_model import load_texture_classifier

    vit, processor, _ = load_texture_classifier()
    data = make_texture_dataset(n, seed=seed)
    return image_visualizer(vit, data.images, data.labels.tolist(), processor=processor)


def serve_embedded(
    task: str = "text", n: int = 4, seed: int = 0, port: Optional[int] = None, blocking: bool = True
) -> int:
    r"""
    Serves :func:`embedded_visualizer` on ``http://localhost:<port>/``.

    Args:
        task, n, seed: See :func:`embedded_visualizer`.
        port (int, optional): The port (default: a free one).
        blocking (bool): Serve until interrupted (default) or return at once.

    Returns:
        int: The port.
    """
    visualizer = embedded_visualizer(task, n, seed)
    return int(visualizer.serve(blocking=blocking, port=port))
