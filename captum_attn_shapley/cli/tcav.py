"""``captum-attn-shapley tcav``: TokenTCAV on an embedded task, concept sensitivity per class and layer."""

import argparse
import pathlib
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from captum_attn_shapley._utils.labels import model_label_names
from captum_attn_shapley.cli._common import target_index


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


def _tcav_classes(
    requested: Optional[Sequence[str]], default: Sequence[str], id2label: Dict[int, str]
) -> List[Tuple[str, int]]:
    """``(name, index)`` of the target classes (names or indices; case ignored)."""
    chosen: List[Tuple[str, int]] = []
    for name in requested or default:
        index = target_index(str(name), id2label, "class")
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

        model, _, info = load_texture_vit(args.model) if args.model else load_texture_classifier()
        id2label = model_label_names(model)
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
        id2label = model_label_names(model)
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
