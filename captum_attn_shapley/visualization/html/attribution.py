#!/usr/bin/env python3
"""Pages of explained examples (:func:`attribution_report`) and of comparison runs (:func:`comparison_report`)."""

import html
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from captum_attn_shapley._utils.formatting import percent_slug
from captum_attn_shapley._utils.labels import LabelNames
from captum_attn_shapley.capture.players import text_player_mask
from captum_attn_shapley.visualization.html._format import data_value, number_html
from captum_attn_shapley.visualization.html._inputs import label_namer
from captum_attn_shapley.visualization.html.example import ReportExample, render_example
from captum_attn_shapley.visualization.html.figures import figures_html
from captum_attn_shapley.visualization.html.page import page_html

if TYPE_CHECKING:  # pragma: no cover
    from captum_attn_shapley.evaluation import ComparisonResult


def _summary_table(summary: Sequence[Mapping[str, Any]], f1_k: float) -> str:
    key = f"f1_at_{percent_slug(f1_k)}"
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
            attrs = f'data-col="{col}" data-value="{data_value(value)}"'
            if col in ("comprehensiveness", "sufficiency"):
                text = f"{number_html(value)} ± {number_html(row.get(col + '_ci95'))}"
            elif col == "examples_per_second":
                text = number_html(value, 3 if value is not None and value < 1 else 1)
            elif col == key:
                text = number_html(value, 3)
            else:
                text = html.escape(str(value if value is not None else ""))
            cls = ' class="num"' if col not in ("method", "description") else ""
            cells.append(f"<td{cls} {attrs}>{text}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f'<table class="summary"><tr>{head}</tr>{"".join(rows)}</table>'


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
        body.append(figures_html(figures))
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
    return page_html(title, "\n".join(body), model_name, settings)


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
    The report of a :func:`~captum_attn_shapley.evaluation.run_comparison` run: the
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
    name_of = label_namer(label_names)
    chosen = list(examples) if examples is not None else list(range(min(max_examples, len(texts))))
    special = sorted(set(int(i) for i in tokenizer.all_special_ids))
    f1_k = float(config.get("f1_k", 20))
    prediction_key = f"prediction_at_{percent_slug(f1_k)}"
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
