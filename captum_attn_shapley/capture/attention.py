#!/usr/bin/env python3
"""Attention capture: what every method needs of a model's attention, from one forward and one backward pass.

This module is the single entry to a model's internals. Given a Captum-style ``forward_func`` (the model
itself or a function wrapping it) :class:`AttentionCapture`

- finds the underlying :class:`torch.nn.Module` and its attention modules (:mod:`.discovery`),
- runs ONE forward pass over the whole padded batch and, when gradients are wanted, ONE
  ``torch.autograd.grad`` of the summed target logits,
- with one of two engines: ``"fused"`` (:mod:`.fused`: Hugging Face models on ``sdpa`` keep their fast
  kernel; the probabilities and their gradients are rebuilt afterwards, a block of query rows at a time,
  and no step holds every layer's attention) or ``"hooks"`` (:mod:`.hooks`: forward hooks on modules that
  return their probabilities; ``sdpa``/flash switched to eager for the call),
- accumulates each layer straight into the reduction the method asked for (:mod:`.reductions`),
- and leaves the model exactly as it was found (hooks removed, attention implementation restored, no
  ``.grad`` accumulated on parameters, ``requires_grad`` flags and training/eval mode untouched).

Captures are per call: a fused capture's state lives in a context variable, so concurrent calls from
several threads on one model do not see each other; a hook capture, which switches the model's attention
implementation, holds the model's lock (:func:`model_lock`).
"""

import dataclasses
import weakref
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

from torch import Tensor
from torch.nn import Module

from captum_attn_shapley._utils.checks import check_choice
from captum_attn_shapley._utils.forward import forward_args_tuple
from captum_attn_shapley._utils.targets import TargetLike
from captum_attn_shapley.capture import fused
from captum_attn_shapley.capture.captured import CapturedAttention
from captum_attn_shapley.capture.discovery import (
    ModuleSpec,
    OutputSelector,
    attention_calls,
    discover_attention_modules,
    find_model,
)
from captum_attn_shapley.capture.one_pass import CapturePass
from captum_attn_shapley.capture.players import ClassificationPosition, check_classification_position
from captum_attn_shapley.capture.reductions import InfluenceRequest

#: Accepted values of the ``engine`` option.
ENGINES = ("auto", "fused", "hooks")

#: Models whose attention turned out not to go through the registry (the fused engine saw no call).
_NOT_FUSED: "weakref.WeakSet[Module]" = weakref.WeakSet()


