#!/usr/bin/env python3
"""TokenTCAV versus Captum's TCAV, side by side in one run: CAV training and scoring throughput.

Same model (the embedded texture ViT), same layers, same concept images, same target images:

- CAV training: TokenTCAV trains R relative token CAVs per concept of the texture set
  (striped, dotted, zigzag) and layer; Captum trains one classifier per experimental set
  [concept, random_r] (r = 1..R) and layer on flattened activations, the usual way to get R
  CAVs per concept with Captum. Both start from the concept images (activations included)
  and produce 3 x R x layers CAVs; the ratio is of CAVs per second.
- Scoring: with all CAVs trained, the time of ``interpret`` on the target images for the
  same 3 x R CAVs per layer (TokenTCAV: one forward and one backward pass per batch for all
  layers; Captum: a LayerGradientXActivation pass per layer), in examples per second.

Prints a Markdown table; ``--out`` also writes it. Run on a quiet machine (timings are
noisy when other jobs share the cores)::

    .venv/bin/python benchmarks/bench_token_tcav.py --out benchmarks/results/token_tcav_speed.md
"""

import argparse
import pathlib
import tempfile
import time
import warnings

import torch
from captum.concept import TCAV
from torch import nn

from captum_attn_shapley import TokenTCAV, image_concept
from captum_attn_shapley.demos import load_texture_classifier, make_texture_dataset
from captum_attn_shapley.demos.texture_vit import to_pixel_values
from captum_attn_shapley.demos.textures import TEXTURE_CONCEPTS, concept_images


class Logits(nn.Module):
    """Captum's TCAV needs a module that returns logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10, help="CAVs per concept and layer (R)")
    parser.add_argument("--concept-images", type=int, default=30)
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--layers", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    vit, _, info = load_texture_classifier()
    model = Logits(vit).eval()
    concepts = [
        image_concept(i, name, to_pixel_values(concept_images(name, args.concept_images, seed=10 + i)))
        for i, name in enumerate(TEXTURE_CONCEPTS)
    ]
    randoms = [
        image_concept(
            100 + r, f"random{r}", to_pixel_values(concept_images("random", args.concept_images, seed=500 + r))
        )
        for r in range(args.repeats)
    ]
    data = make_texture_dataset(args.targets, seed=99)
    targets = to_pixel_values(data.images)
    labels = data.labels.tolist()

    ours = TokenTCAV(
        model,
        layers=args.layers,
        repeats=args.repeats,
        batch_size=args.batch_size,
        save_path=tempfile.mkdtemp(prefix="bench-ttcav-"),
    )
    layers = ours.layers
    n_cavs = len(TEXTURE_CONCEPTS) * args.repeats * len(layers)

    start = time.perf_counter()
    ours.compute_cavs([concepts])
    ours_train = time.perf_counter() - start

    captum_sets = [[c, r] for c in concepts for r in randoms]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = TCAV(model, layers=layers, save_path=tempfile.mkdtemp(prefix="bench-tcav-"))
        start = time.perf_counter()
        theirs.compute_cavs(captum_sets)
        captum_train = time.perf_counter() - start

    # warm-up, then scoring with every CAV already trained
    ours.interpret(targets[:8], [concepts], target=labels[:8])
    start = time.perf_counter()
    ours.interpret(targets, [concepts], target=labels)
    ours_score = time.perf_counter() - start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs.interpret(targets[:8], captum_sets, target=labels[:8])
        start = time.perf_counter()
        theirs.interpret(targets, captum_sets, target=labels)
        captum_score = time.perf_counter() - start

    n = targets.shape[0]
    rows = [
        ("CAV training (CAVs/s)", n_cavs / ours_train, n_cavs / captum_train),
        ("scoring (examples/s)", n / ours_score, n / captum_score),
    ]
    lines = [
        f"TokenTCAV vs Captum TCAV: texture ViT ({info.get('name_or_path')}), layers {layers}, "
        f"R = {args.repeats}, {args.concept_images} images per concept, {n} targets, "
        f"{torch.get_num_threads()} threads.",
        "",
        "| stage | TokenTCAV | Captum TCAV | ratio |",
        "|---|---|---|---|",
    ]
    for name, a, b in rows:
        lines.append(f"| {name} | {a:.1f} | {b:.1f} | {a / b:.2f}x |")
    lines.append("")
    lines.append(
        f"Seconds: TokenTCAV {ours_train:.1f} s training + {ours_score:.2f} s scoring; "
        f"Captum {captum_train:.1f} s training + {captum_score:.2f} s scoring "
        f"({n_cavs} CAVs each)."
    )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
