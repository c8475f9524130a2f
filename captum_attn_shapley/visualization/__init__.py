"""Seeing attributions: Captum's visualisation adapters, heatmaps, plots and self-contained HTML reports
(:mod:`captum_attn_shapley.visualization.html`).

Captum Insights support is in :mod:`captum_attn_shapley.visualization.insights` (captum 0.8 only).
"""

from captum_attn_shapley.visualization.captum_adapters import image_attr_maps, text_records
from captum_attn_shapley.visualization.heatmaps import (
    overlay_patch_heatmap,
    plot_patch_heatmap,
    plot_token_heatmap,
    token_colours,
    upsample_patch_map,
)
from captum_attn_shapley.visualization.html import (
    ReportExample,
    attribution_report,
    comparison_report,
    image_examples,
    tcav_heatmap_examples,
    tcav_report,
    text_examples,
    write_report,
)
from captum_attn_shapley.visualization.images import patch_attributions_to_pixels
from captum_attn_shapley.visualization.plots import plot_aopc, plot_comparison, plot_tcav_scores
from captum_attn_shapley.visualization.token_table import format_token_table, token_table_html

__all__ = [
    "ReportExample",
    "attribution_report",
    "comparison_report",
    "format_token_table",
    "image_attr_maps",
    "image_examples",
    "overlay_patch_heatmap",
    "patch_attributions_to_pixels",
    "plot_aopc",
    "plot_comparison",
    "plot_patch_heatmap",
    "plot_tcav_scores",
    "plot_token_heatmap",
    "tcav_heatmap_examples",
    "tcav_report",
    "text_examples",
    "text_records",
    "token_colours",
    "token_table_html",
    "upsample_patch_map",
    "write_report",
]
