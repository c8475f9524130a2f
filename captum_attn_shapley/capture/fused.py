#!/usr/bin/env python3
"""The fused capture engine: the model keeps its fast attention kernel; the probabilities are rebuilt.

Hugging Face models look their attention function up in transformers' ``AttentionInterface`` registry
at every call. :func:`install` registers, under ``"sdpa"``, a function that calls the original one and,
only while a capture is active in the *current context* (a :class:`contextvars.ContextVar`, so each
thread and each call has its own), records what the call needs to rebuild afterwards, a block of query
rows at a time:

- the attention probabilities ``A = softmax(scale * Q K^T + mask)`` of every head;
- their gradient ``dy/dA = dO V^T``, from the gradient ``dO`` of the target logits w.r.t. the call's
  output ``O = A V`` (one ``torch.autograd.grad`` w.r.t. the outputs of all calls: no parameter
  gradients, nothing below the first attention call).

Without gradients each call's rows are reduced during the forward pass itself and nothing is kept; with
them, each call keeps references to its inputs (which the fused kernel's backward saves anyway) until
the backward pass, and its rows are rebuilt and reduced layer by layer. Outside a capture the registered
function passes straight through; the model itself is never modified.
"""

import contextvars
import math
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, cast

import torch
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley.capture.reductions import InfluenceReducer, chunk_rows

#: The attention implementations the fused engine wraps (their masks are additive or boolean,
#: ``(batch, 1 or heads, queries, keys)``).
FUSED_IMPLEMENTATIONS = ("sdpa",)

_ACTIVE: "contextvars.ContextVar[Optional[FusedRecorder]]" = contextvars.ContextVar(
    "captum_attn_shapley_fused_capture", default=None
)
_INSTALL_GUARD = threading.Lock()


@dataclass
class AttentionCall:
    r"""
    What one attention call needs to rebuild its probabilities and their gradient.

    Attributes:
        query (Tensor): ``(batch, heads, queries, dim)``.
        key (Tensor): ``(batch, kv_heads, keys, dim)``.
        value (Tensor): ``(batch, kv_heads, keys, dim)``.
        mask (Tensor or None): Boolean (true = attend) or additive, broadcastable to
                    ``(batch, heads, queries, keys)``.
        causal (bool): Whether the kernel applied its own causal mask.
        scaling (float): The scale of the scores.
        output (Tensor or None): The call's output ``(batch, queries, heads, dim)``, kept for the backward.
    """

    query: Tensor
    key: Tensor
    value: Tensor
    mask: Optional[Tensor]
    causal: bool
    scaling: float
    output: Optional[Tensor] = None

    def _expanded(self, tensor: Tensor) -> Tensor:
        groups = self.query.shape[1] // tensor.shape[1]
        return tensor if groups == 1 else tensor.repeat_interleave(groups, dim=1)

    def probabilities(self, rows: Optional[slice], positions: Optional[Tensor]) -> Tensor:
        r"""
        The attention probabilities on some query rows, computed in float32.

        Args:
            rows (slice, optional): A block of query rows.
            positions (Tensor, optional): Instead of ``rows``: one row per example ``(batch,)``.

        Returns:
            Tensor: ``(batch, heads, rows, keys)``.
        """
        query = _rows(self.query, rows, positions).float()
        key = self._expanded(self.key).float()
        scores = torch.matmul(query, key.transpose(-1, -2)).mul_(self.scaling)
        num_queries, num_keys = self.query.shape[2], key.shape[2]
        if self.mask is not None:
            mask = self.mask.expand(self.query.shape[0], -1, num_queries, num_keys)
            mask = _rows(mask, rows, positions)
            if mask.dtype == torch.bool:
                scores.masked_fill_(~mask, torch.finfo(torch.float32).min)
            else:
                scores.add_(mask.float())
        elif self.causal:
            query_index = _row_index(num_queries, rows, positions, scores.device)
            allowed = query_index.unsqueeze(-1) >= torch.arange(num_keys, device=scores.device)
            scores.masked_fill_(~allowed, torch.finfo(torch.float32).min)
        return torch.softmax(scores, dim=-1)

    def gradient(self, output_grad: Tensor, rows: Optional[slice], positions: Optional[Tensor]) -> Tensor:
        r"""
        ``dy/dA = dO V^T`` on some query rows, float32.

        Args:
            output_grad (Tensor): ``dO``, ``(batch, heads, queries, dim)``.
            rows, positions: As for :meth:`probabilities`.

        Returns:
            Tensor: ``(batch, heads, rows, keys)``.
        """
        value = self._expanded(self.value).float()
        return torch.matmul(_rows(output_grad, rows, positions).float(), value.transpose(-1, -2))


