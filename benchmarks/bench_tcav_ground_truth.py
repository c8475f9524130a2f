#!/usr/bin/env python3
"""TokenTCAV ground truth, full size: does T-TCAV find the concept each class depends on, and where?

- vision: the texture ViT; per class, the texture set and the colour set, random concepts for
  Captum's test, and the planted concept's heatmap against the object masks;
- text: the planted-word classifier; positive / negative VADER words as concepts, random
  filler-word concepts, and the heatmap against the planted word-pieces;
- tweets: the default tweet classifier with the same word concepts (significance only).

Writes ``report.md`` (both tables per task), ``report.json`` and heatmap figures into ``--out``::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_tcav_ground_truth.py \
        --out benchmarks/results/tcav_ground_truth
"""

import argparse
import json
import pathlib
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from captum_attn_shapley import TokenTCAV  # noqa: E402
from captum_attn_shapley.demos.tcav_ground_truth import (  # noqa: E402
    polarity_concepts,
    text_ground_truth,
    texture_concept_sets,
    tweet_ground_truth,
    vision_ground_truth,
)
from captum_attn_shapley.visualization import plot_patch_heatmap, plot_token_heatmap  # noqa: E402


def vision_figure(out: pathlib.Path, layer: int, seed: int) -> None:
    """One target image per class with its planted concept's heatmap."""
    from captum_attn_shapley.demos import load_texture_classifier, textures
    from captum_attn_shapley.demos.texture_vit import to_images, to_pixel_values

    model = load_texture_classifier()[0]
    sets = texture_concept_sets(n_concept=30, seed=seed)
    tcav = TokenTCAV(model, layers=[layer], repeats=10)
    data = textures.make_texture_dataset(5 * 4, seed=seed)
    names = textures.CLASS_NAMES
    fig, axes = plt.subplots(2, len(names), figsize=(3.3 * len(names), 6.2))
    for col, class_name in enumerate(names):
        i = int(torch.nonzero(data.labels == col)[0])
        planted = textures.PLANTED_CONCEPT[class_name]
        the_set = next(s for s in sets if any(c.name == planted for c in s))
        concept = next(c for c in the_set if c.name == planted)
        pixels = to_pixel_values(data.images[i : i + 1])
        maps = tcav.token_sensitivity(pixels, the_set, concept, layer, target=col)
        axes[0, col].imshow(to_images(pixels)[0].permute(1, 2, 0).numpy())
        axes[0, col].contour(data.masks[i].numpy(), levels=[0.5], colors="white", linewidths=1)
        axes[0, col].set_title(f"class {class_name}", fontsize=10)
        axes[0, col].axis("off")
        plot_patch_heatmap(
            to_images(pixels)[0], maps[0], title=f"D_t of '{planted}', layer {layer}", ax=axes[1, col]
        )
    fig.tight_layout()
    fig.savefig(out / "vision_heatmaps.png", dpi=110)
    plt.close(fig)


def text_figure(out: pathlib.Path, layer: int, seed: int) -> None:
    """Two planted sentences (one per class) with their planted concept's heatmap."""
    from captum_attn_shapley.demos import planted, planted_model

    model, tokenizer, _ = planted_model.load_planted_classifier()
    positive, negative, _ = polarity_concepts(tokenizer, n_words=40, seed=seed)
    tcav = TokenTCAV(model, layers=[layer], repeats=10)
    data = planted.make_planted_dataset(6, seed=seed + 1, split="test")
    fig, axes = plt.subplots(2, 1, figsize=(9, 3.4))
    for ax, label, concept in zip(axes, (1, 0), (positive, negative)):
        i = data.labels.index(label)
        enc = tokenizer([data.texts[i]], return_tensors="pt")
        maps = tcav.token_sensitivity(
            enc["input_ids"],
            [positive, negative],
            concept,
            layer,
            target=label,
            additional_forward_args=(enc["attention_mask"],),
        )
        tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
        plot_token_heatmap(
            tokens,
            maps[0],
            title=f"{concept.name} (class {data.label_names[label]}), "
            f"layer {layer}; planted: {', '.join(data.planted_words[i])}",
            ax=ax,
        )
    fig.tight_layout()
    fig.savefig(out / "text_heatmaps.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("benchmarks/results/tcav_ground_truth"))
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--targets", type=int, default=50, help="target examples per class")
    parser.add_argument("--concept-examples", type=int, default=40)
    parser.add_argument("--randoms", type=int, default=10)
    parser.add_argument("--vision-layers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--text-layers", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--tweet-layers", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument(
        "--tasks", nargs="+", default=["vision", "text", "tweets"], choices=["vision", "text", "tweets"]
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sections, summary = [], {}
    for task in args.tasks:
        start = time.perf_counter()
        if task == "vision":
            report = vision_ground_truth(
                layers=args.vision_layers,
                n_targets=args.targets,
                n_concept=args.concept_examples,
                n_random=args.randoms,
                repeats=args.repeats,
                seed=args.seed,
                show_progress=True,
            )
            vision_figure(args.out, args.vision_layers[0], args.seed)
        elif task == "tweets":
            report = tweet_ground_truth(
                layers=args.tweet_layers,
                n_targets=args.targets,
                n_words=args.concept_examples,
                n_random=args.randoms,
                repeats=args.repeats,
                seed=args.seed,
                show_progress=True,
            )
        else:
            report = text_ground_truth(
                layers=args.text_layers,
                n_targets=args.targets,
                n_words=args.concept_examples,
                n_random=args.randoms,
                repeats=args.repeats,
                seed=args.seed,
                show_progress=True,
            )
            text_figure(args.out, args.text_layers[0], args.seed)
        seconds = time.perf_counter() - start
        ok = sum(r["ok"] for r in report.rows)
        sections.append(
            f"## {task}\n\n{ok}/{len(report.rows)} rows as expected (alpha = {report.alpha}); "
            f"{seconds:.0f} s.\n\n{report.to_markdown()}"
        )
        summary[task] = {"rows": report.rows, "localisation": report.localisation, "seconds": seconds}
        print(sections[-1], flush=True)
    settings = (
        f"R = {args.repeats}, {args.targets} targets per class, {args.concept_examples} examples per "
        f"concept, {args.randoms} random concepts, seed {args.seed}"
    )
    (args.out / "report.md").write_text(f"# TokenTCAV ground truth\n\n{settings}.\n\n" + "\n".join(sections))
    (args.out / "report.json").write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
