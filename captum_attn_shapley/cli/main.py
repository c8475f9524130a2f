#!/usr/bin/env python3
"""Command-line program: ``captum-attn-shapley explain "some text"``."""

import argparse
import json
import pathlib
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from captum_attn_shapley.attr.att import AttentionReceived
from captum_attn_shapley.attr.attention_attribution import AttentionAttribution
from captum_attn_shapley.attr.attn_grad_shapley import PAPER_VARIANTS, AttnGradShapley
from captum_attn_shapley.attr.grad_sam import GradSAM
from captum_attn_shapley.capture.players import text_player_mask
from captum_attn_shapley.visualization.token_table import format_token_table, scores_as_lists, token_table_html

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
        "--model",
        default=None,
        help="Hugging Face model id or local directory (default: the embedded tweet sentiment "
        "classifier, fine-tuned from all-MiniLM-L6-v2 on first use)",
    )
    explain.add_argument(
        "--methods",
        nargs="+",
        default=list(VARIANTS),
        help="methods to show: the six Shapley variants by default; also Att, Grad-SAM, or 'all'",
    )
    explain.add_argument(
        "--target", default=None, help="class to explain (index or label name; default: the predicted class)"
    )
    explain.add_argument(
        "--layers", type=int, nargs="+", default=None, help="attention layers to average over (default: all)"
    )
    explain.add_argument("--max-length", type=int, default=512, help="truncate the text to this many tokens")
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

    compare = sub.add_parser(
        "compare", help="compare attribution methods (faithfulness, F1, speed) on a labelled dataset"
    )
    compare.add_argument(
        "--model", default=None, help="Hugging Face model id or local directory (default: the embedded classifier)"
    )
    compare.add_argument(
        "--data",
        default="tweets",
        help="'tweets' (embedded, offline; default), sst2, imdb, ag_news (need the hub and "
        "`datasets`), another hub id, or a CSV with text,label columns",
    )
    compare.add_argument(
        "--view",
        default="all",
        choices=["short", "all", "long"],
        help="short (<= 15 word-pieces), all, or the longest examples (default: all)",
    )
    compare.add_argument("--n", type=int, default=100, help="examples, balanced over the classes (default 100)")
    compare.add_argument("--seed", type=int, default=0, help="seed of the example draw and the methods")
    compare.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="method names (see --list-methods; spaces and punctuation optional, e.g. grad-att-max-mutual "
        "kernelshap 'grad-att-max-mutual-permutation-100'); default: all but SHAP and Shapley-Input",
    )
    compare.add_argument("--list-methods", action="store_true", help="print the known method names and exit")
    compare.add_argument("--batch-size", type=int, default=16, help="examples per attribute call (default 16)")
    compare.add_argument("--max-length", type=int, default=128, help="truncation length (default 128)")
    compare.add_argument(
        "--bins",
        type=float,
        nargs="+",
        default=[0, 10, 20, 50],
        help="bins of comprehensiveness/sufficiency in percent (default 0 10 20 50)",
    )
    compare.add_argument("--f1-k", type=float, default=20, help="bin of the F1 (default 20)")
    compare.add_argument(
        "--replacement", default="mask", help="token replacing removed tokens: mask (default), pad, unk, or an id"
    )
    compare.add_argument(
        "--out",
        type=pathlib.Path,
        required=False,
        default=None,
        help="output directory (CSV, JSON, markdown, PNG; resumable)",
    )
    compare.add_argument("--no-resume", action="store_true", help="recompute methods already saved in --out")
    compare.add_argument("--no-plot", action="store_true", help="do not draw faithfulness.png")
    compare.add_argument("--no-report", action="store_true", help="do not write report.html")
    compare.add_argument(
        "--report-examples",
        type=int,
        default=8,
        help="examples shown in report.html with every method side by side (default 8)",
    )

    tcav = sub.add_parser(
        "tcav", help="TokenTCAV on an embedded task: concept sensitivity per class and layer, with significance"
    )
    tcav.add_argument(
        "--task",
        default="textures",
        choices=["textures", "words"],
        help="textures: the embedded texture ViT with texture (and colour) concepts (default); "
        "words: the sentiment classifier on held-out tweets, positive/negative word concepts",
    )
    tcav.add_argument(
        "--model",
        default=None,
        help="words: a Hugging Face id or directory (default: the embedded tweet classifier); "
        "textures: a directory holding a saved texture ViT (default: the embedded one)",
    )
    tcav.add_argument(
        "--classes",
        nargs="+",
        default=None,
        help="target classes (default: striped dotted zigzag; words: negative positive)",
    )
    tcav.add_argument(
        "--concepts",
        nargs="+",
        default=["textures"],
        choices=["textures", "colours"],
        help="textures task: the concept sets (default: textures)",
    )
    tcav.add_argument(
        "--layers",
        type=int,
        nargs="+",
        default=None,
        help="transformer blocks probed (default: 1 2 for textures, 2 3 for words)",
    )
    tcav.add_argument("--repeats", type=int, default=10, help="CAVs per concept, R (default 10; the paper: 50)")
    tcav.add_argument("--n", type=int, default=20, help="target examples per class (default 20)")
    tcav.add_argument("--concept-examples", type=int, default=20, help="images or words per concept (default 20)")
    tcav.add_argument(
        "--randoms",
        type=int,
        default=0,
        help="random concepts for Captum's random-concept test (0: skip, the default; else >= 3)",
    )
    tcav.add_argument(
        "--correction",
        default="holm",
        choices=["none", "bonferroni", "holm", "bh", "by"],
        help="multiple-testing correction over concepts and layers (default holm)",
    )
    tcav.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    tcav.add_argument(
        "--heatmaps",
        type=int,
        default=3,
        help="target examples per class shown with heatmaps in the report (default 3)",
    )
    tcav.add_argument("--batch-size", type=int, default=32, help="target examples per pass (default 32)")
    tcav.add_argument("--seed", type=int, default=0, help="seed of the examples, concepts and CAVs (default 0)")
    tcav.add_argument(
        "--cav-dir",
        type=pathlib.Path,
        default=None,
        help="keep the CAVs here for later runs (default: a temporary directory)",
    )
    tcav.add_argument("--report", type=pathlib.Path, default=None, help="write the self-contained HTML report")

    insights = sub.add_parser(
        "insights",
        help="serve Captum Insights on an embedded model, with our methods next to Captum's "
        "(needs captum 0.8: pip install 'captum-attn-shapley[insights]')",
    )
    insights.add_argument(
        "--task",
        default="text",
        choices=["text", "image"],
        help="text: the tweet sentiment classifier (default); image: the texture ViT",
    )
    insights.add_argument("--n", type=int, default=4, help="examples (default 4: Insights shows four at a time)")
    insights.add_argument("--seed", type=int, default=0, help="which examples (default 0)")
    insights.add_argument("--port", type=int, default=None, help="port on localhost (default: a free one)")
    return parser