def _rows(tensor: Tensor, rows: Optional[slice], positions: Optional[Tensor]) -> Tensor:
    if positions is None:
        return tensor[:, :, rows] if rows is not None else tensor
    index = positions.view(-1, 1, 1, 1).expand(tensor.shape[0], tensor.shape[1], 1, tensor.shape[-1])
    return tensor.gather(2, index)


def _row_index(num_queries: int, rows: Optional[slice], positions: Optional[Tensor], device: Any) -> Tensor:
    if positions is not None:
        return positions.view(-1, 1, 1, 1).to(device)
    start, stop, _ = (rows or slice(None)).indices(num_queries)
    return torch.arange(start, stop, device=device).view(1, 1, -1, 1)


class FusedRecorder:
    r"""
    The state of one fused capture: which calls belong to it, what they recorded, and the reduction.

    Args:
        modules (set[int]): ``id`` of the attention modules whose calls count as layers.
        layers (set[int]): The selected layers (indices of the calls, in call order).
        reducer (InfluenceReducer): Where the rebuilt rows go.
        with_gradients (bool): Record for the backward pass instead of reducing during the forward.
        need_graph (bool): Make each call's output part of an autograd graph (gradients w.r.t. the
                    attention or token states were requested).
        row_budget (int): Elements of one block of rebuilt rows.
    """

    def __init__(
        self,
        modules: "set[int]",
        layers: "set[int]",
        reducer: InfluenceReducer,
        with_gradients: bool,
        need_graph: bool,
        row_budget: int,
    ) -> None:
        self.modules = modules
        self.layers = layers
        self.reducer = reducer
        self.with_gradients = with_gradients
        self.need_graph = need_graph
        self.row_budget = row_budget
        self.num_calls = 0
        self.calls: Dict[int, AttentionCall] = {}
        self.num_tokens: Optional[int] = None
        self.batch_size: Optional[int] = None

    def record(self, module: Module, args: Tuple[Any, ...], kwargs: Dict[str, Any], output: Tensor) -> None:
        """Called by the registered attention function after the original one ran."""
        if id(module) not in self.modules:
            return
        layer = self.num_calls
        self.num_calls += 1
        if self.need_graph and not output.requires_grad and torch.is_grad_enabled():
            output.requires_grad_(True)  # a frozen model: the graph starts at the first attention output
        if layer not in self.layers:
            return
        call = _call_of(module, args, kwargs)
        self.batch_size, self.num_tokens = call.query.shape[0], call.key.shape[2]
        if self.with_gradients:
            call.output = output
            self.calls[layer] = call
            return
        with torch.no_grad():
            self.reduce(layer, call, None)

    def reduce(self, layer: int, call: AttentionCall, output_grad: Optional[Tensor]) -> None:
        r"""
        Rebuilds one call's rows (and their gradient), block by block, into the reducer.

        Args:
            layer (int): The call's layer index.
            call (AttentionCall): What it recorded.
            output_grad (Tensor, optional): ``dO`` as ``(batch, heads, queries, dim)``.
        """
        batch, heads, num_queries, _ = call.query.shape
        num_keys = call.key.shape[2]
        _, cls = self.reducer.resolve(batch, num_keys, call.query.device)
        if self.reducer.request.rows == "cls":
            attention = call.probabilities(None, cls)
            gradient = call.gradient(output_grad, None, cls) if output_grad is not None else None
            self.reducer.add(layer, None, attention, gradient)
            return
        if self.reducer.request.reduction == "raw":
            step = num_queries
        else:
            step = chunk_rows(batch, heads, num_queries, num_keys, self.row_budget)
        for start in range(0, num_queries, step):
            rows = slice(start, min(start + step, num_queries))
            attention = call.probabilities(rows, None)
            gradient = call.gradient(output_grad, rows, None) if output_grad is not None else None
            self.reducer.add(layer, rows, attention, gradient)

    def outputs(self, layers: List[int]) -> List[Tensor]:
        """The recorded outputs of the given layers (for the backward pass)."""
        outputs = []
        for layer in layers:
            output = self.calls[layer].output
            assert output is not None
            outputs.append(output)
        return outputs


