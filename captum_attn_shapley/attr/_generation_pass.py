#!/usr/bin/env python3
"""The capture of a generative pass: what the attention games of a causal language model read.

ONE teacher-forced forward pass over ``prompt + target[:-1]`` gives, at the position ``c_t = P - 1 + t``
that predicts target token ``t`` (``P`` prompt tokens), the log-probability ``log p(y_t)`` of every target
token, and what the capture keeps of every selected layer's attention: with the fused engine (Hugging Face
models on ``sdpa``, :class:`~captum_attn_shapley.capture.fused.FusedRecorder`) each call's query, key and
value and its output ``O = A V`` in the autograd graph, from which ``A`` and ``dA = dO V^T`` are rebuilt; with
the hook engine (:class:`~captum_attn_shapley.capture.hooks.HookRecorder`, eager attention for the call) the
probabilities ``A`` themselves, in the graph. The gradient variants need ``G_t = d log p(y_t) / dA`` for every
``t``: one vector-Jacobian product per target token, all of them computed by ONE batched backward pass
(``torch.autograd.grad(..., is_grads_batched=True)``, vectorised over the target tokens), in chunks of
targets when the gradients of all targets would not fit :data:`GRAD_BUDGET`.

Each target's influence matrix ``M_t = mean_{l,h} A[l,h] * relu(G_t[l,h])`` (or ``mean_{l,h} A[l,h]``) is
reduced at once to what the games read of it: its row ``c_t`` over the prompt (the CLS game) and its
``P x P`` block on the prompt (the pairwise games).
"""

import contextlib
import contextvars
import inspect
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, cast

import torch
from torch import Tensor

from captum_attn_shapley.capture import AttentionCapture, eager_attention, fused, model_lock
from captum_attn_shapley.capture.attention import _NOT_FUSED as NOT_FUSED
from captum_attn_shapley.capture.eager import grad_enabled_parameters
from captum_attn_shapley.capture.hooks import HookRecorder
from captum_attn_shapley.capture.one_pass import ROW_BUDGET
from captum_attn_shapley.capture.reductions import InfluenceReducer, InfluenceRequest

#: Elements of one batch of attention gradients (targets x selected layers x heads x T x T, float32): at
#: most this many (2**25, 128 MiB) are live at a time; more target tokens are split into several batches.
GRAD_BUDGET = 1 << 25

#: Largest entry above the diagonal of a causal attention matrix (float rounding of exact zeros).
CAUSAL_TOLERANCE = 1e-6

_ACTIVE: "contextvars.ContextVar[Optional[object]]" = contextvars.ContextVar(
    "captum_attn_shapley_generation_pass", default=None
)


@dataclass
class GenerationGames:
    r"""
    What the games of a generative pass read.

    Attributes:
        rows (Tensor): ``(n_target, P)``: row ``c_t`` of ``M_t`` on the prompt positions, float32.
        block (Tensor or None): ``(n_target, P, P)`` (``(1, P, P)`` for the attention weighting, where ``M``
                    does not depend on ``t``): ``M_t`` on the prompt positions; None unless requested.
        log_probs (Tensor): ``(n_target,)``: ``log p(y_t)`` under teacher forcing, detached.
        num_backward (int): The batched backward passes run (0 for the attention weighting).
    """

    rows: Tensor
    block: Optional[Tensor]
    log_probs: Tensor
    num_backward: int


def _no_positions(batch: int, num_tokens: int, device: torch.device) -> "tuple[Tensor, Tensor, None]":
    """The hook recorder's reducer is never asked to reduce here (the probabilities are kept)."""
    real = torch.ones(batch, num_tokens, dtype=torch.bool, device=device)
    return real, torch.zeros(batch, dtype=torch.long, device=device), None


_USE_CACHE: Dict[str, bool] = {}


def _takes_use_cache(model_type: type) -> bool:
    """Whether ``model_type.forward`` accepts ``use_cache`` (asked once per class)."""
    key = f"{model_type.__module__}.{model_type.__qualname__}"
    if key not in _USE_CACHE:
        try:
            _USE_CACHE[key] = "use_cache" in inspect.signature(getattr(model_type, "forward")).parameters
        except (TypeError, ValueError):
            _USE_CACHE[key] = False
    return _USE_CACHE[key]


