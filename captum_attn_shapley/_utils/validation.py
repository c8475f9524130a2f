#!/usr/bin/env python3
"""Validation at the public boundary: what every public entry point checks before any work.

The models (architectures without global attention, weights still on the meta device, ``torch.compile``
wrappers), the inputs (token ids: dtype, rank, vocabulary, length; pixel values; the attention mask), the
options (``layers``, player masks, ``bins``, replacement token ids) and the forward function's logits
where gradients are needed. Each error names the argument, what was given, what is allowed and the fix;
settings that are accepted but change the numbers get an
:class:`~captum_attn_shapley._utils.input_warnings.InputWarning` instead.
"""

import math
import numbers
from typing import Any, List, Optional, Sequence, Tuple, cast

import numpy as np
import torch
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley._utils.forward import as_tuple, forward_args_tuple
from captum_attn_shapley._utils.input_warnings import warn_padding_without_mask, warn_training_mode
from captum_attn_shapley._utils.model_checks import (
    WINDOWED_ATTENTION_TYPES,
    GradientCheckedForward,
    check_architecture,
    check_not_compiled,
    check_weights_loaded,
    config_field,
    is_compiled,
    max_text_length,
    model_name,
    unwrap_compiled,
    vocabulary_size,
)

__all__ = [
    "DEFAULT_BINS",
    "WINDOWED_ATTENTION_TYPES",
    "GradientCheckedForward",
    "check_architecture",
    "check_attention_mask",
    "check_bins",
    "check_binary_mask",
    "check_classifier",
    "check_inputs",
    "check_layers",
    "check_not_compiled",
    "check_text_length",
    "check_token_id",
    "check_token_ids",
    "check_weights_loaded",
    "config_field",
    "is_compiled",
    "max_text_length",
    "unwrap_compiled",
    "vocabulary_size",
]

#: The paper's bins of the faithfulness metrics, in percent of the players.
DEFAULT_BINS: Tuple[float, ...] = (0, 10, 20, 50)


def check_text_length(model: Optional[Module], ids: Any, argument: str = "inputs") -> None:
    """Over-long token ids get a clear error instead of an index error deep in the model."""
    limit, why = max_text_length(model)
    if limit is None or not isinstance(ids, Tensor) or ids.dim() != 2 or ids.shape[1] <= limit:
        return
    raise ValueError(
        f"The input has {ids.shape[1]} tokens but {model_name(model)} accepts at most {limit}{why}: `{argument}` "
        f"is too long. Truncate it, e.g. tokenizer(texts, truncation=True, max_length={limit})."
    )


def _float_ids_message(ids: Tensor, argument: str) -> str:
    finite = ids[torch.isfinite(ids)]
    fractional = finite[finite != finite.round()]
    if fractional.numel():
        return (
            f"`{argument}` must hold integer token ids, but it holds non-integer values (e.g. "
            f"{float(fractional[0]):.4g}, dtype {ids.dtype}). Noise on integer token ids is meaningless (a "
            "perturbed id is another word or none), and that is what captum.attr.NoiseTunnel adds to its inputs. "
            "Smooth on the embeddings instead: NoiseTunnel over an embedding-level method, e.g. "
            "NoiseTunnel(IntegratedGradients(lambda e, m: model(inputs_embeds=e, attention_mask=m).logits)) on "
            "model.get_input_embeddings()(input_ids), or a layer method on the embedding layer "
            "(captum.attr.LayerIntegratedGradients(forward, model.get_input_embeddings())) without noise."
        )
    return (
        f"`{argument}` must hold integer token ids (torch.long), got dtype {ids.dtype}. Pass the ids the "
        "tokenizer returns (tokenizer(texts, return_tensors='pt')['input_ids']) or convert them: "
        f"{argument}.long()."
    )