def _call_of(module: Module, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> AttentionCall:
    query, key, value = args[0], args[1], args[2]
    mask = args[3] if len(args) > 3 else kwargs.get("attention_mask")
    if kwargs.get("position_bias") is not None or kwargs.get("softcap") is not None:
        raise NotImplementedError(
            f"{type(module).__name__} passes a position bias or a softcap to its attention kernel, which the "
            "fused capture does not rebuild: use engine='hooks'."
        )
    dropout = kwargs.get("dropout", 0.0)
    if module.training and dropout:
        raise RuntimeError(
            f"{type(module).__name__} is in training mode with attention dropout {dropout}: its attention is "
            "random. Call model.eval() before explaining it."
        )
    scaling = kwargs.get("scaling")
    if scaling is None:
        scaling = 1.0 / math.sqrt(query.shape[-1])
    causal = kwargs.get("is_causal")
    causal = bool(getattr(module, "is_causal", True) if causal is None else causal)
    causal = causal and mask is None and query.shape[2] > 1
    if mask is not None and mask.dim() != 4:
        raise NotImplementedError(
            f"{type(module).__name__} passed an attention mask of shape {tuple(mask.shape)}; the fused capture "
            "rebuilds 4-dimensional masks only: use engine='hooks'."
        )
    return AttentionCall(query.detach(), key.detach(), value.detach(), mask, causal, float(scaling))


def _capturing_attention(original: Callable[..., Any]) -> Callable[..., Any]:
    def attention(module: Module, *args: Any, **kwargs: Any) -> Any:
        result = original(module, *args, **kwargs)
        recorder = _ACTIVE.get()
        if recorder is not None:
            recorder.record(module, args, kwargs, result[0])
        return result

    attention.__wrapped__ = original  # type: ignore[attr-defined]
    attention._captum_attn_shapley = True  # type: ignore[attr-defined]
    return attention


def install() -> None:
    """Registers the capturing attention functions (once; they pass through outside a capture)."""
    from transformers import AttentionInterface

    with _INSTALL_GUARD:
        mapping = AttentionInterface._global_mapping
        for name in FUSED_IMPLEMENTATIONS:
            current = mapping.get(name)
            if current is not None and not getattr(current, "_captum_attn_shapley", False):
                AttentionInterface.register(name, _capturing_attention(cast(Callable[..., Any], current)))


def active(recorder: Optional[FusedRecorder]) -> "contextvars.Token[Optional[FusedRecorder]]":
    """Makes ``recorder`` the current context's capture; reset with :func:`deactivate`."""
    return _ACTIVE.set(recorder)


def deactivate(token: "contextvars.Token[Optional[FusedRecorder]]") -> None:
    """Ends the capture begun by :func:`active`."""
    _ACTIVE.reset(token)


def current() -> Optional[FusedRecorder]:
    """The current context's capture, if any."""
    return _ACTIVE.get()
