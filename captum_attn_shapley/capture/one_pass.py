#!/usr/bin/env python3
"""One capture pass: the forward pass, the one backward pass and the reduction, with either engine."""

import contextlib
import contextvars
import inspect
import threading
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley._utils.forward import logits_from_output
from captum_attn_shapley._utils.targets import TargetLike, normalize_target
from captum_attn_shapley.capture import fused
from captum_attn_shapley.capture import integrated_attention as integrated
from captum_attn_shapley.capture.captured import CapturedAttention
from captum_attn_shapley.capture.discovery import OutputSelector
from captum_attn_shapley.capture.eager import (
    check_image_size,
    check_input_length,
    eager_attention,
    grad_enabled_parameters,
    pretrained_roots,
)
from captum_attn_shapley.capture.hooks import HookRecorder
from captum_attn_shapley.capture.lrp_rules import lrp_pass
from captum_attn_shapley.capture.players import ClassificationPosition, classification_positions, real_tokens_of
from captum_attn_shapley.capture.reductions import InfluenceReducer, InfluenceRequest

#: Elements of one block of rebuilt attention rows: ``(batch, heads, rows, keys)`` float32 tensors of at
#: most this size (2 Mi elements, 8 MiB) are live at a time.
ROW_BUDGET = 1 << 21

#: The same for the reducing backward pass of the gradient variants (its three buffers of this size are
#: small beside the activations the backward pass holds anyway, and taller blocks run its products faster).
GRAD_ROW_BUDGET = 1 << 22

_CURRENT_PASS: "contextvars.ContextVar[Optional[CapturePass]]" = contextvars.ContextVar(
    "captum_attn_shapley_capture_pass", default=None
)
_MODEL_LOCKS: "weakref.WeakKeyDictionary[Module, threading.RLock]" = weakref.WeakKeyDictionary()
_MODEL_LOCKS_GUARD = threading.Lock()