def check_token_ids(ids: Any, model: Optional[Module] = None, argument: str = "inputs") -> Tensor:
    r"""
    Validates token ids: a tensor of integers, shape ``(batch, seq_len)``, within the model's vocabulary
    and its length limit (:func:`max_text_length`).

    Args:
        ids (Any): The given ids.
        model (Module, optional): The model (vocabulary and length; None skips those checks).
        argument (str): The argument's name, for the messages.

    Returns:
        Tensor: ``ids``, unchanged.
    """
    if not isinstance(ids, Tensor):
        raise TypeError(
            f"`{argument}` must be a tensor of token ids (batch, seq_len), got {type(ids).__name__}. Tokenize "
            "with return_tensors='pt', e.g. tokenizer(texts, return_tensors='pt', padding=True)['input_ids']."
        )
    if ids.is_floating_point() or ids.is_complex():
        raise ValueError(_float_ids_message(ids, argument))
    if ids.dtype == torch.bool:
        raise ValueError(f"`{argument}` must hold integer token ids, got a bool tensor: pass the ids, not a mask.")
    if ids.dim() != 2:
        fix = f" Add the batch dimension: {argument}.unsqueeze(0)." if ids.dim() == 1 else ""
        raise ValueError(
            f"`{argument}` must be a 2-D tensor of token ids (batch, seq_len), got shape {tuple(ids.shape)}.{fix}"
        )
    vocab = vocabulary_size(model)
    if vocab is not None and ids.numel():
        outside = ids[(ids < 0) | (ids >= vocab)]
        if outside.numel():
            raise ValueError(
                f"`{argument}` holds token id {int(outside[0])}, outside the vocabulary of {model_name(model)} "
                f"(ids 0..{vocab - 1}). Encode the texts with the model's own tokenizer."
            )
    check_text_length(model, ids, argument)
    return ids


def check_token_id(value: Any, model: Optional[Module], argument: str) -> int:
    r"""
    Validates one token id given as an option (a replacement token, a baseline): an int within the
    model's vocabulary.

    Args:
        value (Any): The given id.
        model (Module, optional): The model (None: only the sign is checked).
        argument (str): The argument's name, for the message.

    Returns:
        int: The id.
    """
    if isinstance(value, Tensor) and value.dim() == 0 and not value.is_floating_point():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`{argument}` must be a token id (an int), got {value!r}. Pass e.g. tokenizer.mask_token_id."
        )
    vocab = vocabulary_size(model)
    value = int(value)
    if value < 0 or (vocab is not None and value >= vocab):
        allowed = f"0..{vocab - 1}, the vocabulary of {model_name(model)}" if vocab is not None else "non-negative"
        raise ValueError(
            f"`{argument}`={int(value)} is not a token id: ids are {allowed}. Pass an id of the model's own "
            "tokenizer, e.g. tokenizer.mask_token_id or tokenizer.pad_token_id."
        )
    return int(value)


def check_binary_mask(mask: Any, argument: str) -> Tensor:
    r"""
    Validates a mask: bool, or numbers that are all 0 or 1 (never cast from other values).

    Args:
        mask (Tensor, array or sequence): The given mask.
        argument (str): The argument's name, for the message.

    Returns:
        Tensor: The mask as a bool tensor.
    """
    if not isinstance(mask, Tensor):
        try:
            mask = torch.as_tensor(np.asarray(mask))
        except (TypeError, ValueError) as err:
            raise TypeError(f"`{argument}` must be a bool tensor, got {type(mask).__name__}.") from err
    if mask.dtype == torch.bool:
        return cast(Tensor, mask)
    if mask.is_complex() or not bool(((mask == 0) | (mask == 1)).all()):
        other = mask[(mask != 0) & (mask != 1)]
        example = other[0].item() if other.numel() else "complex"
        raise ValueError(
            f"`{argument}` must be bool (or hold only 0 and 1), got dtype {mask.dtype} with the value "
            f"{example}. It is not cast: choose the threshold yourself, e.g. {argument} = scores > 0.5."
        )
    return cast(Tensor, mask.bool())


