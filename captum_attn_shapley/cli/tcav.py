"""``captum-attn-shapley tcav``: TokenTCAV on an embedded task, concept sensitivity per class and layer."""

import argparse
import pathlib
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from captum_attn_shapley._utils.labels import model_label_names
from captum_attn_shapley.cli._checks import check_model_source, check_output, loading
from captum_attn_shapley.cli._common import (
    UserError,
    int_at_least,
    non_negative_int,
    positive_int,
    probability,
    target_index,
    zero_or_at_least,
)


def _check_layers(model: Any, layers: Optional[List[int]]) -> None:
    """``--layers`` against the loaded model, before any concept is built or trained."""
    if layers is None:
        return
    from captum_attn_shapley.capture import AttentionCapture
    from captum_attn_shapley.concept._layers import resolve_layers

    try:
        resolve_layers(AttentionCapture(model), model, list(layers))
    except (ValueError, TypeError) as err:
        raise UserError(
            f"--layers {' '.join(map(str, layers))}: {err}", "Leave --layers out for the default layers."
        ) from None


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    r"""
    Adds the ``tcav`` command and its options.

    Args:
        sub: The program's sub-command parsers.
    """
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
    tcav.add_argument(
        "--repeats", type=int_at_least(2), default=10, help="CAVs per concept, R (default 10; the paper: 50)"
    )
    tcav.add_argument("--n", type=positive_int, default=20, help="target examples per class (default 20)")
    tcav.add_argument(
        "--concept-examples", type=positive_int, default=20, help="images or words per concept (default 20)"
    )
    tcav.add_argument(
        "--randoms",
        type=zero_or_at_least(3),
        default=0,
        help="random concepts for Captum's random-concept test (0: skip, the default; else >= 3)",
    )
    tcav.add_argument(
        "--correction",
        default="holm",
        choices=["none", "bonferroni", "holm", "bh", "by"],
        help="multiple-testing correction over concepts and layers (default holm)",
    )
    tcav.add_argument("--alpha", type=probability, default=0.05, help="significance level (default 0.05)")
    tcav.add_argument(
        "--heatmaps",
        type=non_negative_int,
        default=3,
        help="target examples per class shown with heatmaps in the report (default 3)",
    )
    tcav.add_argument("--batch-size", type=positive_int, default=32, help="target examples per pass (default 32)")
    tcav.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the examples, concepts and CAVs (default 0)"
    )
    tcav.add_argument(
        "--cav-dir",
        type=pathlib.Path,
        default=None,
        help="keep the CAVs here for later runs (default: a temporary directory)",
    )
    tcav.add_argument("--report", type=pathlib.Path, default=None, help="write the self-contained HTML report")


def _tcav_classes(
    requested: Optional[Sequence[str]], default: Sequence[str], id2label: Dict[int, str]
) -> List[Tuple[str, int]]:
    """``(name, index)`` of the target classes (names or indices; case ignored)."""
    chosen: List[Tuple[str, int]] = []
    for name in requested or default:
        index = target_index(str(name), id2label, "class", num_classes=len(id2label), option="classes")
        if index is None or index not in id2label:
            names = ", ".join(f"{k}: {v}" for k, v in sorted(id2label.items()))
            raise UserError(f"--classes: class {name!r} out of range.", f"Give the model's classes ({names}).")
        if (id2label[index], index) not in chosen:
            chosen.append((id2label[index], index))
    return chosen


def _tcav_run(
    args: argparse.Namespace, save_path: str
) -> Tuple[Dict[str, Any], Dict[str, Any], str, Dict[str, Any]]:
    """Runs TokenTCAV per target class: (scores by class, heatmap examples by class, model name, settings)."""
    from captum_attn_shapley.concept.token_tcav import TokenTCAV
    from captum_attn_shapley.visualization.html import tcav_heatmap_examples

    correction = None if args.correction == "none" else args.correction
    scores: Dict[str, Any] = {}
    examples: Dict[str, Any] = {}
    model: Any
    if args.task == "textures":
        from captum_attn_shapley.concept.builders import image_concept
        from captum_attn_shapley.demos import textures
        from captum_attn_shapley.demos.tcav_ground_truth import texture_concept_sets
        from captum_attn_shapley.demos.texture_vit import to_pixel_values
        from captum_attn_shapley.demos.vision_model import load_texture_classifier, load_texture_vit

        with loading(args.model):
            model, _, info = load_texture_vit(args.model) if args.model else load_texture_classifier()
        id2label = model_label_names(model)
        _check_layers(model, args.layers)
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

        with loading(args.model):
            model, tokenizer, info = load_classifier(args.model)
        id2label = model_label_names(model)
        _check_layers(model, args.layers)
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


def _check_word_task(args: argparse.Namespace) -> None:
    """The words task's counts against the embedded tweets and word lists it draws from."""
    from captum_attn_shapley.demos import planted_words
    from captum_attn_shapley.demos.datasets import load_tweets

    tweets = load_tweets("test")
    per_class = min(tweets.labels.count(label) for label in set(tweets.labels))
    if args.n > per_class:
        raise UserError(
            f"--n {args.n} is more than the {per_class} held-out tweets per class of the words task.",
            f"Give --n {per_class} or less.",
        )
    lexicon = planted_words.lexicon_split()["train"]
    words = min(len(v) for v in lexicon.values())
    if args.randoms:
        words = min(words, len(planted_words.FILLER_WORDS))
    if args.concept_examples > words:
        what = "words per concept (positive, negative" + (", random filler" if args.randoms else "") + ")"
        raise UserError(
            f"--concept-examples {args.concept_examples} is more than the {words} {what} the words task has.",
            f"Give --concept-examples {words} or less.",
        )


def run(args: argparse.Namespace) -> int:
    r"""
    Runs TokenTCAV for each target class: prints the scores, writes the optional report.

    Args:
        args (argparse.Namespace): The parsed options.

    Returns:
        int: The exit status.
    """
    import tempfile

    from transformers.utils import logging as hf_logging

    from captum_attn_shapley.visualization.html import tcav_report, write_report

    hf_logging.disable_progress_bar()
    # what needs no model, before one is loaded (or trained); argparse has checked the numbers
    check_output(args.report, "--report")
    check_output(args.cav_dir, "--cav-dir", directory=True)
    check_model_source(args.model)
    if args.task == "words":
        _check_word_task(args)
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
