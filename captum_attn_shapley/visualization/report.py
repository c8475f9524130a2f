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
  :func:`comparison_report` from a :class:`~captum_attn_shapley.evaluation.comparison.ComparisonResult`.
- :func:`tcav_report`: the T-TCAV table of a :class:`~captum_attn_shapley.TokenTCAV` run
  with raw and corrected p-values and significance, the bar chart of
  :func:`~captum_attn_shapley.visualization.plots.plot_tcav_scores`, and heatmaps of
  :meth:`TokenTCAV.token_sensitivity` (built by :func:`tcav_heatmap_examples`).
- :func:`write_report` writes the page.

Colours: red for positive scores, blue for negative, white for zero, each method (or
concept and layer) on its own symmetric scale, whose limit is shown in its legend.
"""

import base64
import datetime
import html
import io
import math
import pathlib
import platform
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from captum_attn_shapley._utils.forward import forward_args_tuple
from captum_attn_shapley._utils.targets import TargetLike, normalize_target
from captum_attn_shapley.capture.players import text_player_mask
from captum_attn_shapley.metrics.faithfulness import (
    DEFAULT_BINS,
    Replacement,
    faithfulness_curves,
    resolve_special_token_ids,
    token_scores,
)
from captum_attn_shapley.visualization.token_table import (
    HIGHLIGHT_CSS,
    colour_legend_html,
    highlighted_tokens_html,
    max_abs_score,
)

if TYPE_CHECKING:  # pragma: no cover
    from captum_attn_shapley.concept.scores import TokenTCAVScores
    from captum_attn_shapley.concept.token_tcav import TokenTCAV
    from captum_attn_shapley.evaluation.comparison import ComparisonResult

ArrayLike = Union[Tensor, np.ndarray, Sequence[float], Sequence[Sequence[float]]]
LabelNames = Union[Sequence[str], Mapping[int, str]]

#: Packages whose versions every report lists.
REPORTED_PACKAGES = (
    "captum-attn-shapley",
    "captum",
    "torch",
    "transformers",
    "numpy",
    "scipy",
    "scikit-learn",
    "matplotlib",
)

#: Display width, in pixels, below which embedded images are enlarged (nearest neighbour).
MIN_IMAGE_PIXELS = 160


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


# ---------------------------------------------------------------------------------------- figures


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

    from captum_attn_shapley.visualization.heatmaps import _image_hwc

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


def _img(png: Union[bytes, Any], alt: str, css_class: str = "") -> str:
    cls = f' class="{css_class}"' if css_class else ""
    return f'<img{cls} src="{png_data_uri(png)}" alt="{html.escape(alt)}">'


# ---------------------------------------------------------------------------------------- page


def environment_info() -> Dict[str, str]:
    r"""
    Python, the platform and the versions of :data:`REPORTED_PACKAGES` (for the footer of
    a report).

    Returns:
        dict: Name -> version (``"not installed"`` where missing).
    """
    from importlib import metadata

    info = {"python": platform.python_version(), "platform": platform.platform()}
    for name in REPORTED_PACKAGES:
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = "not installed"
    return info


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1300px;
       padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; }
.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0 1.4em 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: middle; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
section.example { border-top: 2px solid #eee; padding-top: 0.6em; margin-top: 1.2em; }
.prediction { margin: 0.3em 0 0.6em 0; }
.source { font-style: italic; color: #333; }
.maps { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.maps figure { margin: 0; text-align: center; font-size: 0.85em; }
.maps img { display: block; margin-bottom: 4px; }
img.figure { max-width: 100%; }
.sig { font-weight: bold; color: #1b4f9c; }
.ns { color: #888; }
.ok { color: #1a7f37; }
.wrong { color: #b42318; }
footer { margin-top: 3em; font-size: 0.85em; color: #555; }
"""