def check_layers(layers: Any, argument: str = "layers") -> Optional[List[int]]:
    r"""
    Validates a layer selection: None (all layers), an int, a sequence of ints, or a 1-D integer
    tensor / numpy array (converted). Bools, floats and tensor elements are refused; the range is
    checked against the model by the capture.

    Args:
        layers (Any): The given selection.
        argument (str): The argument's name, for the message.

    Returns:
        list[int] or None: The layer indices, or None for all layers.
    """
    if layers is None:
        return None
    allowed = "an int, a sequence of ints (e.g. [0, -1]) or None for all layers"
    if isinstance(layers, (Tensor, np.ndarray)):
        if isinstance(layers, Tensor):
            integer = layers.dtype != torch.bool and not layers.is_floating_point() and not layers.is_complex()
        else:
            integer = bool(np.issubdtype(layers.dtype, np.integer))
        if not integer or layers.ndim > 1:
            raise TypeError(
                f"`{argument}` must be {allowed}, got a {type(layers).__name__} of dtype {layers.dtype} and "
                f"shape {tuple(layers.shape)}. Pass {argument}=[int(i) for i in ...]."
            )
        return [int(i) for i in layers.reshape(-1).tolist()]
    if isinstance(layers, numbers.Integral) and not isinstance(layers, bool):
        return [int(layers)]
    if isinstance(layers, (str, bytes, bool)) or not isinstance(layers, Sequence):
        raise TypeError(f"`{argument}` must be {allowed}, got {layers!r}.")
    resolved = []
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, numbers.Integral):
            raise TypeError(
                f"`{argument}` must be {allowed}, got the element {layer!r} ({type(layer).__name__}). "
                f"Pass plain ints, e.g. {argument}=[int(i) for i in {argument}]."
            )
        resolved.append(int(layer))
    return resolved


def check_bins(bins: Sequence[float]) -> Tuple[float, ...]:
    r"""
    Validates bins given in percent of the players.

    Args:
        bins (sequence of float): Percentages in ``[0, 100]`` (a 1-D tensor or array is accepted).

    Returns:
        tuple[float, ...]: The distinct bins, ascending.
    """
    if isinstance(bins, (Tensor, np.ndarray)):
        bins = bins.reshape(-1).tolist()
    if isinstance(bins, (str, bytes)) or not hasattr(bins, "__iter__"):
        raise TypeError(f"`bins` must be a sequence of percentages, e.g. {DEFAULT_BINS}; got {bins!r}.")
    values = list(bins)
    if not values:
        raise ValueError(f"`bins` is empty: give at least one percentage, e.g. {DEFAULT_BINS}.")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise TypeError(f"`bins` must hold numbers (percentages), got {value!r}; e.g. bins={DEFAULT_BINS}.")
        if not 0 <= value <= 100:
            raise ValueError(
                f"bin {value} is outside 0-100: bins are percentages of the players, e.g. {DEFAULT_BINS}."
            )
    return tuple(sorted(set(float(v) for v in values)))


def _is_text_input(model: Optional[Module], first: Any) -> bool:
    if isinstance(first, Tensor) and first.is_floating_point() and first.dim() == 3:
        return False  # embeddings (inputs_embeds)
    if getattr(model, "main_input_name", None) == "input_ids":
        return True
    return isinstance(first, Tensor) and not first.is_floating_point() and first.dtype != torch.bool


def check_attention_mask(mask: Tensor, ids: Tensor, argument: str = "additional_forward_args[0]") -> None:
    r"""
    Validates an attention mask against its token ids: the same ``(batch, seq_len)`` shape, values 0 and 1.
    (Masks of 3 or 4 dimensions, which some models take, are passed on unchecked.)

    Args:
        mask (Tensor): The mask.
        ids (Tensor): The token ids.
        argument (str): The argument's name, for the message.
    """
    if mask.dim() > 2:
        return
    what = f"The attention mask ({argument})"
    fix = (
        "Pass the mask the tokenizer returned with these ids: tokenizer(texts, return_tensors='pt', padding=True)."
    )
    if mask.dim() < 2:
        raise ValueError(
            f"{what} has shape {tuple(mask.shape)} but the token ids have shape {tuple(ids.shape)}: it needs "
            f"one 0/1 entry per token, (batch, seq_len). {fix}"
        )
    if mask.shape[0] != ids.shape[0]:
        raise ValueError(
            f"{what} has batch size {mask.shape[0]}, but inputs have batch size {ids.shape[0]}: they must match "
            f"(one row per example). {fix}"
        )
    if mask.shape[1] != ids.shape[1]:
        raise ValueError(
            f"{what} has {mask.shape[1]} columns but the token ids have {ids.shape[1]} (shapes "
            f"{tuple(mask.shape)} and {tuple(ids.shape)}): it needs one 0/1 entry per token. {fix}"
        )
    check_binary_mask(mask, "attention mask")