def _call_model(model: torch.nn.Module, ids: Tensor) -> Tensor:
    """The logits ``(1, T, vocab)`` of one unpadded sequence."""
    kwargs: Dict[str, Any] = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if _takes_use_cache(type(model)):
        kwargs["use_cache"] = False
    output = model(**kwargs)
    logits = getattr(output, "logits", output[0] if isinstance(output, (tuple, list)) else output)
    if not isinstance(logits, Tensor) or logits.dim() != 3 or logits.shape[:2] != ids.shape:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(
            f"{type(model).__name__} returned logits of shape {shape}, not (batch, tokens, vocabulary): "
            "`model` must be a causal language model with its head (e.g. AutoModelForCausalLM)."
        )
    return logits


def _check_causal(first_row: Tensor, model: torch.nn.Module) -> None:
    """``first_row``: the first query's attention ``(heads, 1, T)``; under causal attention it sees only key 0."""
    above = first_row[..., 1:].abs().amax() if first_row.shape[-1] > 1 else first_row.new_zeros(())
    if float(above) > CAUSAL_TOLERANCE:
        raise ValueError(
            f"{type(model).__name__}'s attention is not causal (a query attends to a later key, weight "
            f"{float(above):.3g}): LLMAttnGradShapley explains decoder-only causal language models "
            "(GPT-2, Llama-style AutoModelForCausalLM). For a bidirectional classifier use AttnGradShapley."
        )


class _LayerReader:
    r"""
    What one capture engine holds of the selected layers after the forward pass.

    Attributes:
        wrt (list[Tensor]): Per layer, what the backward pass differentiates: the probabilities (hooks) or
                    the attention call's output ``O = A V`` (fused: ``dA = dO V^T``).
    """

    def __init__(self, hooks: Optional[HookRecorder], recorder: Optional[fused.FusedRecorder], layers: List[int]):
        self.probabilities = hooks.probabilities(layers) if hooks is not None else []
        self.calls = [recorder.calls[layer] for layer in layers] if recorder is not None else []
        self.wrt = self.probabilities or [cast(Tensor, call.output) for call in self.calls]
        self._attention: Dict[int, Tensor] = {}

    def attention(self, index: int) -> Tensor:
        """``A`` of the ``index``-th selected layer, ``(heads, T, T)`` float32 (rebuilt once, then kept)."""
        if index not in self._attention:
            self._attention[index] = self.attention_rows(index, None)
        return self._attention[index]

    def attention_rows(self, index: int, rows: Optional[slice]) -> Tensor:
        """The query rows ``rows`` (all: None) of ``A`` of the ``index``-th layer, ``(heads, rows, T)``."""
        if index in self._attention or self.probabilities:
            full = self._attention.get(index)
            full = full if full is not None else self.probabilities[index][0].detach().float()
            return full if rows is None else full[:, rows]
        query, key, _ = self.calls[index].operands()
        return self.calls[index].probabilities(query, key, slice(0, 1), rows)[0]

    def gradient(self, index: int, grad: Tensor) -> Tensor:
        """``dA`` of the ``index``-th layer from the batched gradient of ``wrt[index]``: ``(k, heads, T, T)``."""
        if self.probabilities:
            return grad[:, 0].float()
        value = self.calls[index].operands()[2][0]  # (heads, T, dim)
        return torch.matmul(grad[:, 0].transpose(1, 2).float(), value.transpose(-1, -2))

    def gradient_rows(self, index: int, grad: Tensor, positions: Tensor) -> Tensor:
        """Row ``positions[k]`` of the ``k``-th target's ``dA`` of the ``index``-th layer: ``(k, heads, T)``."""
        local = torch.arange(grad.shape[0], device=grad.device)
        if self.probabilities:
            return grad[local, 0, :, positions.to(grad.device)].float()
        value = self.calls[index].operands()[2][0]  # (heads, T, dim)
        rows = grad[local, 0, positions.to(grad.device)].float()  # (k, heads, dim): dO at the predicting rows
        return torch.einsum("khd,htd->kht", rows, value)