def _page(title: str, body: str, model_name: Optional[str], settings: Optional[Mapping[str, Any]]) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds")
    meta = [f"generated {html.escape(now)}"]
    if model_name:
        meta.insert(0, f"model: <b>{html.escape(str(model_name))}</b>")
    parts = [f'<h1>{html.escape(title)}</h1>\n<p class="meta">{" · ".join(meta)}</p>']
    if settings:
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_setting(v))}</td></tr>"
            for k, v in settings.items()
        )
        parts.append(f'<h2>Settings</h2>\n<table class="settings">{rows}</table>')
    parts.append(body)
    versions = ", ".join(f"{html.escape(k)} {html.escape(v)}" for k, v in environment_info().items())
    parts.append(f"<footer>Made with captum-attn-shapley. Environment: {versions}.</footer>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}{HIGHLIGHT_CSS}</style></head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )


def _setting(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_setting(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "–"
        if value != 0 and abs(value) < 10**-digits:
            return f"{value:.1e}"
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _data_value(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return html.escape(str(value), quote=True)


# ---------------------------------------------------------------------------------------- examples


def _label_namer(label_names: Optional[LabelNames], forward_func: Any = None) -> Callable[[int], str]:
    names: Dict[int, str] = {}
    if label_names is None and forward_func is not None:
        from captum_attn_shapley.capture.attention import find_model

        try:
            config = getattr(find_model(forward_func), "config", None)
        except (TypeError, ValueError):
            config = None
        label_names = dict(getattr(config, "id2label", None) or {})
    if isinstance(label_names, Mapping):
        names = {int(k): str(v) for k, v in label_names.items()}
    elif label_names is not None:
        names = {i: str(v) for i, v in enumerate(label_names)}
    return lambda index: names.get(int(index), str(int(index)))


def _display_mask(ids: Tensor, extra: Tuple[Any, ...]) -> Optional[Tensor]:
    """The attention mask among the additional forward arguments (first 0/1 tensor shaped like the ids)."""
    for arg in extra:
        if isinstance(arg, Tensor) and tuple(arg.shape) == tuple(ids.shape) and not arg.is_floating_point():
            if bool(((arg == 0) | (arg == 1)).all()):
                return arg
    return None


def _pct(k: float) -> str:
    return f"{k:g}".replace(".", "_")


def _predict(forward_func: Callable, inputs: Tensor, extra: Tuple[Any, ...]) -> Tensor:
    from captum_attn_shapley._utils.forward import logits_from_output

    with torch.no_grad():
        logits = logits_from_output(forward_func(inputs, *extra))
    return torch.softmax(logits.double(), dim=1)


def _map_dict(attributions: Mapping[str, Any]) -> Dict[str, Any]:
    if not isinstance(attributions, Mapping) or not attributions:
        raise ValueError("`attributions` must map each method name to its attributions (at least one method).")
    return dict(attributions)


def text_examples(
    forward_func: Callable,
    input_ids: Tensor,
    attributions: Mapping[str, Union[Tensor, Tuple[Tensor, ...]]],
    tokenizer: Any,
    additional_forward_args: Any = None,
    target: TargetLike = None,
    labels: Optional[Sequence[int]] = None,
    label_names: Optional[LabelNames] = None,
    texts: Optional[Sequence[str]] = None,
    metrics: bool = True,
    bins: Sequence[float] = DEFAULT_BINS,
    f1_k: float = 20,
    replacement: Replacement = "mask",
    special_token_ids: Optional[Sequence[int]] = None,
) -> List[ReportExample]:
    r"""
    Report examples of a text batch: tokens, every method's scores, the prediction and,
    with ``metrics``, each method's comprehensiveness, sufficiency and prediction with
    only the top ``f1_k`` percent of the tokens kept on each example
    (:func:`~captum_attn_shapley.metrics.faithfulness.faithfulness_curves`, for the explained class).

    Args:
        forward_func (Callable): The model or a Captum-style function returning logits,
                    called as ``forward_func(input_ids, *additional_forward_args)``.
        input_ids (Tensor): Token ids, ``(batch, seq)``.
        attributions (mapping): Method name -> its attributions of ``input_ids``:
                    ``(batch, seq)``, ``(batch, seq, hidden)`` (summed) or Captum's 1-tuple.
        tokenizer: The tokenizer (tokens, special tokens, the replacement token).
        additional_forward_args (Any, optional): E.g. ``(attention_mask,)``. Padding (the
                    zeros of an attention mask shaped like ``input_ids``) is not displayed.
        target (int, list, Tensor, optional): The explained class (Captum conventions);
                    default: the predicted class.
        labels (sequence of int, optional): Gold labels, shown as the true label.
        label_names (sequence or mapping, optional): Class index -> name; default: the
                    model's ``config.id2label``.
        texts (sequence of str, optional): The original texts, shown above the tokens.
        metrics (bool): Compute the faithfulness metrics (2 forward passes per bin and
                    method). Default: True
        bins (sequence of float): Bins of the metrics, in percent. Default: (0, 10, 20, 50)
        f1_k (float): The bin of the kept-tokens prediction (the ingredient of the F1).
                    Default: 20
        replacement (int or str): The token that removes tokens in the metrics.
                    Default: ``"mask"``
        special_token_ids (sequence of int, optional): Default: ``tokenizer.all_special_ids``.

    Returns:
        list[ReportExample]: One per example.

    Examples::

        >>> enc = tokenizer(texts, return_tensors="pt", padding=True)
        >>> attr = {"Shapley-Grad-Att-Max-Mutual": AttnGradShapley(model).attribute(
        ...     enc["input_ids"], additional_forward_args=(enc["attention_mask"],))}
        >>> examples = text_examples(model, enc["input_ids"], attr, tokenizer,
        ...                          additional_forward_args=(enc["attention_mask"],), labels=labels)
        >>> write_report("report.html", attribution_report(examples, model_name="my model"))
    """
    if not isinstance(input_ids, Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
        raise ValueError("`input_ids` must be an integer tensor of shape (batch, seq).")
    methods = _map_dict(attributions)
    extra = forward_args_tuple(additional_forward_args)
    mask = _display_mask(input_ids, extra)
    batch = int(input_ids.shape[0])
    if labels is not None and len(labels) != batch:
        raise ValueError(f"{len(labels)} labels for {batch} examples: give one label per example.")
    if texts is not None and len(texts) != batch:
        raise ValueError(f"{len(texts)} texts for {batch} examples: give one text per example.")
    name_of = _label_namer(label_names, forward_func)
    probs = _predict(forward_func, input_ids, extra)
    predicted = probs.argmax(dim=1)
    explained = normalize_target(target, probs)
    special = resolve_special_token_ids(special_token_ids, tokenizer, forward_func)
    players = text_player_mask(input_ids, mask, special)
    scores = {name: token_scores(attr, tuple(input_ids.shape)) for name, attr in methods.items()}
    per_method: Dict[str, Dict[str, List[Any]]] = {}
    if metrics:
        kept_bins = tuple(bins) + ((f1_k,) if float(f1_k) not in [float(b) for b in bins] else ())
        for name, values in scores.items():
            curves = faithfulness_curves(
                forward_func,
                input_ids,
                values,
                target=explained,
                additional_forward_args=additional_forward_args,
                bins=kept_bins,
                replacement=replacement,
                tokenizer=tokenizer,
                special_token_ids=special,
                player_mask=players,
            )
            per_method[name] = {
                "comprehensiveness": curves.comprehensiveness().tolist(),
                "sufficiency": curves.sufficiency().tolist(),
                f"prediction_at_{_pct(f1_k)}": [name_of(int(p)) for p in curves.predictions_at(f1_k)],
            }
    examples: List[ReportExample] = []
    for b in range(batch):
        keep = mask[b].bool() if mask is not None else torch.ones(input_ids.shape[1], dtype=torch.bool)
        ids = input_ids[b][keep]
        examples.append(
            ReportExample(
                attributions={name: values[b][keep].tolist() for name, values in scores.items()},
                tokens=[str(t) for t in tokenizer.convert_ids_to_tokens(ids.tolist())],
                players=players[b][keep].tolist(),
                text=None if texts is None else str(texts[b]),
                title=f"Example {b}",
                predicted=name_of(int(predicted[b])),
                probability=float(probs[b, predicted[b]]),
                true_label=None if labels is None else name_of(int(labels[b])),
                explained=name_of(int(explained[b])),
                metrics={name: {key: values[b] for key, values in m.items()} for name, m in per_method.items()},
            )
        )
    return examples


def image_examples(
    forward_func: Callable,
    pixel_values: Tensor,
    attributions: Mapping[str, ArrayLike],
    images: Optional[Tensor] = None,
    additional_forward_args: Any = None,
    target: TargetLike = None,
    labels: Optional[Sequence[int]] = None,
    label_names: Optional[LabelNames] = None,
) -> List[ReportExample]:
    r"""
    Report examples of an image batch: the image, every method's per-patch map and the
    prediction. (The faithfulness metrics of :mod:`captum_attn_shapley.metrics.faithfulness`
    replace tokens by an id, so they are not computed for images.)

    Args:
        forward_func (Callable): The model or a function returning logits, called as
                    ``forward_func(pixel_values, *additional_forward_args)``.
        pixel_values (Tensor): The model inputs, ``(batch, 3, H, W)``.
        attributions (mapping): Method name -> per-patch scores ``(batch, rows, cols)``
                    (as :class:`~captum_attn_shapley.AttnGradShapley` returns for images).
        images (Tensor, optional): The images to display, ``(batch, 3, H, W)`` in [0, 1]
                    (the inputs before the model's normalisation). Default: ``pixel_values``,
                    which must then be in [0, 1].
        additional_forward_args (Any, optional): Passed to the model.
        target (int, list, Tensor, optional): The explained class; default: predicted.
        labels (sequence of int, optional): Gold labels.
        label_names (sequence or mapping, optional): Class index -> name; default: the
                    model's ``config.id2label``.

    Returns:
        list[ReportExample]: One per image.

    Examples::

        >>> maps = {"Shapley-Grad-Att-Max-Mutual": AttnGradShapley(vit).attribute(pixel_values)}
        >>> examples = image_examples(vit, pixel_values, maps, images=to_images(pixel_values))
        >>> write_report("vit.html", attribution_report(examples, model_name="texture ViT"))
    """
    methods = _map_dict(attributions)
    extra = forward_args_tuple(additional_forward_args)
    display = pixel_values if images is None else images
    batch = int(pixel_values.shape[0])
    if int(display.shape[0]) != batch:
        raise ValueError(f"{int(display.shape[0])} images for {batch} inputs: give one display image per input.")
    if labels is not None and len(labels) != batch:
        raise ValueError(f"{len(labels)} labels for {batch} examples: give one label per example.")
    name_of = _label_namer(label_names, forward_func)
    probs = _predict(forward_func, pixel_values, extra)
    predicted = probs.argmax(dim=1)
    explained = normalize_target(target, probs)
    maps: Dict[str, Tensor] = {}
    for name, values in methods.items():
        tensor = torch.as_tensor(values.detach().cpu() if isinstance(values, Tensor) else np.asarray(values))
        if tensor.dim() != 3 or int(tensor.shape[0]) != batch:
            raise ValueError(
                f"{name}: expected per-patch scores of shape (batch, rows, cols), got {tuple(tensor.shape)}."
            )
        maps[name] = tensor.float()
    return [
        ReportExample(
            attributions={name: m[b] for name, m in maps.items()},
            image=display[b].detach().cpu(),
            title=f"Example {b}",
            predicted=name_of(int(predicted[b])),
            probability=float(probs[b, predicted[b]]),
            true_label=None if labels is None else name_of(int(labels[b])),
            explained=name_of(int(explained[b])),
        )
        for b in range(batch)
    ]


# ---------------------------------------------------------------------------------------- rendering

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
    from captum_attn_shapley.visualization.heatmaps import _image_hwc, overlay_patch_heatmap

    image = _image_hwc(example.image)
    figures = [f"<figure>{_img(array_to_png(image), 'input image')}<figcaption>input</figcaption></figure>"]
    for name, values in example.attributions.items():
        scores = torch.as_tensor(values).float()
        if scores.dim() != 2:
            raise ValueError(f"{name}: expected per-patch scores (rows, cols), got shape {tuple(scores.shape)}.")
        vmax = float(scores.abs().max())
        overlay = overlay_patch_heatmap(image, scores, vmax=vmax if vmax > 0 else None)
        figures.append(
            f'<figure class="method" data-method="{html.escape(name, quote=True)}">'
            f"{_img(array_to_png(overlay), name)}<figcaption>{html.escape(name)}<br>"
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
                f'data-value="{_data_value(value)}"'
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
                cells.append(f'<td class="num" {attrs}>{_number(value)}</td>')
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


def _summary_table(summary: Sequence[Mapping[str, Any]], f1_k: float) -> str:
    key = f"f1_at_{_pct(f1_k)}"
    columns = [
        ("method", "method"),
        ("description", "description"),
        ("n", "n"),
        ("comprehensiveness", "comprehensiveness ↑ (±95%)"),
        ("sufficiency", "sufficiency ↓ (±95%)"),
        (key, f"F1@{f1_k:g}%"),
        ("examples_per_second", "examples/s"),
    ]
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in columns)
    rows = []
    for row in summary:
        cells = []
        for col, _ in columns:
            value = row.get(col)
            attrs = f'data-col="{col}" data-value="{_data_value(value)}"'
            if col in ("comprehensiveness", "sufficiency"):
                text = f"{_number(value)} ± {_number(row.get(col + '_ci95'))}"
            elif col == "examples_per_second":
                text = _number(value, 3 if value is not None and value < 1 else 1)
            elif col == key:
                text = _number(value, 3)
            else:
                text = html.escape(str(value if value is not None else ""))
            cls = ' class="num"' if col not in ("method", "description") else ""
            cells.append(f"<td{cls} {attrs}>{text}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f'<table class="summary"><tr>{head}</tr>{"".join(rows)}</table>'


def _figures(figures: Optional[Mapping[str, Any]]) -> str:
    if not figures:
        return ""
    return "\n".join(
        f"<figure>{_img(fig, caption, 'figure')}<figcaption>{html.escape(caption)}</figcaption></figure>"
        for caption, fig in figures.items()
    )


def attribution_report(
    examples: Sequence[ReportExample],
    title: str = "Attribution report",
    model_name: Optional[str] = None,
    settings: Optional[Mapping[str, Any]] = None,
    summary: Optional[Sequence[Mapping[str, Any]]] = None,
    f1_k: float = 20,
    figures: Optional[Mapping[str, Any]] = None,
    notes: str = "",
) -> str:
    r"""
    A self-contained HTML page of explained examples: for each, every method's map side
    by side (highlighted tokens or image overlays, each on its own colour scale with a
    legend), the prediction, the true label and the method's faithfulness metrics on that
    example; optionally a comparison's summary table and figures.

    Args:
        examples (sequence of ReportExample): The examples (see :func:`text_examples`,
                    :func:`image_examples`).
        title (str): The page title. Default: ``"Attribution report"``
        model_name (str, optional): Shown under the title.
        settings (mapping, optional): Settings shown in a table (name -> value).
        summary (sequence of dict, optional): A comparison's summary rows
                    (:attr:`ComparisonResult.summary`).
        f1_k (float): The F1's bin in ``summary``. Default: 20
        figures (mapping, optional): Caption -> matplotlib figure (closed after embedding)
                    or PNG bytes.
        notes (str): A paragraph under the settings (escaped).

    Returns:
        str: The HTML document.

    Examples::

        >>> page = attribution_report(text_examples(model, ids, attributions, tokenizer,
        ...                                         additional_forward_args=(mask,)),
        ...                           model_name="sentiment-minilm-v1")
        >>> write_report("report.html", page)
    """
    body: List[str] = []
    if notes:
        body.append(f"<p>{html.escape(notes)}</p>")
    if summary:
        body.append("<h2>Summary</h2>")
        body.append(_summary_table(summary, f1_k))
    if figures:
        body.append("<h2>Figures</h2>")
        body.append(_figures(figures))
    if examples:
        body.append("<h2>Examples</h2>")
        body.append(
            "<p>Red: the score pushes towards the explained class; blue: against; white: zero. Each method "
            "has its own symmetric colour scale (its legend gives the limit); greyed tokens carry no score. "
            "Comprehensiveness (higher is better) and sufficiency (lower is better) are the drops of the "
            "explained class's probability when the top tokens are removed / only they are kept, averaged "
            "over the bins.</p>"
        )
        body += [render_example(example, i) for i, example in enumerate(examples)]
    return _page(title, "\n".join(body), model_name, settings)


def comparison_report(
    result: "ComparisonResult",
    texts: Sequence[str],
    tokenizer: Any,
    label_names: Optional[LabelNames] = None,
    examples: Optional[Sequence[int]] = None,
    max_examples: int = 8,
    title: str = "Comparison of attribution methods",
    plot: bool = True,
    labels: Optional[Sequence[int]] = None,
) -> str:
    r"""
    The report of a :func:`~captum_attn_shapley.evaluation.comparison.run_comparison` run: the
    summary table, the faithfulness figures and, for some examples, every method's
    highlighted tokens side by side with the per-example metrics of the run.

    Args:
        result (ComparisonResult): The run.
        texts (sequence of str): The texts given to the run (in the same order).
        tokenizer: The run's tokenizer.
        label_names (sequence or mapping, optional): Class index -> name.
        examples (sequence of int, optional): Indices of the examples to show. Default:
                    the first ``max_examples``.
        max_examples (int): See ``examples``. Default: 8
        title (str): The page title.
        plot (bool): Embed :func:`~captum_attn_shapley.visualization.plots.plot_comparison` and
                    :func:`~captum_attn_shapley.visualization.plots.plot_aopc`. Default: True
        labels (sequence of int, optional): The run's gold labels; if given, texts and
                    labels are checked against the run's data fingerprint.

    Returns:
        str: The HTML document.

    Examples::

        >>> result = run_comparison(model, tokenizer, texts, labels, methods, out_dir="results")
        >>> write_report("results/report.html", comparison_report(result, texts, tokenizer))
    """
    from captum_attn_shapley._utils.fingerprint import settings_digest

    config = result.config
    if len(texts) != int(config.get("n_examples", len(texts))):
        raise ValueError(f"The run has {config.get('n_examples')} examples but {len(texts)} texts were given.")
    if labels is not None and settings_digest([list(texts), [int(v) for v in labels]]) != config.get("data"):
        raise ValueError("These texts and labels are not those of the comparison run (data fingerprint differs).")
    name_of = _label_namer(label_names)
    chosen = list(examples) if examples is not None else list(range(min(max_examples, len(texts))))
    special = sorted(set(int(i) for i in tokenizer.all_special_ids))
    f1_k = float(config.get("f1_k", 20))
    prediction_key = f"prediction_at_{_pct(f1_k)}"
    by_method: Dict[str, Dict[int, Tuple[List[float], Dict[str, Any]]]] = {}
    for name, method_scores in result.attributions.items():
        rows = sorted((r for r in result.rows if r["method"] == name), key=lambda r: r["example"])
        by_method[name] = {int(r["example"]): (list(s), r) for r, s in zip(rows, method_scores)}
    report_examples: List[ReportExample] = []
    for i in chosen:
        if not 0 <= i < len(texts):
            raise ValueError(f"Example {i} is out of range (the run has {len(texts)} examples).")
        enc = tokenizer(
            [texts[i]], truncation=True, max_length=int(config.get("max_length", 512)), return_tensors="pt"
        )
        ids = enc["input_ids"]
        players = text_player_mask(ids, enc["attention_mask"], special)[0]
        positions = torch.nonzero(players).flatten().tolist()
        maps: Dict[str, Any] = {}
        metrics: Dict[str, Dict[str, Any]] = {}
        first: Optional[Dict[str, Any]] = None
        for name, per_example in by_method.items():
            if i not in per_example:
                continue  # the method ran on fewer examples (max_examples)
            scores, row = per_example[i]
            if len(scores) != len(positions):
                raise ValueError(
                    f"{name}, example {i}: {len(scores)} scores for {len(positions)} tokens; the tokenizer or the "
                    "texts differ from the run's."
                )
            full = [0.0] * int(ids.shape[1])
            for position, value in zip(positions, scores):
                full[position] = float(value)
            maps[name] = full
            metrics[name] = {"comprehensiveness": row["comprehensiveness"], "sufficiency": row["sufficiency"]}
            if prediction_key in row:
                metrics[name][prediction_key] = name_of(int(row[prediction_key]))
            first = first or row
        if first is None:
            continue
        report_examples.append(
            ReportExample(
                attributions=maps,
                tokens=[str(t) for t in tokenizer.convert_ids_to_tokens(ids[0].tolist())],
                players=players.tolist(),
                text=str(texts[i]),
                title=f"Example {i}",
                predicted=name_of(int(first["predicted"])),
                probability=float(first["probability"]),
                true_label=name_of(int(first["label"])),
                metrics=metrics,
            )
        )
    figures: Dict[str, Any] = {}
    if plot:
        from captum_attn_shapley.visualization.plots import plot_aopc, plot_comparison

        figures["Faithfulness per method (mean ± 95% CI) and cost"] = plot_comparison(result)
        figures["AOPC curves: mean probability drop per bin"] = plot_aopc(result)
    settings = {k: v for k, v in config.items() if k not in ("version", "model_name", "data")}
    settings["model fingerprint"] = settings.pop("model", "")
    return attribution_report(
        report_examples,
        title=title,
        model_name=str(config.get("model_name", "")),
        settings=settings,
        summary=result.summary,
        f1_k=f1_k,
        figures=figures,
    )


# ---------------------------------------------------------------------------------------- TokenTCAV

#: Columns of the T-TCAV table of :func:`tcav_report`: (row key, header).
TCAV_REPORT_COLUMNS = (
    ("concept_set", "concept set"),
    ("concept", "concept"),
    ("layer", "layer"),
    ("t_tcav", "T-TCAV"),
    ("t_tcav_sd", "sd"),
    ("repeats", "R"),
    ("magnitude", "magnitude"),
    ("cav_accuracy", "CAV accuracy"),
    ("p_value", "p (t-test vs 0.5)"),
    ("p_value_corrected", "p corrected"),
    ("p_value_random", "p (random concepts)"),
    ("p_value_random_corrected", "p (random) corrected"),
    ("significant", "significant"),
)


def tcav_table_html(scores: "TokenTCAVScores") -> str:
    r"""
    The rows of :meth:`TokenTCAVScores.rows` as an HTML table: T-TCAV with its standard
    deviation over the R CAVs, magnitude, probe accuracy, the t-test p-value (raw and,
    if a correction was applied, corrected), Captum's random-concept p-value if that test
    was run, and significance. Each cell carries the exact value in ``data-value``.

    Args:
        scores (TokenTCAVScores): The result of :meth:`TokenTCAV.interpret`.

    Returns:
        str: The ``<table>``.
    """
    from captum_attn_shapley.concept.scores import TokenTCAVScores, _fmt

    if not isinstance(scores, TokenTCAVScores):
        raise TypeError(f"Expected the TokenTCAVScores of TokenTCAV.interpret, got {type(scores).__name__}.")
    rows = scores.rows()
    has_random = any(not math.isnan(r["p_value_random"]) for r in rows)
    columns = [
        (key, label)
        for key, label in TCAV_REPORT_COLUMNS
        if not (key.endswith("_corrected") and not scores.correction)
        and not (key.startswith("p_value_random") and not has_random)
    ]
    columns = [
        (k, f"{label} ({scores.correction})" if k.endswith("_corrected") else label) for k, label in columns
    ]
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in columns)
    body = []
    for row in rows:
        cells = []
        for key, _ in columns:
            value = row[key]
            attrs = f'data-col="{key}" data-value="{_data_value(value)}"'
            if key == "significant":
                text = '<span class="sig">yes *</span>' if value else '<span class="ns">no (n.s.)</span>'
                cells.append(f"<td {attrs}>{text}</td>")
            elif isinstance(value, float):
                cells.append(f'<td class="num" {attrs}>{html.escape(_fmt(value))}</td>')
            else:
                cells.append(f"<td {attrs}>{html.escape(str(value))}</td>")
        body.append(f'<tr class="tcav-row">{"".join(cells)}</tr>')
    return f'<table class="tcav"><tr>{head}</tr>{"".join(body)}</table>'


def tcav_heatmap_examples(
    tcav: "TokenTCAV",
    inputs: Tensor,
    experimental_set: List[Any],
    target: Optional[int] = None,
    additional_forward_args: Any = None,
    concepts: Optional[Sequence[Any]] = None,
    layers: Optional[Sequence[Union[str, int]]] = None,
    tokenizer: Any = None,
    images: Optional[Tensor] = None,
    labels: Optional[Sequence[int]] = None,
    label_names: Optional[LabelNames] = None,
) -> List[ReportExample]:
    r"""
    Report examples of :meth:`TokenTCAV.token_sensitivity` maps: for each input, one map
    per concept and layer (captioned ``"<concept> · <layer>"``), with the prediction.

    Args:
        tcav (TokenTCAV): The TokenTCAV instance of the run (its CAVs are reused).
        inputs (Tensor): ``pixel_values`` or ``input_ids`` of a few target examples.
        experimental_set (list[Concept]): The concepts' experimental set.
        target (int, optional): The class whose logit is differentiated; default: the
                    predicted class of each example.
        additional_forward_args (Any, optional): E.g. ``(attention_mask,)`` for text.
        concepts (sequence of Concept, optional): The concepts to map. Default: the set's.
        layers (sequence of str or int, optional): Default: all of ``tcav.layers``.
        tokenizer (optional): For text inputs: turns the ids into tokens (required for text).
        images (Tensor, optional): For image inputs: the images to display, in [0, 1].
                    Default: ``inputs``.
        labels (sequence of int, optional): Gold labels.
        label_names (sequence or mapping, optional): Class index -> name.

    Returns:
        list[ReportExample]: One per input.

    Examples::

        >>> examples = tcav_heatmap_examples(tcav, zebras[:3], [striped, dotted, zigzag], target=0,
        ...                                  images=to_images(zebras[:3]))
        >>> write_report("tcav.html", tcav_report(scores, examples))
    """
    if not isinstance(inputs, Tensor):
        raise TypeError("`inputs` must be a tensor (pixel_values or input_ids).")
    chosen = list(experimental_set) if concepts is None else list(concepts)
    chosen_layers = list(tcav.layers) if layers is None else [tcav._layer_name(layer) for layer in layers]
    maps: Dict[str, Tensor] = {}
    for concept in chosen:
        for layer in chosen_layers:
            maps[f"{concept.name} · {layer}"] = tcav.token_sensitivity(
                inputs,
                experimental_set,
                concept,
                layer,
                target=target,
                additional_forward_args=additional_forward_args,
            )
    forward = tcav.capturer.forward_func
    text = not inputs.is_floating_point()
    if not text:
        return image_examples(
            forward,
            inputs,
            maps,
            images=images,
            additional_forward_args=additional_forward_args,
            target=target,
            labels=labels,
            label_names=label_names,
        )
    if tokenizer is None:
        raise ValueError("Text inputs need `tokenizer=` to show their tokens.")
    mask = _display_mask(inputs, forward_args_tuple(additional_forward_args))
    rows = list(inputs) if mask is None else [row[keep.bool()] for row, keep in zip(inputs, mask)]
    texts = [tokenizer.decode(row.tolist(), skip_special_tokens=True) for row in rows]
    # the heatmaps' players: TokenTCAV's special tokens, else the tokenizer's (as text_examples resolves them)
    return text_examples(
        forward,
        inputs,
        maps,
        tokenizer,
        additional_forward_args=additional_forward_args,
        target=target,
        labels=labels,
        label_names=label_names,
        texts=texts,
        metrics=False,
        special_token_ids=tcav._special_ids or None,
    )


def tcav_report(
    scores: Union["TokenTCAVScores", Mapping[str, "TokenTCAVScores"]],
    examples: Optional[Union[Sequence[ReportExample], Mapping[str, Sequence[ReportExample]]]] = None,
    title: str = "TokenTCAV report",
    model_name: Optional[str] = None,
    settings: Optional[Mapping[str, Any]] = None,
    plot: bool = True,
) -> str:
    r"""
    A self-contained HTML page of a TokenTCAV run: per target class, the T-TCAV table
    (:func:`tcav_table_html`), the bar chart with significance marks
    (:func:`~captum_attn_shapley.visualization.plots.plot_tcav_scores`) and heatmaps of the concepts
    on some target examples (:func:`tcav_heatmap_examples`).

    Args:
        scores (TokenTCAVScores or mapping): One run, or target class name -> run.
        examples (sequence or mapping, optional): Heatmap examples; with a mapping
                    ``scores``, a mapping with the same keys.
        title (str): The page title. Default: ``"TokenTCAV report"``
        model_name (str, optional): Shown under the title.
        settings (mapping, optional): Settings shown in a table.
        plot (bool): Embed the bar charts. Default: True

    Returns:
        str: The HTML document.

    Examples::

        >>> scores = tcav.interpret(zebras, [[striped, dotted, zigzag]], target=0, correction="holm")
        >>> page = tcav_report({"striped": scores}, {"striped": examples}, model_name="texture ViT")
        >>> write_report("tcav.html", page)
    """
    from captum_attn_shapley.concept.scores import TokenTCAVScores

    runs: Dict[Optional[str], TokenTCAVScores]
    if isinstance(scores, TokenTCAVScores):
        runs = {None: scores}
        if examples is not None and isinstance(examples, Mapping):
            raise TypeError("With one TokenTCAVScores, give `examples` as a sequence.")
        heatmaps: Dict[Optional[str], Sequence[ReportExample]] = {None: list(examples or [])}
    elif isinstance(scores, Mapping) and scores and all(isinstance(s, TokenTCAVScores) for s in scores.values()):
        runs = {str(k): v for k, v in scores.items()}
        if examples is not None and not isinstance(examples, Mapping):
            raise TypeError("With a mapping of TokenTCAVScores, give `examples` as a mapping with the same keys.")
        heatmaps = {str(k): list(v) for k, v in (examples or {}).items()}
    else:
        raise TypeError(
            "`scores` must be the TokenTCAVScores of TokenTCAV.interpret, or a non-empty mapping "
            "target name -> TokenTCAVScores."
        )
    body = [
        "<p>T-TCAV: the fraction of target examples whose attention-weighted directional derivative along the "
        "concept's CAV is positive, mean (and standard deviation) over the R repeated CAVs; 0.5 means no "
        "directional effect. p: two-sided t-test of the R scores against 0.5; p (random concepts): Captum's test "
        "against CAVs of random concepts, when run. Significant (*): the (corrected) p-values below alpha. "
        "Heatmaps: the per-token terms D_t of the concept's mean CAV (red: towards the class, blue: against).</p>"
    ]
    for key, run in runs.items():
        if key is not None:
            body.append(f'<h2 class="target">Target class: {html.escape(key)}</h2>')
        body.append(
            f"<p>{run.num_examples} target examples; alpha = {run.alpha:g}; "
            f"correction: {html.escape(str(run.correction or 'none'))}.</p>"
        )
        body.append(tcav_table_html(run))
        if plot:
            from captum_attn_shapley.visualization.plots import plot_tcav_scores

            caption = "T-TCAV per concept and layer" + (f", target class {key}" if key is not None else "")
            body.append(_figures({caption: plot_tcav_scores(run, title=None if key is None else f"class: {key}")}))
        examples_here = heatmaps.get(key, [])
        if examples_here:
            body.append("<h3>Heatmaps</h3>")
            prefix = "heatmap" if key is None else "heatmap-" + "".join(c if c.isalnum() else "-" for c in key)
            body += [render_example(ex, i, f"{prefix}-{i}") for i, ex in enumerate(examples_here)]
    return _page(title, "\n".join(body), model_name, settings)


def write_report(path: Union[str, pathlib.Path], page: str) -> pathlib.Path:
    r"""
    Writes a report page (UTF-8), creating the parent directories.

    Args:
        path (str or Path): The ``.html`` file.
        page (str): The page of :func:`attribution_report`, :func:`comparison_report` or
                    :func:`tcav_report`.

    Returns:
        pathlib.Path: The path written.
    """
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return target
