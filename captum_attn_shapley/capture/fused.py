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

from captum_attn_shapley.capture import native
from captum_attn_shapley.capture.integrated_attention import integrated_attend
from captum_attn_shapley.capture.lrp_attention import lrp_attend
from captum_attn_shapley.capture.reductions import InfluenceReducer
from captum_attn_shapley.capture.workspace import workspace
from captum_attn_shapley.shapley.games import cls_rows

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
        tensor = tensor if groups == 1 else tensor.repeat_interleave(groups, dim=1)
        return tensor.float()

    def operands(self) -> Tuple[Tensor, Tensor, Tensor]:
        r"""
        Returns:
            tuple[Tensor, Tensor, Tensor]: The query, the key and the value in float32, one key/value head
            per query head: ``(batch, heads, tokens, dim)`` each, in the layout the model made them (the
            blocks of one example are read in place).
        """
        return self.query.float(), self._expanded(self.key), self._expanded(self.value)

    def probabilities(
        self,
        query: Tensor,
        key: Tensor,
        examples: slice,
        rows: Optional[slice],
        positions: Optional[Tensor] = None,
        out: Optional[Tensor] = None,
    ) -> Tensor:
        r"""
        The attention probabilities of a block of examples and query rows, float32.

        Args:
            query, key (Tensor): From :meth:`operands` (the query unscaled).
            examples (slice): The examples of the block.
            rows (slice, optional): Its query rows (None with ``positions``).
            positions (Tensor, optional): Instead of ``rows``: one row per example ``(batch,)``.
            out (Tensor, optional): Where to write the scores (a reused buffer of the block's shape).

        Returns:
            Tensor: ``(examples, heads, rows, keys)``.
        """
        block = _rows(query[examples], rows, positions) * self.scaling
        scores = torch.matmul(block, key[examples].transpose(-1, -2), out=out)
        num_queries, num_keys = self.query.shape[2], key.shape[2]
        if self.mask is not None:
            mask = _rows(self.mask.expand(len(self.query), -1, num_queries, num_keys)[examples], rows, positions)
            if mask.dtype == torch.bool:  # true = attend
                scores.masked_fill_(mask.logical_not(), torch.finfo(torch.float32).min)
            else:
                scores.add_(mask)
        elif self.causal:
            query_index = _row_index(num_queries, rows, positions, scores.device)
            allowed = query_index >= torch.arange(num_keys, device=scores.device)
            scores.masked_fill_(allowed.logical_not(), torch.finfo(torch.float32).min)
        return cast(Tensor, torch.ops.aten._softmax.out(scores, -1, False, out=scores))


def _rows(tensor: Tensor, rows: Optional[slice], positions: Optional[Tensor]) -> Tensor:
    if positions is None:
        return tensor[:, :, rows] if rows is not None else tensor
    return cls_rows(tensor, positions).unsqueeze(-2)


def _row_index(num_queries: int, rows: Optional[slice], positions: Optional[Tensor], device: Any) -> Tensor:
    if positions is not None:
        return positions.view(-1, 1, 1, 1).to(device)
    start, stop, _ = (rows or slice(None)).indices(num_queries)
    return torch.arange(start, stop, device=device).view(1, 1, -1, 1)


