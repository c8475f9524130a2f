#!/usr/bin/env python3
"""Warnings where a silent setting changes the numbers: :class:`InputWarning` and the checks that raise it.

Each warning says what changes and how to fix it; a setting that is deliberate is silenced with
``warnings.filterwarnings("ignore", category=InputWarning)`` (see the usage guide, "Validation and
warnings").
"""

import os
import sys
import warnings
from typing import Any, Optional

import captum
import torch
from torch import Tensor
from torch.nn import Module
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Frames skipped when attributing a warning to the user's call: this package's and Captum's wrappers.
_INTERNAL_DIRS = (_PACKAGE_DIR + os.sep, os.path.dirname(os.path.abspath(captum.__file__)) + os.sep)

#: How far a probability row may be from summing to 1 and still count as probabilities.
PROBABILITY_TOLERANCE = 1e-4

#: Model dtypes whose range is narrower than float32's (their attributions are returned in float32).
HALF_DTYPES = (torch.float16, torch.bfloat16)


class InputWarning(UserWarning):
    r"""
    A setting that the call accepts but that changes the numbers silently: a padded batch without an
    attention mask, a model in training mode, probabilities where logits are expected, attributions
    below the range of a half-precision model's dtype.

    Silence one deliberately with ``warnings.filterwarnings("ignore", category=InputWarning)``.
    """


def _stacklevel() -> int:
    """The stack level of the first frame outside this package and Captum (the user's call)."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_INTERNAL_DIRS):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def warn_input(message: str) -> None:
    """Issues an :class:`InputWarning` attributed to the user's call."""
    warnings.warn(message, InputWarning, stacklevel=_stacklevel())


def _random_in_training(model: Module) -> bool:
    """Whether training mode changes the model's outputs: active dropout or batch normalisation modules, or a
    config with a dropout rate (functional attention dropout)."""
    for module in model.modules():
        if not module.training:
            continue
        if (isinstance(module, _DropoutNd) and module.p > 0) or isinstance(module, _BatchNorm):
            return True
        config = getattr(module, "config", None)
        settings = vars(config) if hasattr(config, "__dict__") else {}
        if any("dropout" in key and isinstance(v, float) and v > 0 for key, v in settings.items()):
            return True
    return False


def warn_training_mode(model: Optional[Module]) -> None:
    r"""
    Warns when the model is in training mode and that changes its outputs: dropout (or batch
    normalisation) makes every forward pass random.

    Args:
        model (Module, optional): The model (None: nothing to check).
    """
    if model is None or not model.training or not _random_in_training(model):
        return
    warn_input(
        f"{type(model).__name__} is in training mode: dropout (or batch normalisation) is active, so its "
        "logits, its attention and every attribution or metric computed from them change from call to call. "
        "Call model.eval() first (the methods leave the mode as they find it)."
    )


def warn_padding_without_mask(ids: Tensor, pad_token_id: Any, argument: str = "inputs") -> None:
    r"""
    Warns when token ids look padded (the pad id at the start or the end of an example) and no attention
    mask is given: the model then attends to the padding, which changes its logits and the attributions.

    Args:
        ids (Tensor): Token ids ``(batch, seq_len)``.
        pad_token_id (int, optional): The pad id of the tokenizer or the config (None: nothing to check).
        argument (str): The argument's name, for the message.
    """
    if isinstance(pad_token_id, bool) or not isinstance(pad_token_id, int) or ids.dim() != 2 or ids.numel() == 0:
        return
    padded = (ids[:, -1] == pad_token_id) | (ids[:, 0] == pad_token_id)
    count = int(padded.sum())
    if count == 0:
        return
    warn_input(
        f"`{argument}` look padded ({count} of {ids.shape[0]} examples start or end with the pad token id "
        f"{pad_token_id}) but no attention mask was given: the model attends to the padding tokens, which "
        "changes its logits and the attributions. Pass the tokenizer's mask, additional_forward_args="
        "(attention_mask,); if that id is a real token here, silence this InputWarning."
    )


def warn_if_probabilities(outputs: Tensor, where: str, fix: str) -> None:
    r"""
    Warns when a forward function's outputs look like probabilities (every row in ``[0, 1]`` and
    summing to 1) although ``where`` applies a softmax to them: the softmax of probabilities pulls them
    towards uniform and shrinks every difference computed from them.

    Args:
        outputs (Tensor): The forward function's outputs, ``(batch, num_classes)``.
        where (str): What applies the softmax, for the message (e.g. ``"comprehensiveness (apply_softmax=True)"``).
        fix (str): How to fix it, for the message.
    """
    if outputs.dim() != 2 or outputs.shape[1] < 2 or outputs.numel() == 0 or not outputs.is_floating_point():
        return
    values = outputs.detach().double()
    in_range = bool(((values >= 0) & (values <= 1)).all())
    if in_range and bool(((values.sum(dim=1) - 1).abs() <= PROBABILITY_TOLERANCE).all()):
        warn_input(
            f"The forward function seems to return probabilities (every row lies in [0, 1] and sums to 1), but "
            f"{where} applies a softmax to its outputs: the softmax of probabilities pulls them towards uniform "
            f"and shrinks every difference computed from them. {fix}"
        )


def model_dtype(model: Optional[Module]) -> Optional[torch.dtype]:
    """The dtype of the model's first floating-point parameter, or None."""
    if model is None:
        return None
    for parameter in model.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return None


def attribution_dtype(dtype: torch.dtype) -> torch.dtype:
    r"""
    The dtype attributions are returned in: float32 for half-precision (float16, bfloat16) models,
    whose range and resolution are too narrow for them, float64 for non-floating outputs, else ``dtype``.

    Args:
        dtype (torch.dtype): The dtype of the model's outputs.

    Returns:
        torch.dtype: The dtype of the attributions.
    """
    if not dtype.is_floating_point:
        return torch.float64
    return torch.float32 if dtype in HALF_DTYPES else dtype


def warn_below_precision(attributions: Any, model: Optional[Module]) -> None:
    r"""
    Warns when attributions of a half-precision model fall below its dtype's smallest normal number:
    they are exact in the float32 they are returned in, but cast to the model's dtype they would lose
    their precision or become 0.

    Args:
        attributions (Tensor or tuple[Tensor, ...]): The attributions (a tuple is read from its first element).
        model (Module, optional): The model.
    """
    dtype = model_dtype(model)
    first = attributions[0] if isinstance(attributions, tuple) else attributions
    if dtype not in HALF_DTYPES or not isinstance(first, Tensor) or not first.is_floating_point():
        return
    tiny = torch.finfo(dtype).tiny
    magnitude = first.detach().abs()
    count = int(((magnitude > 0) & (magnitude < tiny)).sum())
    if count:
        warn_input(
            f"{count} attributions are below the smallest normal {str(dtype).replace('torch.', '')} number "
            f"({tiny:.3g}), the dtype of {type(model).__name__}: they are computed and returned in "
            f"{str(first.dtype).replace('torch.', '')}, where they are exact, but cast to the model's dtype "
            "(e.g. .half()) they would lose their precision or become 0. Keep them in float32 (compare and "
            "plot them there); silence this InputWarning once you do."
        )