def insights(args: argparse.Namespace) -> int:
    from captum_attn_shapley.demos.insights_app import serve_embedded
    from captum_attn_shapley.visualization.insights import InsightsUnavailableError

    try:
        serve_embedded(args.task, n=args.n, seed=args.seed, port=args.port, blocking=True)
    except InsightsUnavailableError as err:
        raise SystemExit(f"error: {err}")
    return 0


def _method_key(name: str) -> str:
    key = "".join(ch for ch in name.lower() if ch.isalnum())
    return key[len("shapley") :] if key.startswith("shapley") and key != "shapleyvaluesampling" else key


def resolve_compare_methods(names: Optional[Sequence[str]]) -> Optional[List[str]]:
    r"""
    Resolves the method names of ``compare`` (case, spaces and punctuation ignored).

    Args:
        names (sequence of str, optional): Names, or None for the default set.

    Returns:
        list[str] or None: Names of :func:`captum_attn_shapley.evaluation.comparison.standard_method_names`.
    """
    from captum_attn_shapley.evaluation.comparison import standard_method_names

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
    from transformers.utils import logging as hf_logging

    from captum_attn_shapley.demos.datasets import load_text_dataset, select_view
    from captum_attn_shapley.demos.default_model import load_classifier
    from captum_attn_shapley.evaluation.comparison import run_comparison, standard_method_names, standard_methods

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
        model,
        tokenizer,
        data.texts,
        data.labels,
        methods,
        out_dir=args.out,
        batch_size=args.batch_size,
        max_length=args.max_length,
        bins=args.bins,
        f1_k=args.f1_k,
        replacement=replacement,
        seed=args.seed,
        resume=not args.no_resume,
        plot=not args.no_plot,
    )
    print(f"model: {info.get('name_or_path')}; data: {args.data} ({args.view} view, {len(data)} examples)")
    print()
    print(result.to_markdown())
    written = "summary.md, per_example.csv, results.json" + ("" if args.no_plot else ", faithfulness.png")
    if not args.no_report:
        from captum_attn_shapley.visualization.report import comparison_report, write_report

        page = comparison_report(
            result,
            data.texts,
            tokenizer,
            label_names=_label_names(model),
            max_examples=args.report_examples,
            title=f"Comparison of attribution methods: {args.data} ({args.view} view)",
            plot=not args.no_plot,
            labels=data.labels,
        )
        write_report(args.out / "report.html", page)
        written += ", report.html"
    print(f"wrote {written} in {args.out}")
    return 0


