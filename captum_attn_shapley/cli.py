#!/usr/bin/env python3
"""Command-line program: ``captum-attn-shapley explain "some text"``."""
import argparse
import json
import pathlib
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from captum_attn_shapley.attention_attribution import AttentionAttribution
from captum_attn_shapley.attn_grad_shapley import AttnGradShapley, variant_name
from captum_attn_shapley.baselines import AttentionReceived, GradSAM
from captum_attn_shapley.players import text_player_mask
from captum_attn_shapley.token_table import format_token_table, scores_as_lists, token_table_html

#: Every exact variant, by its paper name: (game, weighting).
VARIANTS: Dict[str, Tuple[str, str]] = {
    variant_name(game, weighting): (game, weighting)
    for weighting in ("attention", "grad_attention")
    for game in ("cls", "mutual", "max_mutual")
}
BASELINES = {"Att": AttentionReceived, "Grad-SAM": GradSAM}


def _canonical(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    return key if key.startswith("shapley-") or key in ("att", "grad-sam") else "shapley-" + key


def resolve_methods(names: Sequence[str]) -> List[str]:
    r"""
    Resolves method names given on the command line.

    Args:
        names (sequence of str): Paper names (``Shapley-Grad-Att-Max-Mutual``), short
                    forms (``grad-att-max-mutual``), ``Att``, ``Grad-SAM``, or ``all``.

    Returns:
        list[str]: Canonical method names, in the order given.
    """
    known = {_canonical(n): n for n in list(VARIANTS) + list(BASELINES)}
    resolved: List[str] = []
    for name in names:
        if name.lower() == "all":
            resolved += [n for n in list(VARIANTS) + list(BASELINES) if n not in resolved]
            continue
        key = _canonical(name)
        if key not in known:
            raise SystemExit(
                f"error: unknown method {name!r}; choose from: {', '.join(list(VARIANTS) + list(BASELINES))}"
            )
        if known[key] not in resolved:
            resolved.append(known[key])
    return resolved


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captum-attn-shapley",
        description="Explain a transformer classifier's prediction with attention-game Shapley values.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    explain = sub.add_parser("explain", help="explain the prediction for one text")
    explain.add_argument("text", help="the text to classify and explain")
    explain.add_argument(
        "--model", default=None,
        help="Hugging Face model id or local directory (default: the embedded tweet sentiment "
             "classifier, fine-tuned from all-MiniLM-L6-v2 on first use)")
    explain.add_argument(
        "--methods", nargs="+", default=list(VARIANTS),
        help="methods to show: the six Shapley variants by default; also Att, Grad-SAM, or 'all'")
    explain.add_argument("--target", default=None,
                         help="class to explain (index or label name; default: the predicted class)")
    explain.add_argument("--layers", type=int, nargs="+", default=None,
                         help="attention layers to average over (default: all)")
    explain.add_argument("--max-length", type=int, default=512, help="truncate the text to this many tokens")
    explain.add_argument("--html", type=pathlib.Path, default=None, help="also write the table as an HTML page")
    explain.add_argument("--json", type=pathlib.Path, default=None, help="also write the scores as JSON")
    return parser


def _target_index(target: Optional[str], id2label: Dict[int, str]) -> Optional[int]:
    if target is None:
        return None
    if target.lstrip("-").isdigit():
        return int(target)
    by_name = {str(v).lower(): int(k) for k, v in id2label.items()}
    if target.lower() not in by_name:
        raise SystemExit(f"error: unknown target {target!r}; the labels are {sorted(by_name)}")
    return by_name[target.lower()]


def explain(args: argparse.Namespace) -> int:
    from captum_attn_shapley.default_model import load_classifier

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    methods = resolve_methods(args.methods)
    if not args.text.strip():
        raise SystemExit("error: the text is empty")
    model, tokenizer, info = load_classifier(args.model)
    enc = tokenizer([args.text], return_tensors="pt", truncation=True, max_length=args.max_length)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    id2label = {int(k): str(v) for k, v in (model.config.id2label or {}).items()}
    target = _target_index(args.target, id2label)
    with torch.no_grad():
        probs = torch.softmax(model(ids, attention_mask=mask).logits, dim=1)[0]
    predicted = int(probs.argmax())
    explained = predicted if target is None else target
    if not 0 <= explained < probs.numel():
        raise SystemExit(f"error: target {explained} out of range: the model has {probs.numel()} classes")
    special = tokenizer.all_special_ids
    scores: Dict[str, List[float]] = {}
    for name in methods:
        method: AttentionAttribution
        if name in VARIANTS:
            game, weighting = VARIANTS[name]
            method = AttnGradShapley(model, game=game, weighting=weighting, special_token_ids=special)
        else:
            method = BASELINES[name](model, special_token_ids=special)
        attr = method.attribute(ids, target=explained, additional_forward_args=(mask,), layers=args.layers)
        scores[name] = attr[0].tolist()
    tokens = tokenizer.convert_ids_to_tokens(ids[0])
    players = text_player_mask(ids, mask, special)[0].tolist()
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    r"""
    Entry point of the ``captum-attn-shapley`` program.

    Args:
        argv (sequence of str, optional): Arguments (default: ``sys.argv[1:]``).

    Returns:
        int: The exit status.

    Examples::

        $ captum-attn-shapley explain "the flight was late and the crew was rude"
        $ captum-attn-shapley explain "great crew" --methods all --html explanation.html
    """
    args = build_parser().parse_args(argv)
    if args.command == "explain":
        return explain(args)
    return 2  # pragma: no cover - argparse enforces the sub-command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
