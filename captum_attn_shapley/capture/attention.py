#!/usr/bin/env python3
"""Attention capture: every layer's attention probabilities (and their gradients) in one pass.

This module is the single place where the plugin touches a model's internals. Given a
Captum-style ``forward_func`` (the model itself or a function wrapping it) it

- finds the underlying :class:`torch.nn.Module` and its attention modules (Hugging Face
  BERT, RoBERTa, DistilBERT, ViT, DeiT and any model that declares its attention modules
  through ``_can_record_outputs``; any other model when the user names the modules),
- switches ``sdpa`` / flash attention to ``eager`` for the call (or raises),
- runs ONE forward pass over the whole padded batch with forward hooks that record the
  post-softmax attention tensors, and, when gradients are wanted, ONE
  ``torch.autograd.grad`` of the summed target logits with respect to those tensors,
- and leaves the model exactly as it was found (hooks removed, attention implementation
  restored, no ``.grad`` accumulated on parameters, ``requires_grad`` flags and
  training/eval mode untouched).
"""

import contextlib
import inspect
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union, cast

import torch
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley._utils.forward import forward_args_tuple, logits_from_output
from captum_attn_shapley._utils.targets import TargetLike, normalize_target
from captum_attn_shapley.capture.discovery import (
    ModuleSpec,
    OutputSelector,
    discover_attention_modules,
    find_model,
)
from captum_attn_shapley.capture.eager import (
    check_image_size,
    check_input_length,
    eager_attention,
    grad_enabled_parameters,
    pretrained_roots,
)


@dataclass
class CapturedAttention:
    r"""
    What one capture pass returns.

    Attributes:
        logits (Tensor): The model's output logits, shape ``(batch, num_classes)``,
                    detached.
        target (Tensor): The target class of each example, shape ``(batch,)``.
        attentions (list[Tensor]): For each selected layer, the post-softmax attention
                    probabilities, shape ``(batch, heads, tokens, tokens)``, detached.
        gradients (list[Tensor] or None): For each selected layer, the gradient of the
                    example's target logit w.r.t. that layer's attention probabilities
                    (same shapes), or ``None`` when gradients were not requested.
        model_inputs (dict): The keyword arguments the transformer received (e.g.
                    ``input_ids``, ``attention_mask``, ``pixel_values``), recovered by a
                    forward pre-hook, so that a wrapper's internals are visible.
        layer_indices (list[int]): The indices of the selected layers.
        states (list[Tensor] or None): When ``state_modules`` were given, each one's
                    output (the first tensor of a tuple output), e.g. a transformer
                    block's token states ``(batch, tokens, hidden)``, detached.
        state_gradients (list[Tensor] or None): The gradient of the summed target
                    logits w.r.t. each of those outputs, when requested.
    """

    logits: Tensor
    target: Tensor
    attentions: List[Tensor]
    gradients: Optional[List[Tensor]]
    model_inputs: Dict[str, Any] = field(default_factory=dict)
    layer_indices: List[int] = field(default_factory=list)
    states: Optional[List[Tensor]] = None
    state_gradients: Optional[List[Tensor]] = None


_MODEL_LOCKS: "weakref.WeakKeyDictionary[Module, threading.RLock]" = weakref.WeakKeyDictionary()
_MODEL_LOCKS_GUARD = threading.Lock()


def model_lock(model: Module) -> "threading.RLock":
    r"""
    The lock that serialises captures on one model.

    A capture attaches hooks to the model's modules, may switch its attention implementation and unfreezes
    frozen parameters for the duration of one forward and backward pass: concurrent captures on the same
    model from several threads would see each other's hooks and flags. Each capture holds this (re-entrant)
    lock, so concurrent ``attribute`` calls on one model give the serial results; different models run in
    parallel.

    Args:
        model (Module): The model.

    Returns:
        threading.RLock: One lock per model object (held weakly: it goes with the model).
    """
    with _MODEL_LOCKS_GUARD:
        lock = _MODEL_LOCKS.get(model)
        if lock is None:
            lock = _MODEL_LOCKS[model] = threading.RLock()
        return lock


def _first_tensor(output: Any) -> Optional[Tensor]:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and len(output) > 0 and isinstance(output[0], Tensor):
        return output[0]
    return getattr(output, "last_hidden_state", None)


def _select(output: Any, selector: OutputSelector) -> Optional[Tensor]:
    if callable(selector):
        return selector(output)
    if selector is None:
        return output if isinstance(output, Tensor) else None
    if isinstance(output, (tuple, list)) and len(output) > selector:
        return cast(Optional[Tensor], output[selector])
    if isinstance(output, Tensor) and selector == 0:
        return output
    return None