def _label_names(model: torch.nn.Module) -> Dict[int, str]:
    config = getattr(model, "config", None)
    return {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}


def _target_index(target: Optional[str], id2label: Dict[int, str], what: str = "target") -> Optional[int]:
    if target is None:
        return None
    if target.lstrip("-").isdigit():
        return int(target)
    by_name = {str(v).lower(): int(k) for k, v in id2label.items()}
    if target.lower() not in by_name:
        raise SystemExit(f"error: unknown {what} {target!r}; the labels are {sorted(by_name)}")
    return by_name[target.lower()]


def explain(args: argparse.Namespace) -> int:
    from transformers.utils import logging as hf_logging

    from captum_attn_shapley.demos.default_model import load_classifier

    hf_logging.disable_progress_bar()
    methods = resolve_methods(args.methods)
    if not args.text.strip():
        raise SystemExit("error: the text is empty")
    model, tokenizer, info = load_classifier(args.model)
    enc = tokenizer([args.text], return_tensors="pt", truncation=True, max_length=args.max_length)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    id2label = _label_names(model)
    target = _target_index(args.target, id2label)
    with torch.no_grad():
        probs = torch.softmax(model(ids, attention_mask=mask).logits, dim=1)[0]
    predicted = int(probs.argmax())
    explained = predicted if target is None else target
    if not 0 <= explained < probs.numel():
        raise SystemExit(f"error: target {explained} out of range: the model has {probs.numel()} classes")
    special = tokenizer.all_special_ids
    scores: Dict[str, List[float]] = {}
    attributions: Dict[str, torch.Tensor] = {}
    for name in methods:
        method: AttentionAttribution
        if name in VARIANTS:
            game, weighting = VARIANTS[name]
            method = AttnGradShapley(model, game=game, weighting=weighting, special_token_ids=special)
        else:
            method = BASELINES[name](model, special_token_ids=special)
        attr = method.attribute(ids, target=explained, additional_forward_args=(mask,), layers=args.layers)
        scores[name] = attr[0].tolist()
        attributions[name] = attr
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
    if args.report is not None:
        from captum_attn_shapley.evaluation.comparison import classifier_forward
        from captum_attn_shapley.visualization.report import attribution_report, text_examples, write_report

        label = _target_index(args.label, id2label, "label")
        if label is not None and not 0 <= label < probs.numel():
            raise SystemExit(f"error: label {label} out of range: the model has {probs.numel()} classes")
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
            "max length": args.max_length,
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


