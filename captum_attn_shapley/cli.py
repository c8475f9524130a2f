#!/usr/bin/env python3
"""Command-line program: ``captum-attn-shapley explain "some text"``."""
import argparse
import json
import pathlib
import sys
from typing import Dict, List, Optional, Sequence

import torch

from captum_attn_shapley.attention_attribution import AttentionAttribution
from captum_attn_shapley.attn_grad_shapley import PAPER_VARIANTS, AttnGradShapley
from captum_attn_shapley.baselines import AttentionReceived, GradSAM
from captum_attn_shapley.players import text_player_mask
from captum_attn_shapley.token_table import format_token_table, scores_as_lists, token_table_html

#: Every exact variant, by its paper name: (game, weighting).
VARIANTS = PAPER_VARIANTS
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

    compare = sub.add_parser(
        "compare", help="compare attribution methods (faithfulness, F1, speed) on a labelled dataset")
    compare.add_argument("--model", default=None,
                         help="Hugging Face model id or local directory (default: the embedded classifier)")
    compare.add_argument("--data", default="tweets",
                         help="'tweets' (embedded, offline; default), sst2, imdb, ag_news (need the hub and "
                              "`datasets`), another hub id, or a CSV with text,label columns")
    compare.add_argument("--view", default="all", choices=["short", "all", "long"],
                         help="short (<= 15 word-pieces), all, or the longest examples (default: all)")
    compare.add_argument("--n", type=int, default=100, help="examples, balanced over the classes (default 100)")
    compare.add_argument("--seed", type=int, default=0, help="seed of the example draw and the methods")
    compare.add_argument(
        "--methods", nargs="+", default=None,
        help="method names (see --list-methods; spaces and punctuation optional, e.g. grad-att-max-mutual "
             "kernelshap 'grad-att-max-mutual-permutation-100'); default: all but SHAP and Shapley-Input")
    compare.add_argument("--list-methods", action="store_true", help="print the known method names and exit")
    compare.add_argument("--batch-size", type=int, default=16, help="examples per attribute call (default 16)")
    compare.add_argument("--max-length", type=int, default=128, help="truncation length (default 128)")
    compare.add_argument("--bins", type=float, nargs="+", default=[0, 10, 20, 50],
                         help="bins of comprehensiveness/sufficiency in percent (default 0 10 20 50)")
    compare.add_argument("--f1-k", type=float, default=20, help="bin of the F1 (default 20)")
    compare.add_argument("--replacement", default="mask",
                         help="token replacing removed tokens: mask (default), pad, unk, or an id")
    compare.add_argument("--out", type=pathlib.Path, required=False, default=None,
                         help="output directory (CSV, JSON, markdown, PNG; resumable)")
    compare.add_argument("--no-resume", action="store_true", help="recompute methods already saved in --out")
    compare.add_argument("--no-plot", action="store_true", help="do not draw faithfulness.png")
    return parser


def _method_key(name: str) -> str:
    key = "".join(ch for ch in name.lower() if ch.isalnum())
    return key[len("shapley"):] if key.startswith("shapley") and key != "shapleyvaluesampling" else key


def resolve_compare_methods(names: Optional[Sequence[str]]) -> Optional[List[str]]:
    r"""
    Resolves the method names of ``compare`` (case, spaces and punctuation ignored).

    Args:
        names (sequence of str, optional): Names, or None for the default set.

    Returns:
        list[str] or None: Names of :func:`captum_attn_shapley.comparison.standard_method_names`.
    """
    from captum_attn_shapley.comparison import standard_method_names

    if names is None:
        return None
    known = standard_method_names()
    by_key = {_method_key(n): n for n in known}
    resolved: List[str] = []
    for name in names:
        if name.lower() == "all":
            resolved += [n for n in known if n not in resolved]
            continue
        if _method_key(name) not in by_key:
            raise SystemExit(f"error: unknown method {name!r}; choose from: {', '.join(known)}")
        if by_key[_method_key(name)] not in resolved:
            resolved.append(by_key[_method_key(name)])
    return resolved


def compare(args: argparse.Namespace) -> int:
    from captum_attn_shapley.comparison import run_comparison, standard_method_names, standard_methods
    from captum_attn_shapley.data import load_text_dataset, select_view
    from captum_attn_shapley.default_model import load_classifier

    from transformers.utils import logging as hf_logging

    if args.list_methods:
        print("\n".join(standard_method_names()))
        return 0
    if args.out is None:
        raise SystemExit("error: --out DIR is required (where the results are written)")
    hf_logging.disable_progress_bar()
    names = resolve_compare_methods(args.methods)
    model, tokenizer, info = load_classifier(args.model)
    data = select_view(load_text_dataset(args.data), tokenizer, args.view, args.n, seed=args.seed)
    replacement = int(args.replacement) if args.replacement.isdigit() else args.replacement
    methods = standard_methods(model, tokenizer, names, batch_size=args.batch_size, replacement=replacement)
    result = run_comparison(
        model, tokenizer, data.texts, data.labels, methods, out_dir=args.out, batch_size=args.batch_size,
        max_length=args.max_length, bins=args.bins, f1_k=args.f1_k, replacement=replacement, seed=args.seed,
        resume=not args.no_resume, plot=not args.no_plot,
    )
    print(f"model: {info.get('name_or_path')}; data: {args.data} ({args.view} view, {len(data)} examples)")
    print()
    print(result.to_markdown())
    written = "summary.md, per_example.csv, results.json" + ("" if args.no_plot else ", faithfulness.png")
    print(f"wrote {written} in {args.out}")
    return 0


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
        $ captum-attn-shapley compare --view short --n 50 --methods grad-att-max-mutual kernelshap --out results
    """
    args = build_parser().parse_args(argv)
    if args.command == "explain":
        return explain(args)
    if args.command == "compare":
        return compare(args)
    return 2  # pragma: no cover - argparse enforces the sub-command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
