#!/usr/bin/env python3
"""The model's state around a capture: eager attention, gradients of frozen models, input checks.

``sdpa`` / flash attention is switched to ``eager`` for the call (or raises), a frozen model may
build an autograd graph, and the model is left exactly as it was found (attention implementation
restored, ``requires_grad`` flags untouched). Inputs the model cannot take (too long, images of
the wrong size) get an error that says what it expects.
"""

import contextlib
from typing import Any, Dict, Iterator, List

from torch import Tensor
from torch.nn import Module

from captum_attn_shapley._utils.validation import check_text_length

_EAGER = "eager"


def check_input_length(model: Module, input_ids: Any) -> None:
    """Over-long text inputs get a clear error instead of an index error deep in the model (the limit, e.g.
    RoBERTa's offset positions, is :func:`captum_attn_shapley._utils.validation.max_text_length`)."""
    check_text_length(model, input_ids, "input_ids")


def check_image_size(model: Module, inputs: Dict[str, Any]) -> None:
    """Images of the wrong size get an error that says which size the model expects."""
    pixels = inputs.get("pixel_values")
    config = getattr(model, "config", None)
    size = getattr(config, "image_size", None)
    if not isinstance(pixels, Tensor) or size is None or inputs.get("interpolate_pos_encoding"):
        return
    expected = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    channels = getattr(config, "num_channels", None)
    if pixels.dim() != 4:
        raise ValueError(
            f"pixel_values must be a batch of images (batch, channels, height, width); got shape "
            f"{tuple(pixels.shape)}. Add the batch dimension with pixel_values.unsqueeze(0)."
        )
    if tuple(pixels.shape[-2:]) != expected or (isinstance(channels, int) and pixels.shape[1] != channels):
        raise ValueError(
            f"Images of shape {tuple(pixels.shape[1:])} do not fit {type(model).__name__}, which expects "
            f"({channels}, {expected[0]}, {expected[1]}). Resize them, e.g. with the model's image "
            "processor (processor(images, return_tensors='pt')), or pass interpolate_pos_encoding=True."
        )


def _configs_with_attn_implementation(model: Module) -> List[Any]:
    configs: List[Any] = []
    for sub in model.modules():
        cfg = getattr(sub, "config", None)
        if cfg is not None and hasattr(cfg, "_attn_implementation"):
            if not any(cfg is c for c in configs):
                configs.append(cfg)
    return configs


def pretrained_roots(model: Module) -> List[Any]:
    """Outermost submodules that can switch their attention implementation (HF models)."""
    roots: List[Any] = []
    for sub in model.modules():
        if callable(getattr(sub, "set_attn_implementation", None)):
            if not any(any(s is sub for s in r.modules()) for r in roots):
                roots.append(sub)
    return roots


@contextlib.contextmanager
def eager_attention(model: Module, switch: bool = True) -> Iterator[None]:
    r"""
    Context manager that makes a Hugging Face model use eager attention for its body.

    ``sdpa`` and flash attention never materialise the attention probabilities, so
    ``output_attentions`` and forward hooks see nothing. Inside this context the model
    runs with ``attn_implementation="eager"``; the original implementation is restored on
    exit, also when an exception is raised.

    Args:
        model (Module): The model (any module; non-Hugging Face modules are left alone).
        switch (bool): If False, raise a clear error instead of switching.
    """
    configs = _configs_with_attn_implementation(model)
    previous = [(cfg, cfg._attn_implementation) for cfg in configs]
    needs = [cfg for cfg, impl in previous if impl not in (_EAGER, None)]
    if not needs:
        yield
        return
    impls = sorted({str(cfg._attn_implementation) for cfg in needs})
    if not switch:
        raise RuntimeError(
            f"{type(model).__name__} uses {'/'.join(impls)} attention, which does not expose attention "
            "probabilities. Load it with attn_implementation='eager' (e.g. "
            "AutoModelForSequenceClassification.from_pretrained(name, attn_implementation='eager')), call "
            "model.set_attn_implementation('eager'), or allow switching with switch_to_eager=True."
        )
    roots = pretrained_roots(model)
    if not roots:
        raise RuntimeError(
            f"{type(model).__name__} uses {'/'.join(impls)} attention and has no set_attn_implementation "
            "to switch it to eager. Load the model with attn_implementation='eager'."
        )
    root_previous = [(r, r.config._attn_implementation) for r in roots]
    try:
        for root in roots:
            root.set_attn_implementation(_EAGER)
        still = [cfg for cfg in configs if cfg._attn_implementation not in (_EAGER, None)]
        if still:
            raise RuntimeError(
                f"Could not switch {type(model).__name__} to eager attention; load it with "
                "attn_implementation='eager'."
            )
        yield
    finally:
        for root, impl in root_previous:
            root.set_attn_implementation(impl)
        for cfg, impl in previous:  # sub-configs the roots did not restore
            if cfg._attn_implementation != impl:
                cfg._attn_implementation_internal = impl


@contextlib.contextmanager
def grad_enabled_parameters(model: Module, needed: bool) -> Iterator[None]:
    """Temporarily lets a wholly or partly frozen model build an autograd graph; flags are restored on exit.

    Every frozen parameter is unfrozen for the call, not only in a wholly frozen model: with a frozen encoder
    and a trainable head (the usual fine-tuning set-up, or a PEFT model) no tensor upstream of the head would
    otherwise require a gradient, and the attention probabilities would have none. The capture differentiates
    with ``torch.autograd.grad`` w.r.t. its own tensors, so no parameter's ``.grad`` is touched.
    """
    frozen = [p for p in model.parameters() if not p.requires_grad] if needed else []
    try:
        for p in frozen:
            p.requires_grad_(True)
        yield
    finally:
        for p in frozen:
            p.requires_grad_(False)