def _tcav_classes(
    requested: Optional[Sequence[str]], default: Sequence[str], id2label: Dict[int, str]
) -> List[Tuple[str, int]]:
    """``(name, index)`` of the target classes (names or indices; case ignored)."""
    chosen: List[Tuple[str, int]] = []
    for name in requested or default:
        index = _target_index(str(name), id2label, "class")
        if index is None or index not in id2label:
            raise SystemExit(f"error: class {name!r} out of range; the classes are {sorted(id2label.values())}")
        if (id2label[index], index) not in chosen:
            chosen.append((id2label[index], index))
    return chosen


def _tcav_run(
    args: argparse.Namespace, save_path: str
) -> Tuple[Dict[str, Any], Dict[str, Any], str, Dict[str, Any]]:
    """Runs TokenTCAV per target class: (scores by class, heatmap examples by class, model name, settings)."""
    from captum_attn_shapley.concept.token_tcav import TokenTCAV
    from captum_attn_shapley.visualization.report import tcav_heatmap_examples

    correction = None if args.correction == "none" else args.correction
    scores: Dict[str, Any] = {}
    examples: Dict[str, Any] = {}
    model: Any
    if args.task == "textures":
        from captum_attn_shapley.concept.builders import image_concept
        from captum_attn_shapley.demos import textures
        from captum_attn_shapley.demos.tcav_ground_truth import texture_concept_sets
        from captum_attn_shapley.demos.vision_model import (
            load_texture_classifier,
            load_texture_vit,
            to_pixel_values,
        )

        model, _, info = load_texture_vit(args.model) if args.model else load_texture_classifier()
        id2label = _label_names(model)
        classes = _tcav_classes(args.classes, textures.TEXTURE_CONCEPTS, id2label)
        sets = texture_concept_sets(args.concepts, args.concept_examples, args.seed)
        randoms = [
            image_concept(
                1000 + i,
                f"random{i}",
                to_pixel_values(
                    textures.concept_images("random", args.concept_examples, seed=args.seed + 7919 * (i + 1))
                ),
            )
            for i in range(args.randoms)
        ]
        data = textures.make_texture_dataset(args.n * len(textures.CLASS_NAMES), seed=args.seed + 12345)
        layers = args.layers or [1, 2]
        tcav = TokenTCAV(
            model,
            layers=layers,
            repeats=args.repeats,
            seed=args.seed,
            batch_size=args.batch_size,
            save_path=save_path,
            show_progress=True,
        )
        for name, label in classes:
            idx = torch.nonzero(data.labels == label).flatten()[: args.n]
            pixels = to_pixel_values(data.images[idx])
            scores[name] = tcav.interpret(
                pixels,
                sets,
                target=label,
                random_concepts=randoms or None,
                correction=correction,
                alpha=args.alpha,
            )
            shown = idx[: args.heatmaps]
            if len(shown):
                planted = textures.PLANTED_CONCEPT.get(name)
                the_set = next((s for s in sets if any(c.name == planted for c in s)), sets[0])
                examples[name] = tcav_heatmap_examples(
                    tcav,
                    to_pixel_values(data.images[shown]),
                    the_set,
                    target=label,
                    images=data.images[shown],
                    labels=[label] * len(shown),
                    label_names=id2label,
                )
        concept_names = [[c.name for c in s] for s in sets]
        what = f"{args.n} generated texture images per class"
    else:
        from captum_attn_shapley.demos.datasets import load_tweets
        from captum_attn_shapley.demos.default_model import load_classifier
        from captum_attn_shapley.demos.tcav_ground_truth import polarity_concepts

        model, tokenizer, info = load_classifier(args.model)
        id2label = _label_names(model)
        classes = _tcav_classes(args.classes, [id2label[i] for i in sorted(id2label)], id2label)
        positive, negative, randoms = polarity_concepts(tokenizer, args.concept_examples, args.randoms, args.seed)
        sets = [[positive, negative]]
        tweets = load_tweets("test", n_per_class=args.n, seed=args.seed)
        enc = tokenizer(tweets.texts, return_tensors="pt", padding=True, truncation=True, max_length=64)
        labels = torch.tensor(tweets.labels)
        layers = args.layers or [2, 3]
        tcav = TokenTCAV(
            model,
            layers=layers,
            repeats=args.repeats,
            seed=args.seed,
            batch_size=args.batch_size,
            save_path=save_path,
            show_progress=True,
            special_token_ids=tokenizer.all_special_ids,
        )
        for name, label in classes:
            idx = torch.nonzero(labels == label).flatten()[: args.n]
            ids, mask = enc["input_ids"][idx], enc["attention_mask"][idx]
            width = int(mask.sum(dim=1).max())
            ids, mask = ids[:, :width], mask[:, :width]
            scores[name] = tcav.interpret(
                ids,
                sets,
                target=label,
                additional_forward_args=(mask,),
                random_concepts=randoms or None,
                correction=correction,
                alpha=args.alpha,
            )
            h = min(args.heatmaps, len(idx))
            if h:
                examples[name] = tcav_heatmap_examples(
                    tcav,
                    ids[:h],
                    sets[0],
                    target=label,
                    additional_forward_args=(mask[:h],),
                    tokenizer=tokenizer,
                    labels=[label] * h,
                    label_names=id2label,
                )
        concept_names = [[c.name for c in s] for s in sets]
        what = f"{args.n} held-out tweets per class"
    settings = {
        "task": args.task,
        "target examples": what,
        "concept sets": [" / ".join(n) for n in concept_names],
        "examples per concept": args.concept_examples,
        "layers": list(tcav.layers),
        "repeats (R)": args.repeats,
        "random concepts": args.randoms or "none (t-test against 0.5 only)",
        "correction": args.correction,
        "alpha": args.alpha,
        "seed": args.seed,
    }
    return scores, examples, str(info.get("name_or_path")), settings