def check_inputs(
    model: Optional[Module],
    inputs: Any,
    additional_forward_args: Any = None,
    pad_token_id: Any = None,
    warn_padding: bool = True,
) -> None:
    r"""
    The checks every public call makes before any work: the model has weights (and a warning in training
    mode), token ids (dtype, rank, vocabulary, length) or pixel values (floating point), and the attention
    mask (the forward function's second argument: the second input or the first of
    ``additional_forward_args``; without one, a warning when the ids look padded).

    Args:
        model (Module, optional): The model behind the forward function (None: only the inputs' form).
        inputs (Tensor or tuple): The inputs; the first is the token ids or the pixel values.
        additional_forward_args (Any, optional): The extra forward arguments.
        pad_token_id (int, optional): The pad id (default: the config's), for the padding warning.
        warn_padding (bool): Warn about padded ids without a mask (False where the caller builds the
                    mask from the pad id itself).
    """
    check_weights_loaded(model)
    warn_training_mode(model)
    inputs_tuple = as_tuple(inputs)
    first = inputs_tuple[0] if inputs_tuple else None
    if getattr(model, "main_input_name", None) == "pixel_values":
        if isinstance(first, Tensor) and not first.is_floating_point():
            raise ValueError(
                f"`inputs` must be floating-point pixel values (batch, channels, height, width), got dtype "
                f"{first.dtype}. Prepare the images with the model's image processor "
                "(processor(images, return_tensors='pt')['pixel_values'])."
            )
        return
    if not _is_text_input(model, first):
        return
    ids = check_token_ids(first, model)
    following = inputs_tuple[1:] + forward_args_tuple(additional_forward_args)  # the forward's next arguments
    mask = following[0] if following else None
    if isinstance(mask, Tensor):
        check_attention_mask(mask, ids)
    elif mask is None and warn_padding:
        pad = pad_token_id if pad_token_id is not None else config_field(model, "pad_token_id")
        warn_padding_without_mask(ids, pad)


def check_classifier(model: Any, labels: Sequence[Any]) -> Module:
    r"""
    Validates the evaluation runner's model and gold labels: a module with weights (a warning in training
    mode; a ``torch.compile``'d model is unwrapped) and integer labels within its classes.

    Args:
        model (Any): The given model.
        labels (sequence): The gold labels.

    Returns:
        Module: The model to run (``model._orig_mod`` for a compiled model).
    """
    if not isinstance(model, Module):
        raise TypeError(f"`model` must be a torch.nn.Module (a sequence classifier), got {type(model).__name__}.")
    module: Module = unwrap_compiled(model)
    check_weights_loaded(module)
    warn_training_mode(module)
    classes = config_field(module, "num_labels")
    for label in labels:
        label = label.item() if isinstance(label, (Tensor, np.generic)) and label.ndim == 0 else label
        if isinstance(label, bool) or not isinstance(label, numbers.Integral):
            raise TypeError(f"`labels` must hold class indices (ints), got {label!r}: e.g. labels=[0, 1, 1].")
        if isinstance(classes, int) and not 0 <= int(label) < classes:
            raise ValueError(
                f"`labels` holds {label}, but {model_name(module)} has {classes} classes (indices "
                f"0..{classes - 1}): map the dataset's labels to the model's (model.config.label2id)."
            )
    return module
