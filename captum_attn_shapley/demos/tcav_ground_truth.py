#!/usr/bin/env python3
"""TokenTCAV on tasks whose answer is known: which concept each class depends on, and where.

- Vision: the texture images of :mod:`captum_attn_shapley.demos.textures` and the small ViT of
  :mod:`captum_attn_shapley.demos.vision_model`. Each class depends on one concept
  (:data:`~captum_attn_shapley.demos.textures.PLANTED_CONCEPT`), and the object mask says where.
- Text: the planted-word sentences of :mod:`captum_attn_shapley.demos.planted` and their classifier,
  with positive and negative VADER words as concepts. A sentence's label is the polarity of
  its planted words, and the planted-token mask says where they are.

Each check runs :meth:`TokenTCAV.interpret` per target class (with Captum's random-concept
test) and measures where the planted concept's heatmap puts its positive mass (fraction
inside the object / planted words, pointing game, and the chance level of both).
"""

import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from captum.concept import Classifier, Concept
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley.concept.builders import image_concept, text_concept
from captum_attn_shapley.concept.token_tcav import TokenTCAV
from captum_attn_shapley.demos.ground_truth_report import ALPHA, GroundTruthReport, annotate, localise


def texture_concept_sets(
    groups: Sequence[str] = ("textures", "colours"), n_concept: int = 30, seed: int = 0
) -> List[List[Concept]]:
    r"""
    The concept sets of the texture task, as image concepts for the texture ViT.

    Args:
        groups (sequence of str): ``"textures"`` (striped, dotted, zigzag) and/or
                    ``"colours"`` (red, blue, green, yellow). Default: both.
        n_concept (int): Images per concept. Default: 30
        seed (int): Seed of the images. Default: 0

    Returns:
        list[list[Concept]]: One set per group, ids numbered from 0 in order.
    """
    from captum_attn_shapley.demos import textures
    from captum_attn_shapley.demos.texture_vit import to_pixel_values

    known = {"textures": textures.TEXTURE_CONCEPTS, "colours": textures.COLOUR_CONCEPTS}
    unknown = [g for g in groups if g not in known]
    if unknown or not groups:
        raise ValueError(f"Unknown concept groups {unknown}: choose from {sorted(known)}.")
    concepts: Dict[str, Concept] = {}
    sets: List[List[Concept]] = []
    for group in groups:
        for name in known[group]:
            if name not in concepts:
                cid = len(concepts)
                pixels = to_pixel_values(textures.concept_images(name, n_concept, seed=seed + 101 * (cid + 1)))
                concepts[name] = image_concept(cid, name, pixels)
        sets.append([concepts[name] for name in known[group]])
    return sets


def vision_ground_truth(
    model: Optional[Module] = None,
    layers: Sequence[int] = (1, 2),
    n_targets: int = 40,
    n_concept: int = 30,
    n_random: int = 4,
    repeats: int = 20,
    seed: int = 0,
    classes: Optional[Sequence[str]] = None,
    groups: Sequence[str] = ("textures", "colours"),
    save_path: Optional[str] = None,
    alpha: float = ALPHA,
    show_progress: bool = False,
    classifier: Optional[Classifier] = None,
) -> GroundTruthReport:
    r"""
    TokenTCAV on the texture task: per class, the texture set (striped, dotted, zigzag) and
    the colour set (red, blue, green, yellow), with ``n_random`` random concepts; and the
    planted concept's heatmap against the object masks.

    Args:
        model (Module, optional): The texture ViT; default: the cached default
                    (:func:`~captum_attn_shapley.demos.vision_model.load_texture_classifier`).
        layers (sequence of int): Blocks probed. Default: (1, 2)
        n_targets (int): Target images per class (a held-out seed). Default: 40
        n_concept (int): Images per concept. Default: 30
        n_random (int): Random concepts (>= 3) for Captum's test. Default: 4
        repeats (int): R. Default: 20
        seed (int): Seed of the images and the draws. Default: 0
        classes (sequence of str, optional): Classes to check; default: all.
        groups (sequence of str): Concept sets: ``"textures"`` (striped, dotted, zigzag)
                    and/or ``"colours"`` (red, blue, green, yellow). Default: both.
        save_path (str, optional): CAV cache; default: a temporary directory.
        alpha (float): Significance level. Default: 0.01
        show_progress (bool): Progress bars. Default: False
        classifier (Classifier, optional): The CAV classifier; default TokenTCAV's.

    Returns:
        GroundTruthReport: The rows, localisation and scores.
    """
    from captum_attn_shapley.demos import textures
    from captum_attn_shapley.demos.texture_vit import to_pixel_values
    from captum_attn_shapley.demos.vision_model import load_texture_classifier

    if model is None:
        model = load_texture_classifier(progress=show_progress)[0]
    names = list(textures.CLASS_NAMES)
    chosen = list(classes) if classes is not None else names
    sets = texture_concept_sets(groups, n_concept, seed)
    concepts = {c.name: c for s in sets for c in s}
    randoms = [
        image_concept(
            1000 + i,
            f"random{i}",
            to_pixel_values(textures.concept_images("random", n_concept, seed=seed + 7919 * (i + 1))),
        )
        for i in range(n_random)
    ]
    data = textures.make_texture_dataset(n_targets * len(names), seed=seed + 12345)
    tcav = TokenTCAV(
        model,
        layers=list(layers),
        repeats=repeats,
        seed=seed,
        show_progress=show_progress,
        save_path=save_path or tempfile.mkdtemp(prefix="tcav-gt-"),
        classifier=classifier,
    )
    patch = int(getattr(model.config, "patch_size", 8))
    report = GroundTruthReport(alpha=alpha)
    for class_name in chosen:
        label = names.index(class_name)
        idx = torch.nonzero(data.labels == label).flatten()[:n_targets]
        pixels = to_pixel_values(data.images[idx])
        scores = tcav.interpret(pixels, sets, target=label, random_concepts=randoms)
        report.scores[class_name] = scores
        planted = textures.PLANTED_CONCEPT[class_name]
        annotate(report, class_name, scores, planted, alpha)
        the_set = next((s for s in sets if any(c.name == planted for c in s)), None)
        if the_set is None:
            continue
        region = textures.patch_mask_fraction(data.masks[idx], patch)
        for layer in tcav.layers:
            maps = tcav.token_sensitivity(pixels, the_set, concepts[planted], layer, target=label)
            localise(report, class_name, planted, layer, maps, region)
    return report


