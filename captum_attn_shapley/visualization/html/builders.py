#!/usr/bin/env python3
"""Report examples from a model and Captum attributions: :func:`text_examples` and :func:`image_examples`."""

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from captum_attn_shapley._utils.arrays import ArrayLike
from captum_attn_shapley._utils.deprecation import renamed_keyword
from captum_attn_shapley._utils.formatting import percent_slug
from captum_attn_shapley._utils.forward import forward_args_tuple
from captum_attn_shapley._utils.labels import LabelNames
from captum_attn_shapley._utils.targets import TargetLike, normalize_target
from captum_attn_shapley.capture import model_behind, text_player_mask
from captum_attn_shapley.metrics import (
    DEFAULT_BINS,
    Replacement,
    faithfulness_curves,
    resolve_special_token_ids,
    token_scores,
)
from captum_attn_shapley.visualization.html._inputs import display_mask, label_namer, map_dict, predict
from captum_attn_shapley.visualization.html.example import ReportExample


@renamed_keyword("replacement", "baselines")
def text_examples(
    forward_func: Callable[..., Any],
    input_ids: Tensor,
    attributions: Mapping[str, Union[Tensor, Tuple[Tensor, ...]]],
    tokenizer: Any,
    additional_forward_args: Any = None,
    target: TargetLike = None,
    labels: Optional[Sequence[int]] = None,
    label_names: Optional[LabelNames] = None,
    texts: Optional[Sequence[str]] = None,
    metrics: bool = True,
    bins: Sequence[float] = DEFAULT_BINS,
    f1_k: float = 20,
    baselines: Replacement = "mask",
    special_token_ids: Optional[Sequence[int]] = None,
) -> List[ReportExample]:
    r"""
    Report examples of a text batch: tokens, every method's scores, the prediction and,
    with ``metrics``, each method's comprehensiveness, sufficiency and prediction with
    only the top ``f1_k`` percent of the tokens kept on each example
    (:func:`~captum_attn_shapley.metrics.faithfulness.faithfulness_curves`, for the explained class).

    Args:
        forward_func (Callable): The model or a Captum-style function returning logits,
                    called as ``forward_func(input_ids, *additional_forward_args)``.
        input_ids (Tensor): Token ids, ``(batch, seq)``.
        attributions (mapping): Method name -> its attributions of ``input_ids``:
                    ``(batch, seq)``, ``(batch, seq, hidden)`` (summed) or Captum's 1-tuple.
        tokenizer: The tokenizer (tokens, special tokens, the replacement token).
        additional_forward_args (Any, optional): E.g. ``(attention_mask,)``. Padding (the
                    zeros of an attention mask shaped like ``input_ids``) is not displayed.
        target (int, list, Tensor, optional): The explained class (Captum conventions);
                    default: the predicted class.
        labels (sequence of int, optional): Gold labels, shown as the true label.
        label_names (sequence or mapping, optional): Class index -> name; default: the
                    model's ``config.id2label``.
        texts (sequence of str, optional): The original texts, shown above the tokens.
        metrics (bool): Compute the faithfulness metrics (2 forward passes per bin and
                    method). Default: True
        bins (sequence of float): Bins of the metrics, in percent. Default: (0, 10, 20, 50)
        f1_k (float): The bin of the kept-tokens prediction (the ingredient of the F1).
                    Default: 20
        baselines (int or str): The token that removes tokens in the metrics.
                    Default: ``"mask"``
        special_token_ids (sequence of int, optional): Default: ``tokenizer.all_special_ids``.

    Returns:
        list[ReportExample]: One per example.

    Examples::

        >>> enc = tokenizer(texts, return_tensors="pt", padding=True)
        >>> attr = {"Shapley-Grad-Att-CLS": AttnGradShapley(model).attribute(
        ...     enc["input_ids"], additional_forward_args=(enc["attention_mask"],))}
        >>> examples = text_examples(model, enc["input_ids"], attr, tokenizer,
        ...                          additional_forward_args=(enc["attention_mask"],), labels=labels)
        >>> write_report("report.html", attribution_report(examples, model_name="my model"))
    """
    if not isinstance(input_ids, Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
        raise ValueError("`input_ids` must be an integer tensor of shape (batch, seq).")
    methods = map_dict(attributions)
    extra = forward_args_tuple(additional_forward_args)
    mask = display_mask(input_ids, extra)
    batch = int(input_ids.shape[0])
    if labels is not None and len(labels) != batch:
        raise ValueError(f"{len(labels)} labels for {batch} examples: give one label per example.")
    if texts is not None and len(texts) != batch:
        raise ValueError(f"{len(texts)} texts for {batch} examples: give one text per example.")
    name_of = label_namer(label_names, forward_func)
    probs = predict(forward_func, input_ids, extra)
    predicted = probs.argmax(dim=1)
    explained = normalize_target(target, probs)
    special = resolve_special_token_ids(special_token_ids, tokenizer, forward_func)
    players = text_player_mask(input_ids, mask, special, model=model_behind(forward_func))
    scores = {name: token_scores(attr, tuple(input_ids.shape)) for name, attr in methods.items()}
    per_method: Dict[str, Dict[str, List[Any]]] = {}
    if metrics:
        kept_bins = tuple(bins) + ((f1_k,) if float(f1_k) not in [float(b) for b in bins] else ())
        for name, values in scores.items():
            curves = faithfulness_curves(
                forward_func,
                input_ids,
                values,
                target=explained,
                additional_forward_args=additional_forward_args,
                bins=kept_bins,
                baselines=baselines,
                tokenizer=tokenizer,
                special_token_ids=special,
                player_mask=players,
            )
            per_method[name] = {
                "comprehensiveness": curves.comprehensiveness().tolist(),
                "sufficiency": curves.sufficiency().tolist(),
                f"prediction_at_{percent_slug(f1_k)}": [name_of(int(p)) for p in curves.predictions_at(f1_k)],
            }
    examples: List[ReportExample] = []
    for b in range(batch):
        keep = mask[b].bool() if mask is not None else torch.ones(input_ids.shape[1], dtype=torch.bool)
        ids = input_ids[b][keep]
        examples.append(
            ReportExample(
                attributions={name: values[b][keep].tolist() for name, values in scores.items()},
                tokens=[str(t) for t in tokenizer.convert_ids_to_tokens(ids.tolist())],
                players=players[b][keep].tolist(),
                text=None if texts is None else str(texts[b]),
                title=f"Example {b}",
                predicted=name_of(int(predicted[b])),
                probability=float(probs[b, predicted[b]]),
                true_label=None if labels is None else name_of(int(labels[b])),
                explained=name_of(int(explained[b])),
                metrics={name: {key: values[b] for key, values in m.items()} for name, m in per_method.items()},
            )
        )
    return examples


def image_examples(
    forward_func: Callable[..., Any],
    pixel_values: Tensor,
    attributions: Mapping[str, ArrayLike],
    images: Optional[Tensor] = None,
    additional_forward_args: Any = None,
    target: TargetLike = None,
    labels: Optional[Sequence[int]] = None,
    label_names: Optional[LabelNames] = None,
) -> List[ReportExample]:
    r"""
    Report examples of an image batch: the image, every method's per-patch map and the
    prediction. (The faithfulness metrics of :mod:`captum_attn_shapley.metrics.faithfulness`
    replace tokens by an id, so they are not computed for images.)

    Args:
        forward_func (Callable): The model or a function returning logits, called as
                    ``forward_func(pixel_values, *additional_forward_args)``.
        pixel_values (Tensor): The model inputs, ``(batch, 3, H, W)``.
        attributions (mapping): Method name -> per-patch scores ``(batch, rows, cols)``
                    (as :class:`~captum_attn_shapley.AttnGradShapley` returns for images).
        images (Tensor, optional): The images to display, ``(batch, 3, H, W)`` in [0, 1]
                    (the inputs before the model's normalisation). Default: ``pixel_values``,
                    which must then be in [0, 1].
        additional_forward_args (Any, optional): Passed to the model.
        target (int, list, Tensor, optional): The explained class; default: predicted.
        labels (sequence of int, optional): Gold labels.
        label_names (sequence or mapping, optional): Class index -> name; default: the
                    model's ``config.id2label``.

    Returns:
        list[ReportExample]: One per image.

    Examples::

        >>> maps = {"Shapley-Grad-Att-CLS": AttnGradShapley(vit).attribute(pixel_values)}
        >>> examples = image_examples(vit, pixel_values, maps, images=to_images(pixel_values))
        >>> write_report("vit.html", attribution_report(examples, model_name="texture ViT"))
    """
    methods = map_dict(attributions)
    extra = forward_args_tuple(additional_forward_args)
    display = pixel_values if images is None else images
    batch = int(pixel_values.shape[0])
    if int(display.shape[0]) != batch:
        raise ValueError(f"{int(display.shape[0])} images for {batch} inputs: give one display image per input.")
    if labels is not None and len(labels) != batch:
        raise ValueError(f"{len(labels)} labels for {batch} examples: give one label per example.")
    name_of = label_namer(label_names, forward_func)
    probs = predict(forward_func, pixel_values, extra)
    predicted = probs.argmax(dim=1)
    explained = normalize_target(target, probs)
    maps: Dict[str, Tensor] = {}
    for name, values in methods.items():
        tensor = torch.as_tensor(values.detach().cpu() if isinstance(values, Tensor) else np.asarray(values))
        if tensor.dim() != 3 or int(tensor.shape[0]) != batch:
            raise ValueError(
                f"{name}: expected per-patch scores of shape (batch, rows, cols), got {tuple(tensor.shape)}."
            )
        maps[name] = tensor.float()
    return [
        ReportExample(
            attributions={name: m[b] for name, m in maps.items()},
            image=display[b].detach().cpu(),
            title=f"Example {b}",
            predicted=name_of(int(predicted[b])),
            probability=float(probs[b, predicted[b]]),
            true_label=None if labels is None else name_of(int(labels[b])),
            explained=name_of(int(explained[b])),
        )
        for b in range(batch)
    ]
