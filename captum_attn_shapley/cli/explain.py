"""``captum-attn-shapley explain``: the attention methods' token scores for one text."""

import argparse
import json
import pathlib
from typing import Dict, List, Sequence

import torch

from captum_attn_shapley._utils.labels import model_label_names
from captum_attn_shapley.attr import PAPER_VARIANTS
from captum_attn_shapley.capture import AttentionCapture
from captum_attn_shapley.capture.players import text_player_mask
from captum_attn_shapley.cli._checks import (
    check_max_length,
    check_model_source,
    check_output,
    check_text,
    loading,
    num_classes,
)
from captum_attn_shapley.cli._common import UserError, positive_int, target_index
from captum_attn_shapley.evaluation.registry import attention_method, resolve_attention_methods
from captum_attn_shapley.visualization.token_table import format_token_table, scores_as_lists, token_table_html


def resolve_methods(names: Sequence[str]) -> List[str]:
    r"""
    Resolves method names given on the command line.

    Args:
        names (sequence of str): Paper names (``Shapley-Grad-Att-Max-Mutual``), short
                    forms (``grad-att-max-mutual``), ``Att``, ``Grad-SAM``, or ``all``.

    Returns:
        list[str]: Canonical method names, in the order given.

    Raises:
        UserError: For an unknown name (a ``SystemExit`` with status 2).
    """
    try:
        return resolve_attention_methods(names)
    except ValueError as err:
        raise UserError(
            f"--methods: {err}",
            "Give the paper's names, their short forms (grad-att-max-mutual), Att, Grad-SAM or 'all'.",
        ) from None


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    r"""
    Adds the ``explain`` command and its options.

    Args:
        sub: The program's sub-command parsers.
    """
    explain = sub.add_parser("explain", help="explain the prediction for one text")
    explain.add_argument("text", help="the text to classify and explain")
    explain.add_argument(
        "--model",
        default=None,
        help="Hugging Face model id or local directory (default: the embedded tweet sentiment "
        "classifier, fine-tuned from all-MiniLM-L6-v2 on first use)",
    )
    explain.add_argument(
        "--methods",
        nargs="+",
        default=list(PAPER_VARIANTS),
        help="methods to show: the six Shapley variants by default; also the extended variants (lrp-att-cls, "
        "ig-att-cls, signed-grad-att-cls, ...), Att, Grad-SAM, AttnLRP, or 'all'",
    )
    explain.add_argument(
        "--target", default=None, help="class to explain (index or label name; default: the predicted class)"
    )
    explain.add_argument(
        "--layers", type=int, nargs="+", default=None, help="attention layers to average over (default: all)"
    )
    explain.add_argument(
        "--max-length",
        type=positive_int,
        default=None,
        help="truncate the text to this many tokens (default: as many as the model accepts, at most 512)",
    )
    explain.add_argument("--html", type=pathlib.Path, default=None, help="also write the table as an HTML page")
    explain.add_argument("--json", type=pathlib.Path, default=None, help="also write the scores as JSON")
    explain.add_argument(
        "--report",
        type=pathlib.Path,
        default=None,
        help="also write a self-contained HTML report: the tokens highlighted by every method, "
        "the prediction and each method's faithfulness metrics on this text",
    )
    explain.add_argument(
        "--label", default=None, help="the text's true label (index or name), shown in the report"
    )


def run(args: argparse.Namespace) -> int:
    r"""
    Explains the prediction for one text: prints the token table, writes the optional files.

    Args:
        args (argparse.Namespace): The parsed options.

    Returns:
        int: The exit status.
    """
    from transformers.utils import logging as hf_logging

    from captum_attn_shapley.demos.default_model import load_classifier

    hf_logging.disable_progress_bar()
    # what needs no model, before one is loaded (or trained)
    methods = resolve_methods(args.methods)
    check_text(args.text)
    for option in ("html", "json", "report"):
        check_output(getattr(args, option), f"--{option}")
    check_model_source(args.model)
    with loading(args.model):
        model, tokenizer, info = load_classifier(args.model)
    # what needs the model, before anything is computed
    max_length = check_max_length(args.max_length, model, default=512)
    if args.layers is not None:
        if "AttnLRP" in methods:
            raise UserError(
                "--layers does not apply to AttnLRP (it propagates relevance through every layer).",
                "Leave --layers out, or leave AttnLRP out of --methods.",
            )
        try:
            AttentionCapture(model).resolve_layers(args.layers)
        except ValueError as err:
            raise UserError(
                f"--layers {' '.join(map(str, args.layers))}: {err}", "Leave --layers out for all."
            ) from None
    id2label = model_label_names(model)
    classes = num_classes(model)
    target = target_index(args.target, id2label, num_classes=classes)
    label = target_index(args.label, id2label, "label", num_classes=classes)
    enc = tokenizer([args.text], return_tensors="pt", truncation=True, max_length=max_length)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.no_grad():
        probs = torch.softmax(model(ids, attention_mask=mask).logits, dim=1)[0]
    predicted = int(probs.argmax())
    explained = predicted if target is None else target
    special = tokenizer.all_special_ids
    scores: Dict[str, List[float]] = {}
    attributions: Dict[str, torch.Tensor] = {}
    for name in methods:
        method = attention_method(name, model, special)
        layers = {} if name == "AttnLRP" else {"layers": args.layers}
        attr = method.attribute(ids, target=explained, additional_forward_args=(mask,), **layers)
        scores[name] = attr[0].tolist()
        attributions[name] = attr
    tokens = tokenizer.convert_ids_to_tokens(ids[0])
    players = text_player_mask(ids, mask, special, model=model)[0].tolist()
    summary = (
        f"prediction: {id2label.get(predicted, predicted)} (p = {float(probs[predicted]):.3f}); "
        f"explaining class: {id2label.get(explained, explained)}; model: {info.get('name_or_path')}"
    )
    if "accuracy" in info:
        summary += f" (held-out accuracy {info['accuracy']:.3f})"
    print(summary)
    print()
    print(format_token_table(tokens, scores, players))
    if args.html is not None:
        args.html.write_text(token_table_html(f"Explanation of: {args.text}", tokens, scores, players, summary))
        print(f"\nwrote {args.html}")
    if args.report is not None:
        from captum_attn_shapley.evaluation.adapters import classifier_forward
        from captum_attn_shapley.visualization.html import attribution_report, text_examples, write_report

        examples = text_examples(
            classifier_forward(model),
            ids,
            attributions,
            tokenizer,
            additional_forward_args=(mask,),
            target=explained,
            labels=None if label is None else [label],
            label_names=id2label,
            texts=[args.text],
            f1_k=20,
        )
        examples[0].title = "Explained text"
        settings = {
            "methods": methods,
            "explained class": id2label.get(explained, explained),
            "layers": "all" if args.layers is None else args.layers,
            "max length": max_length,
            "metrics": "bins 0, 10, 20, 50 % of the tokens; removed tokens replaced by [MASK]",
        }
        write_report(
            args.report,
            attribution_report(
                examples,
                title="Explanation of a prediction",
                model_name=str(info.get("name_or_path")),
                settings=settings,
            ),
        )
        print(f"\nwrote {args.report}")
    if args.json is not None:
        payload = {
            "text": args.text,
            "tokens": tokens,
            "players": players,
            "predicted": id2label.get(predicted, predicted),
            "explained": id2label.get(explained, explained),
            "probabilities": {id2label.get(i, str(i)): float(p) for i, p in enumerate(probs)},
            "scores": scores_as_lists(scores),
        }
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")
    return 0