def polarity_concepts(
    tokenizer: Any, n_words: int = 40, n_random: int = 0, seed: int = 0
) -> Tuple[Concept, Concept, List[Concept]]:
    r"""
    The text concepts: positive and negative VADER words (the training split of
    :func:`~captum_attn_shapley.demos.planted_words.lexicon_split`) and random filler-word concepts.

    Args:
        tokenizer: The model's tokenizer.
        n_words (int): Words per concept. Default: 40
        n_random (int): Random concepts (ids 1000, 1001, ...). Default: 0
        seed (int): Seed of the draws. Default: 0

    Returns:
        tuple: ``(positive, negative, randoms)`` with ids 0 and 1.
    """
    from captum_attn_shapley.demos import planted_words

    rng = np.random.default_rng(seed)
    lexicon = planted_words.lexicon_split()
    positive = text_concept(
        0, "positive words", list(rng.choice(lexicon["train"][1], n_words, replace=False)), tokenizer
    )
    negative = text_concept(
        1, "negative words", list(rng.choice(lexicon["train"][0], n_words, replace=False)), tokenizer
    )
    pool = list(planted_words.FILLER_WORDS)
    randoms = [
        text_concept(1000 + i, f"random{i}", list(rng.choice(pool, n_words, replace=False)), tokenizer)
        for i in range(n_random)
    ]
    return positive, negative, randoms


def _polarity_check(
    report: GroundTruthReport,
    tcav: TokenTCAV,
    ids: Tensor,
    mask: Tensor,
    labels: Tensor,
    n_targets: int,
    concepts: Tuple[Concept, Concept, List[Concept]],
    planted_mask: Optional[Tensor] = None,
) -> None:
    """Per class (positive, negative): T-TCAV of the word concepts, and heatmaps against ``planted_mask``."""
    positive, negative, randoms = concepts
    for label, class_name, concept in ((1, "positive", positive), (0, "negative", negative)):
        idx = torch.nonzero(labels == label).flatten()[:n_targets]
        scores = tcav.interpret(
            ids[idx],
            [[positive, negative]],
            target=label,
            additional_forward_args=(mask[idx],),
            random_concepts=randoms,
        )
        report.scores[class_name] = scores
        annotate(report, class_name, scores, concept.name, report.alpha)
        if planted_mask is None:
            continue
        special = torch.isin(ids[idx], torch.tensor(tcav._special_ids, dtype=ids.dtype))
        words = mask[idx].bool() & ~special  # the cells of a text heatmap
        for layer in tcav.layers:
            maps = tcav.token_sensitivity(
                ids[idx], [positive, negative], concept, layer, target=label, additional_forward_args=(mask[idx],)
            )
            localise(report, class_name, concept.name, layer, maps, planted_mask[idx].float(), words)