def generation_games(
    capturer: AttentionCapture,
    ids: Tensor,
    targets: Tensor,
    layers: List[int],
    weighting: str,
    need_block: bool,
    switch_to_eager: bool = True,
    targets_per_backward: Optional[int] = None,
) -> GenerationGames:
    r"""
    One teacher-forced pass over ``ids`` (``prompt + target[:-1]``) and the games' inputs of every target.

    Args:
        capturer (AttentionCapture): The capture of the model (its attention modules, layers and engine:
                    ``"fused"`` keeps ``sdpa`` and rebuilds ``A`` and ``dA = dO V^T`` from the recorded calls,
                    ``"hooks"`` runs eager attention and differentiates the probabilities themselves).
        ids (Tensor): ``(1, P + n_target - 1)``: the prompt's ids followed by all target ids but the last.
        targets (Tensor): ``(n_target,)``: the target ids (the last ``n_target - 1`` of ``ids`` and one more).
        layers (list[int]): The selected layers (resolved, sorted).
        weighting (str): ``"attention"`` or ``"grad_attention"``.
        need_block (bool): Also return the ``P x P`` blocks (the pairwise games).
        switch_to_eager (bool): Whether ``sdpa``/flash attention may be switched to eager (hook engine).
        targets_per_backward (int, optional): Target tokens per batched backward pass. Default: as many as
                    :data:`GRAD_BUDGET` allows.

    Returns:
        GenerationGames: The rows, the blocks and the log-probabilities.
    """
    args = (capturer, ids, targets, layers, weighting, need_block, switch_to_eager, targets_per_backward)
    if capturer.engine_for_call() == "fused":
        games = _one_pass("fused", *args)
        if games is not None:
            return games
        NOT_FUSED.add(capturer.model)  # its attention does not go through the registry: hooks from now on
    games = _one_pass("hooks", *args)
    assert games is not None
    return games


def _one_pass(
    engine: str,
    capturer: AttentionCapture,
    ids: Tensor,
    targets: Tensor,
    layers: List[int],
    weighting: str,
    need_block: bool,
    switch_to_eager: bool,
    targets_per_backward: Optional[int],
) -> Optional[GenerationGames]:
    """The pass with one engine; None when the fused engine saw no attention call (no registry)."""
    model = capturer.model
    n_target = targets.shape[0]
    num_prompt = ids.shape[1] - n_target + 1
    positions = torch.arange(n_target, device=ids.device) + num_prompt - 1
    need_graph = weighting == "grad_attention"
    hooks: Optional[HookRecorder] = None
    recorder: Optional[fused.FusedRecorder] = None
    # the reducer is never fed: both recorders keep what they record (with_gradients=True)
    reducer = InfluenceReducer(InfluenceRequest("cls_row"), len(layers), _no_positions)
    with contextlib.ExitStack() as stack:
        if engine == "fused":
            fused.install()
            attention_ids = {id(module) for _, module, _ in capturer.modules}
            recorder = fused.FusedRecorder(attention_ids, set(layers), reducer, True, need_graph, ROW_BUDGET)
            stack.callback(fused.deactivate, fused.active(recorder))
        else:
            marker = object()
            stack.enter_context(model_lock(model))
            stack.enter_context(eager_attention(model, switch_to_eager))
            stack.enter_context(grad_enabled_parameters(model, need_graph))
            hooks = HookRecorder(capturer.modules, set(layers), reducer, True, lambda: _ACTIVE.get() is marker)
            for handle in hooks.attach():
                stack.callback(handle.remove)
            stack.callback(_ACTIVE.reset, _ACTIVE.set(marker))
        with torch.enable_grad() if need_graph else torch.no_grad():
            logits = _call_model(model, ids)
            calls = (recorder or hooks).num_calls  # type: ignore[union-attr]
            if engine == "fused" and calls == 0:
                return None
            if calls != capturer.num_layers:
                raise RuntimeError(
                    f"The forward pass made {calls} attention calls, but {capturer.num_layers} were expected "
                    f"({engine} capture): check that `model` runs each attention module once per layer."
                )
            reader = _LayerReader(hooks, recorder, layers)
            _check_causal(reader.attention_rows(0, slice(0, 1)), model)
            log_probs = logits[0, positions].float().log_softmax(dim=-1)
            log_probs = log_probs.gather(1, targets.to(log_probs.device).view(-1, 1)).squeeze(1)
            if not need_graph:
                rows, block = _attention_games(reader, len(layers), positions, num_prompt, need_block)
                return GenerationGames(rows, block, log_probs.detach(), 0)
            if not log_probs.requires_grad or not all(t.requires_grad for t in reader.wrt):
                raise RuntimeError(
                    "The attention is not part of an autograd graph (is the call inside "
                    "torch.inference_mode()?): the gradient weighting cannot be computed."
                )
            rows, block, runs = _gradient_games(
                reader, log_probs, positions, num_prompt, need_block, targets_per_backward
            )
            return GenerationGames(rows, block, log_probs.detach(), runs)


