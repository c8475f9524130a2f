#!/usr/bin/env python3
"""Our outputs in Captum's own visualisation helpers (``captum.attr.visualization``).

- :func:`text_records`: ``VisualizationDataRecord`` objects for ``visualize_text`` from any
  per-token scores aligned with ``input_ids`` (AttnGradShapley, Grad-SAM, Att, TokenTCAV's
  ``token_sensitivity`` on text).
- :func:`image_attr_maps`: ``(H, W, 1)`` arrays for ``visualize_image_attr`` from per-patch
  scores (the same methods on ViT/DeiT, TokenTCAV's patch maps).
"""

from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
from captum.attr import visualization as viz
from numpy.typing import NDArray
from torch import Tensor

from captum_attn_shapley._utils.labels import label_names_dict
from captum_attn_shapley.visualization.heatmaps import upsample_patch_map


def _name(index: int, label_names: Optional[Sequence[str]]) -> Union[int, str]:
    """The name of class ``index`` if ``label_names`` has one, else the index itself (Captum shows either)."""
    return label_names_dict(label_names).get(index, index)


def text_records(
    attributions: Tensor,
    input_ids: Tensor,
    tokenizer: Any,
    attention_mask: Optional[Tensor] = None,
    logits: Optional[Tensor] = None,
    target: Optional[Union[int, Sequence[int], Tensor]] = None,
    true_labels: Optional[Sequence[int]] = None,
    label_names: Optional[Sequence[str]] = None,
    delta: Optional[Tensor] = None,
    normalize: bool = True,
) -> List[viz.VisualizationDataRecord]:
    r"""
    Builds the records of Captum's ``visualize_text`` from per-token scores.

    Args:
        attributions (Tensor): ``(batch, tokens)`` scores aligned with ``input_ids``.
        input_ids (Tensor): ``(batch, tokens)``.
        tokenizer: The model's tokenizer (``convert_ids_to_tokens``).
        attention_mask (Tensor, optional): Padding (zeros) is left out of the records.
        logits (Tensor, optional): ``(batch, classes)``: gives the predicted class and its
                    probability (else NaN and -1).
        target (int, list or Tensor, optional): The explained class(es); default: the
                    predicted class.
        true_labels (sequence of int, optional): The true classes (else -1).
        label_names (sequence of str, optional): Class names to show instead of indices.
        delta (Tensor, optional): Per-example convergence delta (e.g. AttnGradShapley's
                    efficiency gap), shown as Captum's convergence score.
        normalize (bool): Divide each example's scores by their largest absolute value, so
                    the colours span the whole scale (the total ``attr_score`` is not
                    normalised). Default: True

    Returns:
        list[VisualizationDataRecord]: One record per example.

    Examples::

        >>> from captum.attr import visualization as viz
        >>> attributions = AttnGradShapley(model).attribute(ids, additional_forward_args=(mask,))
        >>> records = text_records(attributions, ids, tokenizer, mask, logits=model(ids, mask).logits,
        ...                        label_names=["negative", "positive"])
        >>> viz.visualize_text(records)
    """
    if attributions.dim() != 2 or attributions.shape != input_ids.shape:
        raise ValueError(
            f"attributions {tuple(attributions.shape)} must be (batch, tokens) and match input_ids "
            f"{tuple(input_ids.shape)}; for image models use image_attr_maps."
        )
    batch = input_ids.shape[0]
    mask = attention_mask.bool() if attention_mask is not None else torch.ones_like(input_ids, dtype=torch.bool)
    probs = torch.softmax(logits.detach().float(), dim=-1) if logits is not None else None
    predicted = probs.argmax(dim=-1) if probs is not None else None
    if target is None:
        targets = predicted.tolist() if predicted is not None else [-1] * batch
    elif isinstance(target, int):
        targets = [target] * batch
    else:
        targets = [int(t) for t in (target.tolist() if isinstance(target, Tensor) else target)]
    if len(targets) != batch:
        raise ValueError(f"target has {len(targets)} entries for {batch} examples.")
    records = []
    for b in range(batch):
        keep = mask[b]
        scores = attributions[b][keep].detach().float().cpu()
        total = float(scores.sum())
        if normalize and float(scores.abs().max()) > 0:
            scores = scores / scores.abs().max()
        pred = int(predicted[b]) if predicted is not None else -1
        records.append(
            viz.VisualizationDataRecord(
                scores,
                float(probs[b, pred]) if probs is not None else float("nan"),
                _name(pred, label_names),
                _name(int(true_labels[b]), label_names) if true_labels is not None else -1,
                _name(targets[b], label_names),
                total,
                tokenizer.convert_ids_to_tokens(input_ids[b][keep].tolist()),
                float(delta[b]) if delta is not None else 0.0,
            )
        )
    return records


def image_attr_maps(
    patch_scores: Tensor, image_size: Union[Tuple[int, int], Tensor], mode: str = "nearest"
) -> NDArray[Any]:
    r"""
    Per-patch scores as the ``(H, W, 1)`` arrays of Captum's ``visualize_image_attr``.

    Args:
        patch_scores (Tensor): ``(batch, rows, cols)`` or ``(rows, cols)``.
        image_size (tuple[int, int] or Tensor): ``(H, W)`` or the pixel batch.
        mode (str): ``"nearest"`` (each patch a block, default) or ``"bilinear"``.

    Returns:
        ndarray: ``(batch, H, W, 1)`` (or ``(H, W, 1)`` for one map), float32.

    Examples::

        >>> from captum.attr import visualization as viz
        >>> maps = image_attr_maps(AttnGradShapley(vit).attribute(pixel_values), pixel_values)
        >>> viz.visualize_image_attr(maps[0], to_images(pixel_values)[0].permute(1, 2, 0).numpy(),
        ...                          method="blended_heat_map", sign="all", show_colorbar=True)
    """
    return upsample_patch_map(patch_scores, image_size, mode=mode).unsqueeze(-1).numpy()
