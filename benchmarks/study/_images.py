"""The texture-image part of the study (test split only): patch AUPRC and time ÷ floor per method."""

import time
import warnings
from typing import Any, Dict, List, Tuple

import torch
from _methods import (
    GAMES,
    GRADIENT_WEIGHTINGS,
    HAS_SIGNED,
    NEW_WEIGHTINGS,
    AttnLRP,
    Floor,
    RandomScores,
    game_name,
)
from sklearn.metrics import average_precision_score

from captum_attn_shapley.attr import AttnGradShapley, GradientRollout, GradSAM
from captum_attn_shapley.demos.texture_vit import PATCH_SIZE, to_pixel_values
from captum_attn_shapley.demos.textures import make_texture_dataset, patch_mask_fraction
from captum_attn_shapley.demos.vision_model import load_texture_classifier

N_IMAGES, IMAGE_SEED, BATCH = 60, 1, 16


def image_methods(model: Any) -> List[Tuple[str, Any, Dict[str, Any]]]:
    methods: List[Tuple[str, Any, Dict[str, Any]]] = [("Floor", Floor(model, PATCH_SIZE), {})]
    for weighting in ("attention", "grad_attention") + NEW_WEIGHTINGS:
        for game in GAMES:
            methods.append(
                (game_name(game, weighting), AttnGradShapley(model, game=game, weighting=weighting), {})
            )
    if HAS_SIGNED:
        for weighting in GRADIENT_WEIGHTINGS:
            method = AttnGradShapley(model, game="cls", weighting=weighting, signed=True)
            methods.append((game_name("cls", weighting, True), method, {}))
    if AttnLRP is not None:
        methods.append(("AttnLRP", AttnLRP(model), {}))
    methods += [("Chefer-Rollout", GradientRollout(model), {}), ("Grad-SAM", GradSAM(model), {})]
    grid = lambda x: (x.shape[0], x.shape[-2] // PATCH_SIZE, x.shape[-1] // PATCH_SIZE)  # noqa: E731
    methods += [("Random", RandomScores(grid), {}), ("Floor (end)", Floor(model, PATCH_SIZE), {})]
    return methods


def run_images(progress: bool) -> Tuple[Dict[str, Dict[str, Dict[int, float]]], Dict[str, Any]]:
    """Per method, per image: patch AUPRC (object patches: at least half covered) and seconds."""
    model, _, info = load_texture_classifier(progress=progress)
    model.set_attn_implementation("sdpa")
    data = make_texture_dataset(N_IMAGES, seed=IMAGE_SEED)
    pixels = to_pixel_values(data.images)
    truth = patch_mask_fraction(data.masks, PATCH_SIZE).flatten(1) >= 0.5
    with torch.no_grad():
        targets = model(pixel_values=pixels).logits.argmax(1)
    per: Dict[str, Dict[str, Dict[int, float]]] = {}
    errors: Dict[str, str] = {}
    for name, method, kwargs in image_methods(model):
        auprc: Dict[int, float] = {}
        seconds: Dict[int, float] = {}
        try:
            for start in range(0, N_IMAGES, BATCH):
                part = slice(start, start + BATCH)
                began = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = method.attribute(pixels[part], target=targets[part], **kwargs)
                elapsed = time.perf_counter() - began
                scores = (out[0] if isinstance(out, tuple) else out).detach().double().flatten(1)
                for j in range(scores.shape[0]):
                    i = start + j
                    seconds[i] = elapsed / scores.shape[0]
                    if bool(truth[i].any()) and not bool(truth[i].all()):
                        auprc[i] = float(average_precision_score(truth[i].numpy(), scores[j].numpy()))
        except Exception as error:  # reported, never silently dropped
            errors[name] = f"{type(error).__name__}: {error}"
            continue
        per[name] = {"auprc": auprc, "seconds": seconds}
    accuracy = float((targets == data.labels).float().mean())
    return per, {"model": info.get("name_or_path"), "accuracy_on_these_images": accuracy, "errors": errors}