def _batched_gradients(log_probs: Tensor, wrt: List[Tensor], seeds: Tensor) -> List[Tensor]:
    """``d (seeds[k] . log_probs) / d wrt`` for every row ``k`` of ``seeds``, each ``(k, *wrt.shape)``: one
    backward pass vectorised over the rows (``is_grads_batched``). A model with an operation that cannot be
    vectorised (e.g. a custom autograd function without vmap support) gets one backward pass per row instead,
    with a warning."""
    if seeds.shape[0] == 1:  # one target: a plain backward pass (vectorising one row only costs time)
        return [
            g.unsqueeze(0) for g in torch.autograd.grad(log_probs, wrt, grad_outputs=seeds[0], retain_graph=True)
        ]
    try:
        return list(
            torch.autograd.grad(log_probs, wrt, grad_outputs=seeds, is_grads_batched=True, retain_graph=True)
        )
    except RuntimeError as error:
        message = str(error).lower()
        if not any(word in message for word in ("vmap", "functorch", "batch")):
            raise
        warnings.warn(
            f"The backward pass could not be vectorised over the target tokens ({str(error).splitlines()[0]}); "
            "computing one backward pass per target token instead (same values, slower).",
            RuntimeWarning,
            stacklevel=3,
        )
    rows = [torch.autograd.grad(log_probs, wrt, grad_outputs=seed, retain_graph=True) for seed in seeds]
    return [torch.stack([row[layer] for row in rows]) for layer in range(len(wrt))]


def _attention_games(
    reader: _LayerReader, num_layers: int, positions: Tensor, num_prompt: int, need_block: bool
) -> "tuple[Tensor, Optional[Tensor]]":
    """``M = mean_{l,h} A``: the same matrix for every target; its rows ``c_t`` and its prompt block."""
    mean = torch.stack([reader.attention(i).mean(dim=0) for i in range(num_layers)]).mean(dim=0)
    rows = mean[positions.to(mean.device), :num_prompt]
    block = mean[:num_prompt, :num_prompt].unsqueeze(0) if need_block else None
    return rows, block


def _gradient_games(
    reader: _LayerReader,
    log_probs: Tensor,
    positions: Tensor,
    num_prompt: int,
    need_block: bool,
    targets_per_backward: Optional[int],
) -> "tuple[Tensor, Optional[Tensor], int]":
    """``M_t = mean_{l,h} A * relu(G_t)`` for every target ``t``, from batched backward passes."""
    n_target = log_probs.shape[0]
    num_tokens = reader.wrt[0].shape[-3] if not reader.probabilities else reader.wrt[0].shape[-1]
    heads = reader.wrt[0].shape[-2] if not reader.probabilities else reader.wrt[0].shape[1]
    per_target = max(1, sum(t.numel() for t in reader.wrt), heads * num_tokens * num_tokens)
    step = targets_per_backward or max(1, GRAD_BUDGET // per_target)
    device = reader.wrt[0].device
    rows = torch.zeros(n_target, num_prompt, dtype=torch.float32, device=device)
    block = None
    if need_block:
        block = torch.zeros(n_target, num_prompt, num_prompt, dtype=torch.float32, device=device)
    # the CLS game reads only the predicting rows c_t = positions[t] (contiguous): rebuild just those of A
    span = slice(int(positions[0]), int(positions[-1]) + 1)
    predicting = [None if need_block else reader.attention_rows(i, span) for i in range(len(reader.wrt))]
    runs = 0
    for start in range(0, n_target, step):
        stop = min(start + step, n_target)
        seeds = torch.zeros(stop - start, n_target, dtype=log_probs.dtype, device=log_probs.device)
        seeds[torch.arange(stop - start), torch.arange(start, stop)] = 1.0  # unit vectors: d log p(y_t) / d.
        grads = _batched_gradients(log_probs, reader.wrt, seeds)
        runs += 1
        with torch.no_grad():
            local = torch.arange(stop - start, device=device)
            for index in range(len(reader.wrt)):
                if block is None:
                    attention = cast(Tensor, predicting[index])[:, start:stop].transpose(0, 1)  # (k, heads, T)
                    weighted = reader.gradient_rows(index, grads[index], positions[start:stop])
                    rows[start:stop] += weighted.clamp_(min=0).mul_(attention).mean(dim=1)[:, :num_prompt]
                    continue
                weighted = reader.gradient(index, grads[index]).clamp_(min=0).mul_(reader.attention(index))
                head_mean = weighted.mean(dim=1)  # (k, T, T)
                rows[start:stop] += head_mean[local, positions[start:stop].to(device), :num_prompt]
                block[start:stop] += head_mean[:, :num_prompt, :num_prompt]
            del grads
    scale = 1.0 / len(reader.wrt)
    return rows.mul_(scale), (block.mul_(scale) if block is not None else None), runs