def model_lock(model: Module) -> "threading.RLock":
    r"""
    The lock that serialises hook captures on one model.

    A hook capture may switch the model's attention implementation and unfreeze frozen parameters for the
    duration of one forward and backward pass: concurrent captures on the same model from several threads
    would see each other's settings. Each hook capture holds this (re-entrant) lock, so concurrent
    ``attribute`` calls on one model give the serial results; fused captures change nothing on the model and
    run concurrently.

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


class CapturePass:
    r"""
    One capture of one batch (see :meth:`~captum_attn_shapley.capture.AttentionCapture.capture`).

    Args:
        forward_func (Callable): The forward function.
        model (Module): The model behind it.
        modules (list): Its attention modules ``(name, module, selector)``.
        num_layers (int): Attention calls per forward pass.
        switch_to_eager (bool): Whether the hook engine may switch to eager attention.
        layers (list[int]): The selected layers.
        request (InfluenceRequest): What to keep of them.
        players (Callable, optional): For the ``"pair_sums"`` reduction: the player mask ``(batch, T)`` of a
                    capture whose inputs, real tokens and classification positions are known (called once,
                    at the first attention call, with a provisional :class:`CapturedAttention`).
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        model: Module,
        modules: List[Tuple[str, Module, OutputSelector]],
        num_layers: int,
        switch_to_eager: bool,
        layers: List[int],
        request: InfluenceRequest,
        players: Optional[Callable[[CapturedAttention], Tensor]] = None,
    ) -> None:
        self.forward_func = forward_func
        self.model = model
        self.modules = modules
        self.num_layers = num_layers
        self.switch_to_eager = switch_to_eager
        self.layers = layers
        self.request = request
        self.players = players
        self.player_mask: Optional[Tensor] = None
        self.model_inputs: Dict[str, Any] = {}
        self.position: ClassificationPosition = None

    def _is_current(self) -> bool:
        return _CURRENT_PASS.get() is self

    def _positions(
        self, batch: int, num_tokens: int, device: torch.device
    ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        real = real_tokens_of(self.model_inputs, batch, num_tokens, device)
        kind = "image" if isinstance(self.model_inputs.get("pixel_values"), Tensor) else "text"
        cls = classification_positions(self.model, real, kind, self.position)
        if self.request.reduction != "pair_sums":
            return real, cls, None
        assert self.players is not None, "the 'pair_sums' reduction needs players"
        provisional = CapturedAttention(
            logits=torch.empty(batch, 0, device=device),
            target=torch.empty(batch, dtype=torch.long, device=device),
            attentions=[],
            gradients=None,
            model_inputs=self.model_inputs,
            batch_size=batch,
            num_tokens=num_tokens,
            real_tokens=real,
            cls_positions=cls,
        )
        self.player_mask = self.players(provisional).to(device)
        return real, cls, self.player_mask

    def _read_inputs(self, module: Module, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
        if not self._is_current() or self.model_inputs:
            return
        try:
            bound = inspect.signature(module.forward).bind_partial(*args, **kwargs)
            self.model_inputs.update(bound.arguments)
            extra_kwargs = self.model_inputs.pop("kwargs", None)
            self.model_inputs.update(extra_kwargs if isinstance(extra_kwargs, dict) else {})
        except (TypeError, ValueError):
            self.model_inputs.update(kwargs)
        if self.request.weighting == "ig_attention":  # the path's pass: each example's unmodified row
            self.model_inputs = integrated.unmodified_inputs(self.model_inputs, self.request.n_steps)
        check_input_length(module, self.model_inputs.get("input_ids"))
        check_image_size(module, self.model_inputs)

    def run(
        self,
        engine: str,
        inputs: Tuple[Any, ...],
        extra: Tuple[Any, ...],
        target: TargetLike,
        position: ClassificationPosition,
        state_modules: List[Module],
        state_gradients: bool,
    ) -> Optional[CapturedAttention]:
        r"""
        Runs the pass with ``engine`` (``"fused"`` or ``"hooks"``).

        Returns:
            CapturedAttention or None: None when the fused engine saw no attention call of the model.
        """
        self.model_inputs = {}
        self.player_mask = None
        self.position = position
        modules = [module for _, module, _ in self.modules]  # eager models switch to sdpa for "ig_attention"
        lock = model_lock(self.model)
        engine, switch = integrated.fused_engine_for(self.request, engine, self.model, modules, lock)
        rules = lrp_pass(self.request.weighting, engine)  # AttnLRP's rules for "lrp_attention" (fused only)
        steps = integrated.check_path_pass(self.request, engine, self.model, bool(state_modules))
        if steps > 1:  # ig_attention: every example at every point of the path, in one pass
            inputs, extra = (integrated.expand_rows(v, inputs[0].shape[0], steps) for v in (inputs, extra))
        with_gradients = self.request.needs_gradients
        need_graph = with_gradients or (state_gradients and bool(state_modules))
        reducer = InfluenceReducer(self.request, len(self.layers), self._positions)
        recorder: Union[fused.FusedRecorder, HookRecorder]
        states: Dict[int, Tensor] = {}
        with contextlib.ExitStack() as stack:
            stack.enter_context(switch)
            stack.enter_context(rules)
            if engine == "fused":
                fused.install()
                attention_ids = {id(module) for _, module, _ in self.modules}
                recorder = fused.FusedRecorder(
                    attention_ids,
                    set(self.layers),
                    reducer,
                    with_gradients,
                    need_graph,
                    ROW_BUDGET,
                    GRAD_ROW_BUDGET,
                )
                token = fused.active(recorder)
                stack.callback(fused.deactivate, token)
            else:
                stack.enter_context(model_lock(self.model))
                stack.enter_context(eager_attention(self.model, self.switch_to_eager))
                stack.enter_context(grad_enabled_parameters(self.model, need_graph))
                recorder = HookRecorder(self.modules, set(self.layers), reducer, with_gradients, self._is_current)
                for handle in recorder.attach():
                    stack.callback(handle.remove)
            pass_token = _CURRENT_PASS.set(self)
            stack.callback(_CURRENT_PASS.reset, pass_token)
            for idx, module in enumerate(state_modules):
                stack.callback(module.register_forward_hook(self._state_hook(idx, states, need_graph)).remove)
            # The inputs are read where the transformer itself receives them, inside any wrapper.
            transformer = next(iter(pretrained_roots(self.model)), self.model)
            stack.callback(transformer.register_forward_pre_hook(self._read_inputs, with_kwargs=True).remove)
            with torch.enable_grad() if need_graph else torch.no_grad():
                output = self.forward_func(*inputs, *extra)
                logits = all_logits = logits_from_output(output)
                if logits.shape[0] != inputs[0].shape[0]:
                    raise ValueError(
                        f"The forward function returned {logits.shape[0]} rows of logits for a batch "
                        f"of {inputs[0].shape[0]} examples."
                    )
                logits = integrated.unmodified_rows(all_logits, steps)
                target_idx = normalize_target(target, logits)
                if engine == "fused" and recorder.num_calls == 0:
                    integrated.check_fused_calls(self.request, self.model)
                    return None
                self._check_calls(recorder.num_calls, engine)
                if len(states) != len(state_modules):
                    raise RuntimeError(
                        "Some of state_modules did not run during the forward pass; check that they "
                        "belong to the model that forward_func calls."
                    )
                state_list = [states[i] for i in range(len(state_modules))]
                attention_inputs: List[Tensor] = []
                if with_gradients:
                    if isinstance(recorder, fused.FusedRecorder):
                        attention_inputs = recorder.outputs(self.layers)
                    else:
                        attention_inputs = recorder.probabilities(self.layers)
                wrt = attention_inputs + (state_list if state_gradients else [])
                grads: List[Tensor] = []
                if wrt:
                    if not all(t.requires_grad for t in wrt):
                        raise RuntimeError(
                            "The attention or the token states are not part of an autograd graph (is the call "
                            "inside torch.inference_mode()?); gradients cannot be computed."
                        )
                    rows = target_idx.repeat_interleave(steps)
                    selected = all_logits.gather(1, rows.unsqueeze(1)).sum()
                    grads = list(torch.autograd.grad(selected, wrt))
                del output
            if with_gradients:
                self._reduce_with_gradients(recorder, grads[: len(attention_inputs)])
        assert recorder.batch_size is not None and recorder.num_tokens is not None
        real, cls = reducer.resolve(recorder.batch_size, recorder.num_tokens, logits.device)
        raw = self.request.reduction == "raw"
        return CapturedAttention(
            logits=logits.detach(),
            target=target_idx,
            attentions=[reducer.raw_attentions[i] for i in self.layers] if raw else [],
            gradients=[reducer.raw_gradients[i] for i in self.layers] if raw and with_gradients else None,
            model_inputs=self.model_inputs,
            layer_indices=list(self.layers),
            states=[t.detach() for t in state_list] if state_modules else None,
            state_gradients=grads[len(grads) - len(state_list) :] if state_gradients and state_modules else None,
            influence=reducer.result(),
            layer_rows=reducer.per_layer(self.layers) if self.request.reduction == "layer_cls_rows" else None,
            batch_size=recorder.batch_size,
            num_tokens=recorder.num_tokens,
            real_tokens=real,
            cls_positions=cls,
            players=self.player_mask,
            engine=engine,
        )

    def _reduce_with_gradients(
        self, recorder: Union[fused.FusedRecorder, HookRecorder], grads: List[Tensor]
    ) -> None:
        with torch.no_grad():
            if isinstance(recorder, HookRecorder):
                recorder.reduce_with_gradients(self.layers, grads)
                return
            ig = self.request.weighting == "ig_attention"
            for layer, grad in zip(self.layers, grads):
                call = recorder.calls.pop(layer)
                call.output = None
                if layer in recorder.reduced:  # reduced by its own backward pass
                    continue
                # dO arrives as the call's output layout (batch, queries, heads, dim).
                recorder.reduce(layer, call, integrated.output_gradient(grad, self.request.n_steps if ig else 1))

    def _check_calls(self, calls: int, engine: str) -> None:
        if calls != self.num_layers:
            raise RuntimeError(
                f"The forward pass made {calls} attention calls through {len(self.modules)} attention modules, "
                f"but {self.num_layers} were expected ({engine} capture). Check attention_modules and that "
                "forward_func calls the model once; another capture on this model in a different mode may have "
                "switched its attention implementation meanwhile."
            )

    def _state_hook(self, idx: int, states: Dict[int, Tensor], need_graph: bool) -> Callable[..., None]:
        def hook(module: Module, args: Any, output: Any) -> None:
            if not self._is_current():
                return
            state = _first_tensor(output)
            if state is None:
                raise RuntimeError(
                    f"{type(module).__name__} returned {type(output).__name__}, not a tensor of token "
                    "states: name a module whose output is (batch, tokens, hidden), e.g. a transformer block."
                )
            if need_graph and not state.requires_grad and torch.is_grad_enabled():
                state.requires_grad_(True)  # a frozen model below this block
            states[idx] = state

        return hook
