#!/usr/bin/env python3
"""Pages of TokenTCAV runs: the T-TCAV table, the bar charts and token-sensitivity heatmaps."""

import html
import math
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Union, cast

from torch import Tensor

from captum_attn_shapley._utils.forward import forward_args_tuple
from captum_attn_shapley._utils.labels import LabelNames
from captum_attn_shapley.visualization.html._format import data_value
from captum_attn_shapley.visualization.html._inputs import display_mask
from captum_attn_shapley.visualization.html.builders import image_examples, text_examples
from captum_attn_shapley.visualization.html.example import ReportExample, render_example
from captum_attn_shapley.visualization.html.figures import figures_html
from captum_attn_shapley.visualization.html.page import page_html

if TYPE_CHECKING:  # pragma: no cover
    from captum_attn_shapley.concept.scores import TokenTCAVScores
    from captum_attn_shapley.concept.token_tcav import TokenTCAV


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
    from captum_attn_shapley._utils.formatting import format_number
    from captum_attn_shapley.concept.scores import TokenTCAVScores

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
            attrs = f'data-col="{key}" data-value="{data_value(value)}"'
            if key == "significant":
                text = '<span class="sig">yes *</span>' if value else '<span class="ns">no (n.s.)</span>'
                cells.append(f"<td {attrs}>{text}</td>")
            elif isinstance(value, float):
                cells.append(f'<td class="num" {attrs}>{html.escape(format_number(value))}</td>')
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
    mask = display_mask(inputs, forward_args_tuple(additional_forward_args))
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
        runs = {str(k): v for k, v in cast(Mapping[str, TokenTCAVScores], scores).items()}
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
            chart = plot_tcav_scores(run, title=None if key is None else f"class: {key}")
            body.append(figures_html({caption: chart}))
        examples_here = heatmaps.get(key, [])
        if examples_here:
            body.append("<h3>Heatmaps</h3>")
            prefix = "heatmap" if key is None else "heatmap-" + "".join(c if c.isalnum() else "-" for c in key)
            body += [render_example(ex, i, f"{prefix}-{i}") for i, ex in enumerate(examples_here)]
    return page_html(title, "\n".join(body), model_name, settings)