class AttentionCapture:
    r"""
    Captures what the methods need of every layer's attention probabilities (and their gradients
    w.r.t. the target logit) from one forward and one backward pass over a whole batch.

    Args:
        forward_func (Callable): The model, or a Captum-style function that wraps it and
                    returns logits (or a Hugging Face output with ``logits``).
        model (Module, optional): The model behind ``forward_func`` when it cannot be
                    found automatically (see :func:`find_model`).
        attention_modules (sequence of str or Module, optional): The attention modules,
                    for models that do not declare them (see
                    :func:`discover_attention_modules`); captured by the hook engine.
        attention_output_index (int, None or Callable): Where user-named modules put
                    the attention probabilities in their output. Default: 1.
        switch_to_eager (bool): For the hook engine: switch ``sdpa``/flash attention to eager for
                    each call (restored afterwards). If False, such a model raises an error.
        engine (str): ``"auto"`` (default: ``"fused"`` where the model's attention goes through
                    transformers' registry with ``sdpa`` and the model is in eval mode, else ``"hooks"``),
                    ``"fused"`` or ``"hooks"``.

    Examples::

        >>> capture = AttentionCapture(model)
        >>> out = capture.capture(input_ids, additional_forward_args=(attention_mask,),
        ...                       with_gradients=True)
        >>> out.attentions[0].shape, out.gradients[0].shape   # (B, H, T, T) each
        >>> matrix = capture.capture(input_ids, additional_forward_args=(attention_mask,),
        ...                          request=InfluenceRequest("matrix", "grad_attention")).influence
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        model: Optional[Module] = None,
        attention_modules: Optional[Sequence[ModuleSpec]] = None,
        attention_output_index: OutputSelector = 1,
        switch_to_eager: bool = True,
        engine: str = "auto",
    ) -> None:
        self.forward_func = forward_func
        self.model = find_model(forward_func, model)
        self.modules = discover_attention_modules(self.model, attention_modules, attention_output_index)
        self.switch_to_eager = switch_to_eager
        self.engine = check_choice(engine, ENGINES, "engine")
        self._user_modules = attention_modules is not None
        self._num_layers: Optional[int] = None
        if self.engine == "fused" and not self._fused_possible():
            raise ValueError(
                f"engine='fused' needs a Hugging Face model whose attention runs through transformers' registry "
                f"with {'/'.join(fused.FUSED_IMPLEMENTATIONS)} and discovered (not named) attention modules; "
                f"{type(self.model).__name__} uses {self._implementations() or 'no registered attention'}"
                f"{' and named modules' if self._user_modules else ''}. Use engine='hooks' or 'auto'."
            )

    @property
    def num_layers(self) -> int:
        """Number of attention layers: attention calls per forward pass (a shared module counts per call)."""
        if self._num_layers is None:  # the modules and the config are fixed at construction: counted once
            self._num_layers = attention_calls(self.model, self.modules)
        return self._num_layers

    def _implementations(self) -> List[str]:
        impls = {
            getattr(getattr(sub, "config", None), "_attn_implementation", None) for sub in self.model.modules()
        }
        return sorted(str(impl) for impl in impls if impl is not None)

    def _fused_possible(self) -> bool:
        impls = self._implementations()
        return (
            not self._user_modules
            and bool(impls)
            and all(impl in fused.FUSED_IMPLEMENTATIONS for impl in impls)
            and all(hasattr(module, "config") for _, module, _ in self.modules)
        )

    def engine_for_call(self) -> str:
        """The engine the next call uses."""
        if self.engine != "auto":
            return self.engine
        # A module in training mode may drop attention at random: only the eager pass shows what it used.
        training = any(module.training for _, module, _ in self.modules)
        return "fused" if self._fused_possible() and not training and self.model not in _NOT_FUSED else "hooks"

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
            if isinstance(layer, bool) or not isinstance(layer, int) or not -n <= layer < n:
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
        request: Optional[InfluenceRequest] = None,
        classification_position: ClassificationPosition = None,
        players: Optional[Callable[[CapturedAttention], Tensor]] = None,
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
            layers (sequence of int, optional): Layers to use (default: all).
            with_gradients (bool): Without ``request``: also return the gradients of the target
                        logits w.r.t. the selected layers' attention probabilities.
            state_modules (sequence of Module, optional): Modules whose outputs are also
                        recorded (e.g. transformer blocks, for their token states).
            state_gradients (bool): Also compute the gradients of the target logits
                        w.r.t. those outputs, in the same single backward pass.
            request (InfluenceRequest, optional): The reduction to return in ``influence`` /
                        ``layer_rows`` (see :mod:`~captum_attn_shapley.capture.reductions`). Default:
                        ``"raw"``, every selected layer's full probabilities (and gradients if
                        ``with_gradients``) in ``attentions`` / ``gradients``.
            classification_position (None, str or int): The classification position the reductions
                        use (see :func:`~captum_attn_shapley.capture.players.classification_positions`).
            players (Callable, optional): Required by the ``"pair_sums"`` reduction: given the capture
                        as far as it is known at the first attention call (inputs, real tokens,
                        classification positions), the bool player mask ``(batch, T)``.

        Returns:
            CapturedAttention: The captured tensors.
        """
        if request is None:
            request = InfluenceRequest("raw", "grad_attention" if with_gradients else "attention")
        check_classification_position(classification_position)
        if (request.reduction == "pair_sums") != (players is not None):
            raise ValueError("players= is needed by, and only by, the 'pair_sums' reduction.")
        layer_ids = self.resolve_layers(layers)
        if request.groups is not None:
            groups = tuple(tuple(self.resolve_layers(list(group))) for group in request.groups)
            outside = sorted({layer for group in groups for layer in group} - set(layer_ids))
            if outside:
                raise ValueError(
                    f"request.groups holds layers {outside} that `layers` ({layer_ids}) does not select: select "
                    "every grouped layer (layers=None selects all)."
                )
            request = dataclasses.replace(request, groups=groups)
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
        engine = self.engine_for_call()
        one_pass = CapturePass(
            self.forward_func,
            self.model,
            self.modules,
            self.num_layers,
            self.switch_to_eager,
            layer_ids,
            request,
            players,
        )
        states = list(state_modules or [])
        args = (inputs_tuple, extra, target, classification_position, states, state_gradients)
        captured = one_pass.run(engine, *args)
        if captured is None:  # the fused engine saw no attention call: this model does not use the registry
            _NOT_FUSED.add(self.model)
            captured = one_pass.run("hooks", *args)
            assert captured is not None
        return captured