def tcav(args: argparse.Namespace) -> int:
    import tempfile

    from transformers.utils import logging as hf_logging

    from captum_attn_shapley.visualization.report import tcav_report, write_report

    hf_logging.disable_progress_bar()
    if args.repeats < 2:
        raise SystemExit("error: --repeats must be at least 2 (the t-test needs two CAVs per concept)")
    if args.randoms and args.randoms < 3:
        raise SystemExit("error: --randoms must be 0 or at least 3 (Captum's random-concept test)")
    if args.n < 1 or args.concept_examples < 1 or args.heatmaps < 0:
        raise SystemExit("error: --n and --concept-examples must be positive, --heatmaps not negative")
    with tempfile.TemporaryDirectory(prefix="tcav-cli-") as tmp:
        save_path = tmp
        if args.cav_dir is not None:
            from captum_attn_shapley._utils.fingerprint import settings_digest

            key = settings_digest(
                {
                    k: str(v)
                    for k, v in sorted(vars(args).items())
                    if k in ("task", "model", "concepts", "concept_examples", "seed", "randoms")
                }
            )
            save_path = str(args.cav_dir / f"{args.task}-{key}")
        scores, examples, model_name, settings = _tcav_run(args, save_path)
    print(f"model: {model_name}; task: {args.task}")
    for name, run in scores.items():
        print(f"\ntarget class: {name} ({run.num_examples} examples)")
        print(run.to_markdown(), end="")
    if args.report is not None:
        page = tcav_report(
            scores, examples, title=f"TokenTCAV: {args.task} task", model_name=model_name, settings=settings
        )
        write_report(args.report, page)
        print(f"\nwrote {args.report}")
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
        $ captum-attn-shapley explain "great crew" --report explanation.html
        $ captum-attn-shapley compare --view short --n 50 --methods grad-att-max-mutual kernelshap --out results
        $ captum-attn-shapley tcav --report tcav.html
        $ captum-attn-shapley tcav --task words --layers 3 --repeats 20 --report tcav-words.html
        $ captum-attn-shapley insights --task image --port 8080
    """
    args = build_parser().parse_args(argv)
    if args.command == "explain":
        return explain(args)
    if args.command == "compare":
        return compare(args)
    if args.command == "tcav":
        return tcav(args)
    if args.command == "insights":
        return insights(args)
    return 2  # pragma: no cover - argparse enforces the sub-command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