class AttentionCapture:
    r"""
    Records every layer's attention probabilities, and optionally their gradients w.r.t.
    the target logit, from one forward and one backward pass over a whole batch.

    Args:
        forward_func (Callable): The model, or a Captum-style function that wraps it and
                    returns logits (or a Hugging Face output with ``logits``).
        model (Module, optional): The model behind ``forward_func`` when it cannot be
                    found automatically (see :func:`find_model`).
        attention_modules (sequence of str or Module, optional): The attention modules,
                    for models that do not declare them (see
                    :func:`discover_attention_modules`).
        attention_output_index (int, None or Callable): Where user-named modules put
                    the attention probabilities in their output. Default: 1.
        switch_to_eager (bool): Switch ``sdpa``/flash attention to eager for each call
                    (restored afterwards). If False, such a model raises an error.

    Examples::

        >>> capture = AttentionCapture(model)
        >>> out = capture.capture(input_ids, additional_forward_args=(attention_mask,),
        ...                       with_gradients=True)
        >>> out.attentions[0].shape, out.gradients[0].shape   # (B, H, T, T) each
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        model: Optional[Module] = None,
        attention_modules: Optional[Sequence[ModuleSpec]] = None,
        attention_output_index: OutputSelector = 1,
        switch_to_eager: bool = True,
    ) -> None:
        self.forward_func = forward_func
        self.model = find_model(forward_func, model)
        self.modules = discover_attention_modules(self.model, attention_modules, attention_output_index)
        self.switch_to_eager = switch_to_eager

    @property
    def num_layers(self) -> int:
        """Number of attention layers found."""
        return len(self.modules)

    def resolve_layers(self, layers: Optional[Sequence[int]]) -> List[int]:
        r"""
        Validates a layer subset and returns sorted, non-negative layer indices.

        Args:
            layers (sequence of int, optional): Layer indices (negative ones count from
                        the end). Default: all layers.

        Returns:
            list[int]: The selected layers.
        """
        n = self.num_layers
        if layers is None:
            return list(range(n))
        if isinstance(layers, int):
            layers = [layers]
        if len(layers) == 0:
            raise ValueError("`layers` is empty: select at least one layer, or pass None for all.")
        resolved = []
        for layer in layers:
            if not isinstance(layer, int) or not -n <= layer < n:
                raise ValueError(
                    f"Layer {layer!r} does not exist: the model has {n} attention layers "
                    f"(valid indices 0..{n - 1}, or negative from the end)."
                )
            resolved.append(layer % n)
        return sorted(set(resolved))

    def capture(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike = None,
        additional_forward_args: Any = None,
        layers: Optional[Sequence[int]] = None,
        with_gradients: bool = True,
        state_modules: Optional[Sequence[Module]] = None,
        state_gradients: bool = False,
    ) -> CapturedAttention:
        r"""
        Runs the forward (and backward) pass and returns the captured tensors.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): The model inputs, batch first, passed
                        as ``forward_func(*inputs, *additional_forward_args)``.
            target (int, list, Tensor, optional): Captum-style target; default: the class
                        predicted for each example.
            additional_forward_args (Any, optional): Extra positional arguments, e.g. the
                        attention mask.
            layers (sequence of int, optional): Layers to return (default: all).
            with_gradients (bool): Also compute the gradients of the target logits w.r.t.
                        the selected layers' attention probabilities (one backward pass).
            state_modules (sequence of Module, optional): Modules whose outputs are also
                        recorded (e.g. transformer blocks, for their token states).
            state_gradients (bool): Also compute the gradients of the target logits
                        w.r.t. those outputs, in the same single backward pass.

        Returns:
            CapturedAttention: The captured tensors.
        """
        layer_ids = self.resolve_layers(layers)
        inputs_tuple = inputs if isinstance(inputs, tuple) else (inputs,)
        if len(inputs_tuple) == 0 or any(
            isinstance(t, Tensor) and (t.dim() == 0 or t.shape[0] == 0 or t.numel() == 0) for t in inputs_tuple
        ):
            raise ValueError("Empty input: `inputs` must hold at least one example with at least one token.")
        extra = forward_args_tuple(additional_forward_args)
        batch = inputs_tuple[0].shape[0]
        for arg in extra:
            if isinstance(arg, Tensor) and arg.dim() > 0 and arg.shape[0] != batch:
                raise ValueError(
                    f"additional_forward_args has a tensor with batch size {arg.shape[0]}, but inputs "
                    f"have batch size {batch}: they must match (one row per example)."
                )

        recorded: Dict[int, Tensor] = {}
        state_list = list(state_modules or [])
        recorded_states: Dict[int, Tensor] = {}
        need_graph = with_gradients or (state_gradients and bool(state_list))
        model_inputs: Dict[str, Any] = {}
        hooks = []

        def make_hook(idx: int, name: str, selector: OutputSelector) -> Callable[..., None]:
            def hook(module: Module, args: Any, output: Any) -> None:
                probs = _select(output, selector)
                if probs is None:
                    raise RuntimeError(
                        f"Attention module {name!r} returned no attention probabilities. It probably "
                        "uses sdpa/flash attention: load the model with attn_implementation='eager', "
                        "or, for a custom module, set attention_output_index to where its output holds "
                        "the probabilities."
                    )
                if probs.dim() == 3:  # (B, T, T): a single head
                    probs = probs.unsqueeze(1)
                if probs.dim() != 4 or probs.shape[-1] != probs.shape[-2]:
                    raise RuntimeError(
                        f"Attention module {name!r} produced a tensor of shape {tuple(probs.shape)}, "
                        "expected attention probabilities of shape (batch, heads, tokens, tokens). "
                        "Check attention_output_index."
                    )
                if idx in layer_set:
                    recorded[idx] = probs

            return hook

        layer_set = set(layer_ids)

        def make_state_hook(idx: int) -> Callable[..., None]:
            def hook(module: Module, args: Any, output: Any) -> None:
                state = _first_tensor(output)
                if state is None:
                    raise RuntimeError(
                        f"{type(module).__name__} returned {type(output).__name__}, not a tensor of token "
                        "states: name a module whose output is (batch, tokens, hidden), e.g. a transformer "
                        "block."
                    )
                recorded_states[idx] = state

            return hook

        def pre_hook(module: Module, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
            if model_inputs:
                return
            try:
                bound = inspect.signature(module.forward).bind_partial(*args, **kwargs)
                model_inputs.update(bound.arguments)
                extra_kwargs = model_inputs.pop("kwargs", None)
                model_inputs.update(extra_kwargs if isinstance(extra_kwargs, dict) else {})
            except (TypeError, ValueError):
                model_inputs.update(kwargs)
            check_input_length(module, model_inputs.get("input_ids"))
            check_image_size(module, model_inputs)

        with contextlib.ExitStack() as stack:
            stack.enter_context(model_lock(self.model))
            stack.enter_context(eager_attention(self.model, self.switch_to_eager))
            stack.enter_context(grad_enabled_parameters(self.model, need_graph))
            for idx, (name, module, selector) in enumerate(self.modules):
                hooks.append(module.register_forward_hook(make_hook(idx, name, selector)))
            for idx, module in enumerate(state_list):
                hooks.append(module.register_forward_hook(make_state_hook(idx)))
            # The inputs are read where the transformer itself receives them, inside any wrapper.
            transformer = next(iter(pretrained_roots(self.model)), self.model)
            hooks.append(transformer.register_forward_pre_hook(pre_hook, with_kwargs=True))
            try:
                grad_mode = torch.enable_grad() if need_graph else torch.no_grad()
                with grad_mode:
                    output = self.forward_func(*inputs_tuple, *extra)
                    logits = logits_from_output(output)
                    if logits.shape[0] != batch:
                        raise ValueError(
                            f"The forward function returned {logits.shape[0]} rows of logits for a batch "
                            f"of {batch} examples."
                        )
                    target_idx = normalize_target(target, logits)
                    missing = [i for i in layer_ids if i not in recorded]
                    if missing:
                        raise RuntimeError(
                            f"Attention layers {missing} did not run during the forward pass; check "
                            "attention_modules and that forward_func calls the model."
                        )
                    attentions = [recorded[i] for i in layer_ids]
                    if len(recorded_states) != len(state_list):
                        raise RuntimeError(
                            "Some of state_modules did not run during the forward pass; check that they "
                            "belong to the model that forward_func calls."
                        )
                    states = [recorded_states[i] for i in range(len(state_list))]
                    wrt = (attentions if with_gradients else []) + (states if state_gradients else [])
                    grads: List[Tensor] = []
                    if wrt:
                        if not all(t.requires_grad for t in wrt):
                            raise RuntimeError(
                                "The attention probabilities or token states are not part of an autograd "
                                "graph (is the call inside torch.inference_mode()?); gradients cannot be "
                                "computed."
                            )
                        selected = logits.gather(1, target_idx.unsqueeze(1)).sum()
                        grads = list(torch.autograd.grad(selected, wrt))
                    gradients: Optional[List[Tensor]] = grads[: len(attentions)] if with_gradients else None
                    state_grads: Optional[List[Tensor]] = (
                        grads[len(grads) - len(states) :] if state_gradients and state_list else None
                    )
            finally:
                for h in hooks:
                    h.remove()
        return CapturedAttention(
            logits=logits.detach(),
            target=target_idx,
            attentions=[a.detach() for a in attentions],
            gradients=gradients,
            model_inputs=model_inputs,
            layer_indices=layer_ids,
            states=[t.detach() for t in states] if state_list else None,
            state_gradients=state_grads,
        )
