#!/usr/bin/env python3
"""One explained example of a report (:class:`ReportExample`) and its HTML ``<section>``."""

import html
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import torch

from captum_attn_shapley.visualization.heatmaps import _image_hwc, overlay_patch_heatmap
from captum_attn_shapley.visualization.html._format import data_value, number_html
from captum_attn_shapley.visualization.html.figures import array_to_png, img_html
from captum_attn_shapley.visualization.token_table import (
    colour_legend_html,
    highlighted_tokens_html,
    max_abs_score,
)


@dataclass
class ReportExample:
    r"""
    One explained example of a report.

    Attributes:
        attributions (dict): Method name (or any map's caption) -> scores: one per token
                    (``(n_tokens,)``, aligned with ``tokens``) for text, or one per patch
                    (``(rows, cols)``) for an image.
        tokens (list[str], optional): The tokens of a text example.
        players (list[bool], optional): Which tokens carry scores (the others are shown
                    greyed out). Default: all.
        image (Tensor or array, optional): The image of an image example, ``(3, H, W)``
                    or ``(H, W, 3)`` with values in [0, 1].
        text (str, optional): The original text, shown above the tokens.
        title (str): The example's heading.
        predicted (str, optional): The predicted label.
        probability (float, optional): Its probability.
        true_label (str, optional): The gold label, if known.
        explained (str, optional): The class the scores explain, if not the predicted one.
        metrics (dict): Method name -> metric name -> value: ``comprehensiveness``,
                    ``sufficiency`` (floats) and ``prediction_at_<k>`` (the label predicted
                    when only the top k% of the tokens are kept); any other metric is shown
                    under its own name.
    """

    attributions: Dict[str, Any]
    tokens: Optional[List[str]] = None
    players: Optional[List[bool]] = None
    image: Any = None
    text: Optional[str] = None
    title: str = ""
    predicted: Optional[str] = None
    probability: Optional[float] = None
    true_label: Optional[str] = None
    explained: Optional[str] = None
    metrics: Dict[str, Dict[str, Any]] = field(default_factory=dict)


_METRIC_HEADERS = {"comprehensiveness": "comprehensiveness ↑", "sufficiency": "sufficiency ↓"}


def _metric_header(key: str) -> str:
    if key in _METRIC_HEADERS:
        return _METRIC_HEADERS[key]
    if key.startswith("prediction_at_"):
        return f"prediction, top {key[len('prediction_at_') :].replace('_', '.')}% kept"
    return key


def _prediction_line(example: ReportExample) -> str:
    parts = []
    if example.predicted is not None:
        p = "" if example.probability is None else f" (p = {example.probability:.3f})"
        parts.append(f'prediction: <b class="predicted">{html.escape(example.predicted)}</b>{p}')
    if example.true_label is not None:
        mark = ""
        if example.predicted is not None:
            mark = (
                ' <span class="ok">✓</span>'
                if example.true_label == example.predicted
                else ' <span class="wrong">✗</span>'
            )
        parts.append(f'true label: <b class="true-label">{html.escape(example.true_label)}</b>{mark}')
    if example.explained is not None and example.explained != example.predicted:
        parts.append(f"explained class: <b>{html.escape(example.explained)}</b>")
    return f'<p class="prediction">{" · ".join(parts)}</p>' if parts else ""


def _text_maps(example: ReportExample) -> str:
    tokens = list(example.tokens or [])
    rows = []
    for name, values in example.attributions.items():
        scores = [float(v) for v in torch.as_tensor(values).reshape(-1).tolist()]
        if len(scores) != len(tokens):
            raise ValueError(f"{name}: {len(scores)} scores for {len(tokens)} tokens in {example.title!r}.")
        players = example.players if example.players is not None else [True] * len(tokens)
        vmax = max_abs_score(scores, players)
        rows.append(
            f'<tr class="method" data-method="{html.escape(name, quote=True)}"><th>{html.escape(name)}</th>'
            f"<td>{highlighted_tokens_html(tokens, scores, players, vmax)}</td>"
            f"<td>{colour_legend_html(vmax)}</td></tr>"
        )
    head = "<tr><th>method</th><th>tokens</th><th>scale</th></tr>"
    return f'<table class="highlights">{head}{"".join(rows)}</table>'


def _image_maps(example: ReportExample) -> str:
    image = _image_hwc(example.image)
    figures = [f"<figure>{img_html(array_to_png(image), 'input image')}<figcaption>input</figcaption></figure>"]
    for name, values in example.attributions.items():
        scores = torch.as_tensor(values).float()
        if scores.dim() != 2:
            raise ValueError(f"{name}: expected per-patch scores (rows, cols), got shape {tuple(scores.shape)}.")
        vmax = float(scores.abs().max())
        overlay = overlay_patch_heatmap(image, scores, vmax=vmax if vmax > 0 else None)
        figures.append(
            f'<figure class="method" data-method="{html.escape(name, quote=True)}">'
            f"{img_html(array_to_png(overlay), name)}<figcaption>{html.escape(name)}<br>"
            f"{colour_legend_html(vmax)}</figcaption></figure>"
        )
    return f'<div class="maps">{"".join(figures)}</div>'


def _metrics_table(example: ReportExample) -> str:
    if not example.metrics:
        return ""
    keys: List[str] = []
    for values in example.metrics.values():
        keys += [k for k in values if k not in keys]
    head = "".join(f"<th>{html.escape(_metric_header(k))}</th>" for k in keys)
    rows = []
    for name, values in example.metrics.items():
        cells = []
        for key in keys:
            value = values.get(key)
            attrs = (
                f'data-method="{html.escape(name, quote=True)}" data-metric="{html.escape(key, quote=True)}" '
                f'data-value="{data_value(value)}"'
            )
            if key.startswith("prediction_at_") and value is not None:
                mark = ""
                if example.true_label is not None:
                    mark = (
                        ' <span class="ok">✓</span>'
                        if str(value) == example.true_label
                        else ' <span class="wrong">✗</span>'
                    )
                cells.append(f"<td {attrs}>{html.escape(str(value))}{mark}</td>")
            else:
                cells.append(f'<td class="num" {attrs}>{number_html(value)}</td>')
        rows.append(f"<tr><th>{html.escape(name)}</th>{''.join(cells)}</tr>")
    return f'<table class="metrics"><tr><th>method</th>{head}</tr>{"".join(rows)}</table>'


def render_example(example: ReportExample, index: int = 0, anchor: Optional[str] = None) -> str:
    r"""
    One example as an HTML ``<section>``: heading, original text, prediction line, the
    maps of every method side by side (highlighted tokens with a legend per method, or
    the image and one overlay per method) and the metrics table.

    Args:
        example (ReportExample): The example.
        index (int): Its number (used in the default heading).
        anchor (str, optional): The section's ``id``. Default: ``example-<index>``.

    Returns:
        str: The HTML fragment.
    """
    if example.tokens is None and example.image is None:
        raise ValueError(f"Example {example.title or index!r} has neither tokens nor an image.")
    anchor = anchor if anchor is not None else f"example-{index}"
    parts = [
        f'<section class="example" id="{html.escape(anchor, quote=True)}">',
        f"<h3>{html.escape(example.title or f'Example {index}')}</h3>",
    ]
    if example.text:
        parts.append(f'<p class="source">{html.escape(example.text)}</p>')
    parts.append(_prediction_line(example))
    parts.append(_text_maps(example) if example.tokens is not None else _image_maps(example))
    parts.append(_metrics_table(example))
    parts.append("</section>")
    return "\n".join(p for p in parts if p)