def tweet_ground_truth(
    model: Optional[Module] = None,
    tokenizer: Any = None,
    layers: Sequence[int] = (2, 3, 4),
    n_targets: int = 50,
    n_words: int = 40,
    n_random: int = 8,
    repeats: int = 20,
    seed: int = 0,
    save_path: Optional[str] = None,
    alpha: float = ALPHA,
    show_progress: bool = False,
) -> GroundTruthReport:
    r"""
    TokenTCAV on real tweets: the default sentiment classifier, held-out positive and
    negative tweets as targets, positive and negative VADER words as the concepts (as in
    :func:`text_ground_truth`). The expected answer is the polarity of the class; where the
    sentiment sits in a tweet is unknown, so there is no localisation.

    Args:
        model, tokenizer: Default: the embedded tweet classifier
                    (:func:`~captum_attn_shapley.demos.default_model.load_default_classifier`).
        layers, n_targets, n_words, n_random, repeats, seed, save_path, alpha, show_progress:
                    As for :func:`text_ground_truth` (``n_targets`` tweets per class).

    Returns:
        GroundTruthReport: The significance rows and scores.
    """
    from captum_attn_shapley.demos.datasets import load_tweets
    from captum_attn_shapley.demos.default_model import load_default_classifier

    if model is None or tokenizer is None:
        model, tokenizer, _ = load_default_classifier(progress=show_progress)
    positive, negative, randoms = polarity_concepts(tokenizer, n_words, n_random, seed)
    tweets = load_tweets("test", n_per_class=n_targets, seed=seed)
    enc = tokenizer(tweets.texts, return_tensors="pt", padding=True, truncation=True, max_length=64)
    labels = torch.tensor(tweets.labels)
    tcav = TokenTCAV(
        model,
        layers=list(layers),
        repeats=repeats,
        seed=seed,
        show_progress=show_progress,
        save_path=save_path or tempfile.mkdtemp(prefix="tcav-gt-"),
    )
    report = GroundTruthReport(alpha=alpha)
    _polarity_check(
        report, tcav, enc["input_ids"], enc["attention_mask"], labels, n_targets, (positive, negative, randoms)
    )
    return report


def text_ground_truth(
    model: Optional[Module] = None,
    tokenizer: Any = None,
    layers: Sequence[int] = (2, 3, 4),
    n_targets: int = 40,
    n_words: int = 40,
    n_random: int = 8,
    repeats: int = 20,
    seed: int = 0,
    save_path: Optional[str] = None,
    alpha: float = ALPHA,
    show_progress: bool = False,
    classifier: Optional[Classifier] = None,
) -> GroundTruthReport:
    r"""
    TokenTCAV on the planted-word task: the concept set (positive words, negative words) of
    the VADER lexicon's training-split words; target sentences plant held-out words of one
    polarity; random concepts are random draws of the neutral filler words. The planted
    concept of the positive class is "positive words", of the negative class "negative
    words"; the heatmap should sit on the planted word-pieces.

    Args:
        model, tokenizer: The planted-word classifier; default: the cached one
                    (:func:`~captum_attn_shapley.demos.planted_model.load_planted_classifier`).
        layers (sequence of int): Blocks probed. Default: (2, 3, 4)
        n_targets (int): Sentences per class. Default: 40
        n_words (int): Words per concept. Default: 40
        n_random (int): Random concepts (>= 3). Default: 8
        repeats (int): R. Default: 20
        seed (int): Seed. Default: 0
        save_path (str, optional): CAV cache; default: a temporary directory.
        alpha (float): Significance level. Default: 0.01
        show_progress (bool): Progress bars. Default: False
        classifier (Classifier, optional): The CAV classifier; default TokenTCAV's.

    Returns:
        GroundTruthReport: The rows, localisation and scores.
    """
    from captum_attn_shapley.demos import planted as planted_task
    from captum_attn_shapley.demos.planted_model import load_planted_classifier

    if model is None or tokenizer is None:
        model, tokenizer, _ = load_planted_classifier(progress=show_progress)
    positive, negative, randoms = polarity_concepts(tokenizer, n_words, n_random, seed)
    data = planted_task.make_planted_dataset(4 * n_targets, seed=seed + 777, split="test")
    ids, mask, planted_mask = planted_task.planted_token_mask(tokenizer, data)
    labels = torch.tensor(data.labels)
    tcav = TokenTCAV(
        model,
        layers=list(layers),
        repeats=repeats,
        seed=seed,
        show_progress=show_progress,
        save_path=save_path or tempfile.mkdtemp(prefix="tcav-gt-"),
        classifier=classifier,
    )
    report = GroundTruthReport(alpha=alpha)
    _polarity_check(report, tcav, ids, mask, labels, n_targets, (positive, negative, randoms), planted_mask)
    return report