def blocks(batch: int, heads: int, num_queries: int, num_keys: int, budget: int) -> List[Tuple[slice, slice]]:
    r"""
    Blocks of (examples, query rows) whose ``(examples, heads, rows, keys)`` tensors hold at most ``budget``
    elements (at least one row of one example), small enough to stay in the processor's cache.

    Returns:
        list[tuple[slice, slice]]: The blocks, covering every example and row once.
    """
    per_row = max(heads * num_keys, 1)
    rows = max(1, min(num_queries, budget // per_row))
    examples = max(1, min(batch, budget // (per_row * num_queries))) if rows == num_queries else 1
    return [
        (slice(b, min(b + examples, batch)), slice(r, min(r + rows, num_queries)))
        for b in range(0, batch, examples)
        for r in range(0, num_queries, rows)
    ]


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
        grad_row_budget (int): Elements of one block of the reducing backward pass (larger: its five
                    products per block run faster on taller blocks). Default: ``row_budget``.
    """

    def __init__(
        self,
        modules: "set[int]",
        layers: "set[int]",
        reducer: InfluenceReducer,
        with_gradients: bool,
        need_graph: bool,
        row_budget: int,
        grad_row_budget: Optional[int] = None,
    ) -> None:
        self.modules = modules
        self.layers = layers
        self.reducer = reducer
        self.with_gradients = with_gradients
        self.need_graph = need_graph
        self.row_budget = row_budget
        self.grad_row_budget = grad_row_budget or row_budget
        self.num_calls = 0
        self.calls: Dict[int, AttentionCall] = {}
        #: The layers reduced during the backward pass (by :class:`~.fused_backward.ReducingAttention`).
        self.reduced: "set[int]" = set()
        self.num_tokens: Optional[int] = None
        self.batch_size: Optional[int] = None

    def attend(
        self, module: Module, args: Tuple[Any, ...], kwargs: Dict[str, Any], kernel: Callable[..., Any]
    ) -> Optional[Tensor]:
        r"""
        Runs a selected call whose every row the reduction reads, so that its probabilities are computed once:

        - without gradients, here (the compiled kernel of :mod:`.native`, else a Python block loop), from the
          very probabilities the reduction reads (the output equals the kernel's to float round-off);
        - with gradients, through the kernel, with a backward pass that reduces the layer as it rebuilds
          the probabilities for the input gradients (:class:`~.fused_backward.ReducingAttention`).

        Returns:
            Tensor or None: The call's output ``(batch, queries, heads, dim)``, or None to run the kernel.
        """
        request = self.reducer.request
        if request.weighting == "lrp_attention" and id(module) in self.modules:  # AttnLRP's rules, every layer
            return lrp_attend(self, module, args, kwargs, kernel)
        if request.weighting == "ig_attention":  # the path's pass (.integrated_attention)
            selected = id(module) in self.modules and self.num_calls in self.layers and torch.is_grad_enabled()
            return integrated_attend(self, module, args, kwargs, kernel, request.n_steps) if selected else None
        if (
            id(module) not in self.modules
            or self.num_calls not in self.layers
            or request.rows != "all"
            or request.reduction == "raw"
        ):
            return None
        if self.with_gradients:
            return self._attend_with_gradients(module, args, kwargs, kernel) if torch.is_grad_enabled() else None
        if self.need_graph or torch.is_grad_enabled():
            return None
        call = _call_of(module, args, kwargs)
        layer = self.num_calls
        self.num_calls += 1
        self.batch_size, self.num_tokens = call.query.shape[0], call.key.shape[2]
        if (compiled := native.attend(call, self.reducer, layer, self.row_budget)) is not None:  # where it applies
            return compiled.to(call.query.dtype)
        query, key, value = call.operands()
        batch, heads, num_queries, _ = query.shape
        self.reducer.resolve(batch, key.shape[2], query.device)
        output = torch.empty(batch, num_queries, heads, value.shape[-1], dtype=torch.float32, device=query.device)
        by_head = output.transpose(1, 2)
        scores: Optional[Tensor] = None
        for examples, rows in blocks(batch, heads, num_queries, key.shape[2], self.row_budget):
            shape = (examples.stop - examples.start, heads, rows.stop - rows.start, key.shape[2])
            scores, out = workspace(scores, shape, query)
            attention = call.probabilities(query, key, examples, rows, out=out)
            self.reducer.add(layer, rows, attention, None, examples)
            by_head[examples, :, rows] = torch.matmul(attention, value[examples])
        return output.to(call.query.dtype)

    def _attend_with_gradients(
        self, module: Module, args: Tuple[Any, ...], kwargs: Dict[str, Any], kernel: Callable[..., Any]
    ) -> Tensor:
        from captum_attn_shapley.capture.fused_backward import ReducingAttention

        call = _call_of(module, args, kwargs)
        layer = self.num_calls
        self.num_calls += 1
        self.batch_size, self.num_tokens = call.query.shape[0], call.key.shape[2]

        def run_kernel() -> Tensor:
            return cast(Tensor, kernel(module, *args, **kwargs)[0])

        apply = ReducingAttention.apply
        output = cast(Tensor, apply(args[0], args[1], args[2], run_kernel, call, layer, self, False, True))  # type: ignore[no-untyped-call]
        if not output.requires_grad:
            output.requires_grad_(True)  # a frozen model: the graph starts here (reduced after the backward)
        call.output = output
        self.calls[layer] = call
        return output

    def record(self, module: Module, args: Tuple[Any, ...], kwargs: Dict[str, Any], output: Tensor) -> None:
        """Called by the registered attention function after the kernel ran."""
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
        query, key, value = call.operands()
        batch, heads, num_queries, _ = query.shape
        num_keys = key.shape[2]
        _, cls = self.reducer.resolve(batch, num_keys, query.device)
        grad = output_grad.float() if output_grad is not None else None
        if self.reducer.request.rows == "cls":
            attention = call.probabilities(query, key, slice(None), None, cls)
            gradient = torch.matmul(_rows(grad, None, cls), value.transpose(-1, -2)) if grad is not None else None
            self.reducer.add(layer, None, attention, gradient)
            return
        raw = self.reducer.request.reduction == "raw"
        budget = batch * heads * num_queries * num_keys if raw else self.row_budget
        scores: Optional[Tensor] = None
        grads: Optional[Tensor] = None
        for examples, rows in blocks(batch, heads, num_queries, num_keys, budget):
            shape = (examples.stop - examples.start, heads, rows.stop - rows.start, num_keys)
            out = grad_out = None
            if not raw:  # the blocks are reduced at once: their memory is reused
                scores, out = workspace(scores, shape, query)
                grads, grad_out = workspace(grads, shape, query)
            attention = call.probabilities(query, key, examples, rows, out=out)
            gradient = None
            if grad is not None:
                gradient = torch.matmul(grad[examples, :, rows], value[examples].transpose(-1, -2), out=grad_out)
            self.reducer.add(layer, rows, attention, gradient, examples)

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
        recorder = _ACTIVE.get()
        if recorder is not None:
            output = recorder.attend(module, args, kwargs, original)
            if output is not None:
                return output, None
        result = original(module, *args, **kwargs)
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
