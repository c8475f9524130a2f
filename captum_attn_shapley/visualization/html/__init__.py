#!/usr/bin/env python3
"""Self-contained HTML reports of attributions, comparisons and TokenTCAV runs.

A report is one ``.html`` file that opens anywhere without a server or a network: the CSS
is inline, there is no JavaScript, and every figure is a PNG embedded as a base64 ``data:``
URI. All text taken from the data (tokens, texts, labels, method and concept names) is
HTML-escaped.

- :func:`attribution_report`: per example, the text with its tokens highlighted by every
  method side by side (or the image with one heatmap per method), the prediction, the true
  label, and the faithfulness metrics of each method on that example; optionally the
  summary table and figures of a comparison run. :func:`text_examples` and
  :func:`image_examples` build its examples from a model and Captum attributions,
  :func:`comparison_report` from a :class:`~captum_attn_shapley.evaluation.ComparisonResult`.
- :func:`tcav_report`: the T-TCAV table of a :class:`~captum_attn_shapley.TokenTCAV` run
  with raw and corrected p-values and significance, the bar chart of
  :func:`~captum_attn_shapley.visualization.plots.plot_tcav_scores`, and heatmaps of
  :meth:`TokenTCAV.token_sensitivity` (built by :func:`tcav_heatmap_examples`).
- :func:`write_report` writes the page.

Colours: red for positive scores, blue for negative, white for zero, each method (or
concept and layer) on its own symmetric scale, whose limit is shown in its legend.

Modules: ``page`` (the document, its CSS and footer, :func:`write_report`), ``figures`` (PNG
embedding), ``example`` (:class:`ReportExample` and its section), ``builders`` (examples from a
model), ``attribution`` (attribution and comparison pages), ``tcav`` (TokenTCAV pages).
"""

from captum_attn_shapley.visualization.html.attribution import attribution_report, comparison_report
from captum_attn_shapley.visualization.html.builders import image_examples, text_examples
from captum_attn_shapley.visualization.html.example import ReportExample, render_example
from captum_attn_shapley.visualization.html.figures import (
    MIN_IMAGE_PIXELS,
    array_to_png,
    figure_to_png,
    png_data_uri,
)
from captum_attn_shapley.visualization.html.page import REPORTED_PACKAGES, environment_info, write_report
from captum_attn_shapley.visualization.html.tcav import (
    TCAV_REPORT_COLUMNS,
    tcav_heatmap_examples,
    tcav_report,
    tcav_table_html,
)

__all__ = [
    "MIN_IMAGE_PIXELS",
    "REPORTED_PACKAGES",
    "ReportExample",
    "TCAV_REPORT_COLUMNS",
    "array_to_png",
    "attribution_report",
    "comparison_report",
    "environment_info",
    "figure_to_png",
    "image_examples",
    "png_data_uri",
    "render_example",
    "tcav_heatmap_examples",
    "tcav_report",
    "tcav_table_html",
    "text_examples",
    "write_report",
]
