#!/usr/bin/env python3
"""The hook capture engine: forward hooks on attention modules that return their probabilities.

For models whose attention does not go through transformers' attention registry (DeBERTa-v2, MPNet,
non-Hugging Face models, modules the user names) and models that run eager attention. Each call of an
attention module is one layer (a module called several times, like ALBERT's shared layer, gives one
layer per call). Modules whose ``forward`` takes an ``output_attentions`` argument are asked for their
probabilities for the call. With gradients every selected layer's probabilities are kept for the one
backward pass; without, each is reduced as soon as it is computed.
"""

import inspect
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor
from torch.nn import Module
from torch.utils.hooks import RemovableHandle

from captum_attn_shapley.capture.discovery import OutputSelector
from captum_attn_shapley.capture.reductions import InfluenceReducer
from captum_attn_shapley.shapley.games import cls_rows


def _select(output: Any, selector: OutputSelector) -> Optional[Tensor]:
    if callable(selector):
        return selector(output)
    if selector is None:
        return output if isinstance(output, Tensor) else None
    if isinstance(output, (tuple, list)) and len(output) > selector:
        value = output[selector]
        return value if isinstance(value, Tensor) else None
    if isinstance(output, Tensor) and selector == 0:
        return output
    return None


def _takes_output_attentions(module: Module) -> bool:
    try:
        return "output_attentions" in inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False


class HookRecorder:
    r"""
    The state of one hook capture.

    Args:
        modules (list of (name, module, selector)): The attention modules.
        layers (set[int]): The selected layers (indices of the calls, in call order).
        reducer (InfluenceReducer): Where the probabilities go.
        with_gradients (bool): Keep the selected probabilities for the backward pass.
        is_current (Callable[[], bool]): Whether the running forward pass is this capture's (hooks
                    fire for every caller of the module).
    """

    def __init__(
        self,
        modules: List[Tuple[str, Module, OutputSelector]],
        layers: "set[int]",
        reducer: InfluenceReducer,
        with_gradients: bool,
        is_current: Callable[[], bool],
    ) -> None:
        self.modules = modules
        self.layers = layers
        self.reducer = reducer
        self.with_gradients = with_gradients
        self.is_current = is_current
        self.num_calls = 0
        self.kept: Dict[int, Tensor] = {}
        self.num_tokens: Optional[int] = None
        self.batch_size: Optional[int] = None

    def attach(self) -> List[RemovableHandle]:
        """Registers the hooks; the caller removes them."""
        handles = []
        for name, module, selector in self.modules:
            if _takes_output_attentions(module):
                handles.append(module.register_forward_pre_hook(self._ask_for_probabilities, with_kwargs=True))
            handles.append(module.register_forward_hook(self._hook(name, selector)))
        return handles

    def _ask_for_probabilities(
        self, module: Module, args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Optional[Tuple[Tuple[Any, ...], Dict[str, Any]]]:
        if not self.is_current():
            return None
        bound = inspect.signature(module.forward).bind_partial(*args, **kwargs)
        bound.arguments["output_attentions"] = True
        return tuple(bound.args), dict(bound.kwargs)

    def _hook(self, name: str, selector: OutputSelector) -> Callable[..., None]:
        def hook(module: Module, args: Any, output: Any) -> None:
            if not self.is_current():
                return
            probs = _select(output, selector)
            if probs is None:
                raise RuntimeError(
                    f"Attention module {name!r} returned no attention probabilities. If it uses sdpa/flash "
                    "attention, load the model with attn_implementation='eager'; for a custom module, set "
                    "attention_output_index to where its output holds the probabilities (None if the module "
                    "outputs them, e.g. the dropout applied to them)."
                )
            if probs.dim() == 3:  # (B, T, T): a single head
                probs = probs.unsqueeze(1)
            if probs.dim() != 4 or probs.shape[-1] != probs.shape[-2]:
                raise RuntimeError(
                    f"Attention module {name!r} produced a tensor of shape {tuple(probs.shape)}, expected "
                    "attention probabilities of shape (batch, heads, tokens, tokens): check "
                    "attention_output_index."
                )
            layer = self.num_calls
            self.num_calls += 1
            if layer not in self.layers:
                return
            self.batch_size, self.num_tokens = probs.shape[0], probs.shape[-1]
            if self.with_gradients:
                self.kept[layer] = probs
                return
            with torch.no_grad():
                self._reduce(layer, probs.detach(), None)

        return hook

    def _reduce(self, layer: int, attention: Tensor, gradient: Optional[Tensor]) -> None:
        batch, _, num_tokens, _ = attention.shape
        _, cls = self.reducer.resolve(batch, num_tokens, attention.device)
        if self.reducer.request.rows == "cls":
            attention = cls_rows(attention, cls).unsqueeze(-2)
            gradient = cls_rows(gradient, cls).unsqueeze(-2) if gradient is not None else None
            self.reducer.add(layer, None, attention, gradient)
        else:
            self.reducer.add(layer, slice(None), attention, gradient)

    def probabilities(self, layers: List[int]) -> List[Tensor]:
        """The kept probabilities of the given layers (for the backward pass)."""
        return [self.kept[layer] for layer in layers]

    def reduce_with_gradients(self, layers: List[int], gradients: List[Tensor]) -> None:
        """Reduces the kept probabilities with their gradients, freeing each layer after use."""
        for layer, gradient in zip(layers, gradients):
            self._reduce(layer, self.kept.pop(layer).detach(), gradient)
