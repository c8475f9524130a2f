#!/usr/bin/env python3
"""The model checks of the public boundary: architectures the methods cannot explain, weights still on the
meta device, ``torch.compile`` wrappers, the vocabulary and length limit, and logits detached where
gradients are needed.

Used through :mod:`captum_attn_shapley._utils.validation`, which re-exports them.
"""

from typing import Any, Callable, List, Optional, Tuple

import torch
from torch.nn import Embedding, Module

from captum_attn_shapley._utils.forward import logits_from_output

#: ``config.model_type`` of architectures whose attention is windowed (Swin-style): each attention call
#: covers a window of patches, so no attention matrix spans all tokens for the games, Att or Grad-SAM.
WINDOWED_ATTENTION_TYPES = frozenset({"swin", "swinv2", "donut-swin", "maskformer-swin", "swin2sr", "vitdet"})


def model_name(model: Any) -> str:
    """The model's class name, for messages."""
    return type(model).__name__


def _configs(model: Module) -> List[Any]:
    configs: List[Any] = []
    for sub in model.modules():
        config = getattr(sub, "config", None)
        if config is not None and not any(config is c for c in configs):
            configs.append(config)
    return configs


def config_field(model: Optional[Module], name: str) -> Any:
    """A field of the model's (Hugging Face) config, or None."""
    return getattr(getattr(model, "config", None), name, None)


def is_compiled(model: Any) -> bool:
    """Whether ``model`` is a ``torch.compile`` wrapper (``OptimizedModule``) around a module."""
    return isinstance(model, Module) and isinstance(getattr(model, "_orig_mod", None), Module)


def unwrap_compiled(model: Any) -> Any:
    r"""
    The module a ``torch.compile``'d model wraps (``model._orig_mod``, same weights), else ``model``.

    The attention capture runs the eager module: its hooks and the fused engine's attention function
    are invisible inside a compiled graph.

    Args:
        model (Any): A module, a compiled module or any forward function.

    Returns:
        Any: ``model._orig_mod`` for a compiled module, else ``model`` unchanged.
    """
    return model._orig_mod if is_compiled(model) else model


def check_not_compiled(model: Module) -> None:
    """A forward function that calls a ``torch.compile``'d model (which cannot be unwrapped) gets an error."""
    if is_compiled(model):
        raise ValueError(
            f"forward_func calls a torch.compile'd {model_name(model._orig_mod)}: the attention capture cannot "
            "see inside a compiled graph. Pass the compiled model itself as forward_func (it is unwrapped to its "
            "`_orig_mod`), or call compiled._orig_mod in your forward function."
        )


def check_architecture(model: Module) -> None:
    r"""
    Raises for architectures the attention methods cannot explain, before any work: windowed (Swin-style)
    attention, detected by ``config.model_type`` (:data:`WINDOWED_ATTENTION_TYPES`) or by a vision
    config with a ``window_size``.

    Args:
        model (Module): The model.
    """
    for config in _configs(model):
        model_type = getattr(config, "model_type", None)
        vision = hasattr(config, "image_size") or hasattr(config, "num_channels")
        if model_type in WINDOWED_ATTENTION_TYPES or (vision and getattr(config, "window_size", None)):
            raise ValueError(
                f"Unsupported architecture: {model_name(model)} (model_type {model_type!r}) uses windowed "
                "(Swin-style) attention: each attention call covers a window of patches, so no attention "
                "matrix spans all tokens for the games, Att, Grad-SAM or T-TCAV to read. Use a Vision "
                "Transformer with global attention (ViT, DeiT, BEiT, DINOv2), or a perturbation method on "
                "the pixels such as captum.attr.ShapleyValueSampling or captum.attr.KernelShap."
            )


def check_weights_loaded(model: Optional[Module]) -> None:
    """Parameters still on the meta device (no weights) get an error that says how to load them."""
    if model is None:
        return
    meta = [name for name, p in model.named_parameters() if p.is_meta]
    if meta:
        raise ValueError(
            f"{model_name(model)} has {len(meta)} parameters on the meta device (e.g. {meta[0]!r}): they have a "
            "shape but no values. Load the weights first, e.g. AutoModelForSequenceClassification."
            "from_pretrained(name) without device_map='meta', or model.to_empty(device='cpu') followed by "
            "model.load_state_dict(state_dict)."
        )


def vocabulary_size(model: Optional[Module]) -> Optional[int]:
    """The number of token ids the model embeds: its input embedding table's rows, else ``config.vocab_size``."""
    if model is None:
        return None
    get_embeddings = getattr(model, "get_input_embeddings", None)
    if callable(get_embeddings):
        try:
            table = get_embeddings()
        except (NotImplementedError, AttributeError):
            table = None
        if isinstance(table, Embedding):
            return int(table.num_embeddings)
    size = config_field(model, "vocab_size")
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def max_text_length(model: Optional[Module]) -> Tuple[Optional[int], str]:
    r"""
    The longest token sequence the model accepts, and why.

    Learned absolute position embeddings hold ``num_embeddings`` positions; RoBERTa-family models
    (RoBERTa, XLM-R, CamemBERT, MPNet, ESM, ...) number their positions from ``padding_idx + 1``, so they
    accept ``max_position_embeddings - padding_idx - 1`` tokens. Otherwise ``config.max_position_embeddings``.

    Args:
        model (Module, optional): The model.

    Returns:
        tuple: The limit (None when unknown) and an explanation for the message ("" if none is needed).
    """
    if model is None:
        return None, ""
    for module in model.modules():
        table = getattr(module, "position_embeddings", None)
        if isinstance(table, Embedding):
            if table.padding_idx is None:
                return int(table.num_embeddings), ""
            limit = int(table.num_embeddings) - int(table.padding_idx) - 1
            why = (
                f" (its position ids start at padding_idx + 1 = {int(table.padding_idx) + 1}, so its "
                f"{table.num_embeddings} position embeddings hold {limit} tokens)"
            )
            return limit, why
    limit = config_field(model, "max_position_embeddings")
    return (limit, "") if isinstance(limit, int) and not isinstance(limit, bool) else (None, "")


class GradientCheckedForward:
    r"""
    A forward function that checks, where gradients are being recorded, that its logits are attached
    to the autograd graph (a detached output would otherwise fail deep inside ``torch.autograd.grad``).

    Args:
        forward_func (Callable): The user's forward function.
    """

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        self.forward_func = forward_func
        self.__wrapped__ = forward_func  # the model behind it stays findable (capture.find_model)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        output = self.forward_func(*args, **kwargs)
        if torch.is_grad_enabled() and not torch.is_inference_mode_enabled():
            logits = logits_from_output(output)
            if logits.is_floating_point() and not logits.requires_grad:
                name = getattr(self.forward_func, "__qualname__", None) or type(self.forward_func).__name__
                raise RuntimeError(
                    f"The forward function {name} returned logits that are not attached to the autograd graph "
                    "(requires_grad=False), but this method differentiates the target logit w.r.t. the "
                    f"attention. Return the logits without .detach(), torch.no_grad() or a numpy round trip in "
                    f"{name}, or use a weighting that needs no gradients (weighting='attention', or "
                    "AttentionReceived)."
                )
        return output
