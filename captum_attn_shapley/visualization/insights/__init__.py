#!/usr/bin/env python3
r"""
Our attention attributions in Captum Insights.

Captum Insights (``captum.insights.AttributionVisualizer``) ships with captum 0.8 only; it
was removed in captum 0.9. Install it with the ``insights`` extra::

    pip install "captum-attn-shapley[insights]"   # captum 0.8.0, numpy<2, flask, ...

:func:`register_insights_methods` adds AttnGradShapley (its game and weighting as
parameters, i.e. all six paper variants), Grad-SAM and Att to Insights' list of attribution
methods, next to Captum's own. :func:`text_visualizer` and :func:`image_visualizer` build a
ready :class:`~captum.insights.AttributionVisualizer` for a Hugging Face text or image
classifier. With captum 0.9 these functions raise :class:`InsightsUnavailableError`, which
says how to get Insights, or to write the self-contained HTML report instead.
"""

from captum_attn_shapley.visualization.insights.availability import (
    INSIGHTS_HELP,
    InsightsUnavailableError,
    check_insights_available,
    insights_available,
)
from captum_attn_shapley.visualization.insights.forwards import ImageLogitsForward, TextEmbeddingForward
from captum_attn_shapley.visualization.insights.methods import (
    INSIGHTS_METHODS,
    InsightsAttentionReceived,
    InsightsAttnGradShapley,
    InsightsGradSAM,
    parse_layers,
    register_insights_methods,
)
from captum_attn_shapley.visualization.insights.visualizers import image_visualizer, text_visualizer

__all__ = [
    "INSIGHTS_HELP",
    "INSIGHTS_METHODS",
    "ImageLogitsForward",
    "InsightsAttentionReceived",
    "InsightsAttnGradShapley",
    "InsightsGradSAM",
    "InsightsUnavailableError",
    "TextEmbeddingForward",
    "check_insights_available",
    "image_visualizer",
    "insights_available",
    "parse_layers",
    "register_insights_methods",
    "text_visualizer",
]
