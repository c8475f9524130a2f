#!/usr/bin/env python3
"""What the example builders share: class names, the displayed tokens, the model's prediction."""

from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import torch
from torch import Tensor

from captum_attn_shapley._utils.forward import class_probabilities, logits_from_output
from captum_attn_shapley._utils.labels import LabelNames, label_name, label_names_dict, model_label_names


def label_namer(label_names: Optional[LabelNames], forward_func: Any = None) -> Callable[[int], str]:
    """Class index -> name: from ``label_names``, else the ``config.id2label`` of ``forward_func``'s model."""
    if label_names is None and forward_func is not None:
        from captum_attn_shapley.capture.discovery import model_behind

        label_names = model_label_names(model_behind(forward_func))
    names = label_names_dict(label_names)
    return lambda index: label_name(index, names)


def display_mask(ids: Tensor, extra: Tuple[Any, ...]) -> Optional[Tensor]:
    """The attention mask among the additional forward arguments (first 0/1 tensor shaped like the ids)."""
    for arg in extra:
        if isinstance(arg, Tensor) and tuple(arg.shape) == tuple(ids.shape) and not arg.is_floating_point():
            if bool(((arg == 0) | (arg == 1)).all()):
                return arg
    return None


def predict(forward_func: Callable[..., Any], inputs: Tensor, extra: Tuple[Any, ...]) -> Tensor:
    """The class probabilities of the model on ``inputs``, ``(batch, num_classes)``, float64."""
    with torch.no_grad():
        logits = logits_from_output(forward_func(inputs, *extra))
    return class_probabilities(logits)


def map_dict(attributions: Mapping[str, Any]) -> Dict[str, Any]:
    """The method -> attributions mapping as a dict (at least one method)."""
    if not isinstance(attributions, Mapping) or not attributions:
        raise ValueError("`attributions` must map each method name to its attributions (at least one method).")
    return dict(attributions)
