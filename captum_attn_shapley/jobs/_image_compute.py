"""The computation of one shard of an image job: its images in batches (input order), every method's
score per patch, the predictions, as columns ready for Parquet."""

import pathlib
import types
import warnings
from typing import Any, Dict, List, Sequence, Tuple

import torch
from torch.nn import Module

from captum_attn_shapley.attr import AttentionAttribution, AttnGradShapley
from captum_attn_shapley.evaluation.registry import standard_methods
from captum_attn_shapley.jobs._images import FOLDER, load_pixels
from captum_attn_shapley.jobs.spec import JobSpec

Columns = Dict[str, List[Any]]
#: What the registry's builders read of a tokenizer: images have no special tokens.
_NO_TOKENS = types.SimpleNamespace(all_special_ids=[])


def image_methods(model: Module, names: Sequence[str]) -> List[Tuple[str, AttentionAttribution, Dict[str, Any]]]:
    r"""
    The registry's attention methods (:func:`~captum_attn_shapley.evaluation.standard_methods`), each
    built on the image classifier itself (called as ``model(pixel_values)``) with the registry's
    game, weighting and keyword arguments.

    Args:
        model (Module): The image classifier.
        names (sequence of str): Names of :data:`~captum_attn_shapley.jobs._images.IMAGE_METHODS`.

    Returns:
        list[tuple]: ``(name, attribution, attribute keyword arguments)`` per method.
    """
    built = []
    for spec in standard_methods(model, _NO_TOKENS, list(names)):
        text = spec.attribution
        if isinstance(text, AttnGradShapley):
            method: AttentionAttribution = AttnGradShapley(
                model, game=text.game, weighting=text.weighting, signed=text.signed
            )
        else:  # Att, Grad-SAM
            method = type(text)(model)
        built.append((spec.name, method, dict(spec.kwargs)))
    return built


def _shown_name(spec: JobSpec, path: str) -> str:
    """The image's path as the output shows it: relative to the input's folder when under it."""
    base = pathlib.Path(spec.input) if spec.input_format == FOLDER else pathlib.Path(spec.input).parent
    try:
        return str(pathlib.Path(path).relative_to(base))
    except ValueError:
        return path


def compute_image_shard(
    spec: JobSpec, model: Any, processor: Any, paths: Sequence[str], labels: Any, first: int
) -> Dict[str, Columns]:
    r"""
    Every method's patch scores on a shard's images (and, per image, the prediction), for the
    predicted class. The batches are ``spec.batch_size`` images in input order (all images have the
    processor's size, so nothing is sorted).

    Args:
        spec (JobSpec): The job.
        model (Module): The image classifier.
        processor: Its image processor.
        paths (sequence of str): The shard's image files.
        labels (sequence of int, optional): Their labels.
        first (int): The example id of ``paths[0]`` (its row in the input).

    Returns:
        dict: ``{"tokens": columns, "examples": columns}``: one row per patch (``example``,
        ``patch_index``, ``row``, ``col`` and one column per method) and one per image.
    """
    methods = image_methods(model, spec.methods)
    tokens: Columns = {}
    examples: Columns = {}
    for start in range(0, len(paths), spec.batch_size):
        batch = list(range(start, min(len(paths), start + spec.batch_size)))
        pixels = load_pixels(processor, [paths[i] for i in batch])
        with torch.no_grad():
            probs = model(pixel_values=pixels).logits.softmax(dim=-1)
        target = probs.argmax(dim=-1)
        scores: Dict[str, torch.Tensor] = {}
        for name, method, kwargs in methods:
            torch.manual_seed(spec.seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                attr = method.attribute(pixels, target=target, **kwargs)
            scores[name] = attr.detach().float()  # (batch, rows, cols)
        rows, cols = next(iter(scores.values())).shape[1:]
        patch = torch.arange(rows * cols)
        for row, position in enumerate(batch):
            example = first + position
            n = rows * cols
            cols_of_row: Columns = {
                "example": [example] * n,
                "patch_index": patch.tolist(),
                "row": (patch // cols).tolist(),
                "col": (patch % cols).tolist(),
            }
            for name, score in scores.items():
                cols_of_row[name] = score[row].flatten().tolist()
            for key, column in cols_of_row.items():
                tokens.setdefault(key, []).extend(column)
            info: Dict[str, Any] = {
                "example": example,
                "image": _shown_name(spec, paths[position]),
                "n_patches": n,
                "rows": int(rows),
                "cols": int(cols),
            }
            if labels is not None:
                info["label"] = int(labels[position])
            if spec.predictions:
                info["predicted"] = int(target[row])
                info["probability"] = float(probs[row, target[row]])
            for key, value in info.items():
                examples.setdefault(key, []).append(value)
    return {"tokens": tokens, "examples": examples}
