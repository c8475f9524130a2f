#!/usr/bin/env python3
"""The capture of a generative pass: what the attention games of a causal language model read.

ONE teacher-forced forward pass over ``prompt + target[:-1]`` gives, at the position ``c_t = P - 1 + t``
that predicts target token ``t`` (``P`` prompt tokens), the log-probability ``log p(y_t)`` of every target
token and, through the hook capture (:class:`~captum_attn_shapley.capture.hooks.HookRecorder`, eager
attention for the call), every selected layer's attention probabilities ``A`` in the autograd graph. The
gradient variants then need ``G_t = d log p(y_t) / dA`` for every ``t``: one vector-Jacobian product per
target token, all of them computed by ONE batched backward pass (``torch.autograd.grad(...,
is_grads_batched=True)``, i.e. vectorised over the target tokens), in chunks of targets when the gradients
of all targets would not fit :data:`GRAD_BUDGET`.

Each target's influence matrix ``M_t = mean_{l,h} A[l,h] * relu(G_t[l,h])`` (or ``mean_{l,h} A[l,h]``) is
reduced at once to what the games read of it: its row ``c_t`` over the prompt (the CLS game) and its
``P x P`` block on the prompt (the pairwise games).
"""

import contextlib
import contextvars
import inspect
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor

from captum_attn_shapley.capture import AttentionCapture, eager_attention, model_lock
from captum_attn_shapley.capture.eager import grad_enabled_parameters
from captum_attn_shapley.capture.hooks import HookRecorder
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


def _call_model(model: torch.nn.Module, ids: Tensor) -> Tensor:
    """The logits ``(1, T, vocab)`` of one unpadded sequence."""
    kwargs: Dict[str, Any] = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    try:
        if "use_cache" in inspect.signature(model.forward).parameters:
            kwargs["use_cache"] = False
    except (TypeError, ValueError):
        pass
    output = model(**kwargs)
    logits = getattr(output, "logits", output[0] if isinstance(output, (tuple, list)) else output)
    if not isinstance(logits, Tensor) or logits.dim() != 3 or logits.shape[:2] != ids.shape:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(
            f"{type(model).__name__} returned logits of shape {shape}, not (batch, tokens, vocabulary): "
            "`model` must be a causal language model with its head (e.g. AutoModelForCausalLM)."
        )
    return logits


def _check_causal(probabilities: Tensor, model: torch.nn.Module) -> None:
    above = torch.triu(probabilities[0].detach().float(), diagonal=1).abs().amax()
    if float(above) > CAUSAL_TOLERANCE:
        raise ValueError(
            f"{type(model).__name__}'s attention is not causal (a query attends to a later key, weight "
            f"{float(above):.3g}): LLMAttnGradShapley explains decoder-only causal language models "
            "(GPT-2, Llama-style AutoModelForCausalLM). For a bidirectional classifier use AttnGradShapley."
        )


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
        capturer (AttentionCapture): The capture of the model (its attention modules and layers).
        ids (Tensor): ``(1, P + n_target - 1)``: the prompt's ids followed by all target ids but the last.
        targets (Tensor): ``(n_target,)``: the target ids (the last ``n_target - 1`` of ``ids`` and one more).
        layers (list[int]): The selected layers (resolved, sorted).
        weighting (str): ``"attention"`` or ``"grad_attention"``.
        need_block (bool): Also return the ``P x P`` blocks (the pairwise games).
        switch_to_eager (bool): Whether ``sdpa``/flash attention may be switched to eager for the call.
        targets_per_backward (int, optional): Target tokens per batched backward pass. Default: as many as
                    :data:`GRAD_BUDGET` allows.

    Returns:
        GenerationGames: The rows, the blocks and the log-probabilities.
    """
    model = capturer.model
    n_target = targets.shape[0]
    num_prompt = ids.shape[1] - n_target + 1
    positions = torch.arange(n_target, device=ids.device) + num_prompt - 1
    need_graph = weighting == "grad_attention"
    marker = object()
    reducer = InfluenceReducer(InfluenceRequest("raw"), len(layers), _no_positions)
    recorder = HookRecorder(capturer.modules, set(layers), reducer, True, lambda: _ACTIVE.get() is marker)
    with contextlib.ExitStack() as stack:
        stack.enter_context(model_lock(model))
        stack.enter_context(eager_attention(model, switch_to_eager))
        stack.enter_context(grad_enabled_parameters(model, need_graph))
        for handle in recorder.attach():
            stack.callback(handle.remove)
        token = _ACTIVE.set(marker)
        stack.callback(_ACTIVE.reset, token)
        with torch.enable_grad() if need_graph else torch.no_grad():
            logits = _call_model(model, ids)
            if recorder.num_calls != capturer.num_layers:
                raise RuntimeError(
                    f"The forward pass made {recorder.num_calls} attention calls, but {capturer.num_layers} "
                    "were expected: check that `model` runs each attention module once per layer."
                )
            probabilities = recorder.probabilities(layers)
            _check_causal(probabilities[0], model)
            log_probs = logits[0, positions].float().log_softmax(dim=-1)
            log_probs = log_probs.gather(1, targets.to(log_probs.device).view(-1, 1)).squeeze(1)
            if not need_graph:
                rows, block = _attention_games(probabilities, positions, num_prompt, need_block)
                return GenerationGames(rows, block, log_probs.detach(), 0)
            if not log_probs.requires_grad or not all(p.requires_grad for p in probabilities):
                raise RuntimeError(
                    "The attention is not part of an autograd graph (is the call inside "
                    "torch.inference_mode()?): the gradient weighting cannot be computed."
                )
            rows, block, runs = _gradient_games(
                probabilities, log_probs, positions, num_prompt, need_block, targets_per_backward
            )
            return GenerationGames(rows, block, log_probs.detach(), runs)


def _batched_gradients(log_probs: Tensor, probabilities: List[Tensor], seeds: Tensor) -> List[Tensor]:
    """``d (seeds[k] . log_probs) / dA`` for every row ``k`` of ``seeds``, each ``(k, *A.shape)``: one backward
    pass vectorised over the rows (``is_grads_batched``). A model with an operation that cannot be vectorised
    (e.g. a custom autograd function without vmap support) gets one backward pass per row instead, with a
    warning."""
    try:
        return list(
            torch.autograd.grad(
                log_probs, probabilities, grad_outputs=seeds, is_grads_batched=True, retain_graph=True
            )
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
    rows = [torch.autograd.grad(log_probs, probabilities, grad_outputs=seed, retain_graph=True) for seed in seeds]
    return [torch.stack([row[layer] for row in rows]) for layer in range(len(probabilities))]


def _attention_games(
    probabilities: List[Tensor], positions: Tensor, num_prompt: int, need_block: bool
) -> "tuple[Tensor, Optional[Tensor]]":
    """``M = mean_{l,h} A``: the same matrix for every target; its rows ``c_t`` and its prompt block."""
    mean = torch.stack([p[0].detach().float().mean(dim=0) for p in probabilities]).mean(dim=0)
    rows = mean[positions, :num_prompt]
    block = mean[:num_prompt, :num_prompt].unsqueeze(0) if need_block else None
    return rows, block


def _gradient_games(
    probabilities: List[Tensor],
    log_probs: Tensor,
    positions: Tensor,
    num_prompt: int,
    need_block: bool,
    targets_per_backward: Optional[int],
) -> "tuple[Tensor, Optional[Tensor], int]":
    """``M_t = mean_{l,h} A * relu(G_t)`` for every target ``t``, from batched backward passes."""
    n_target = log_probs.shape[0]
    heads, num_tokens = probabilities[0].shape[1], probabilities[0].shape[-1]
    per_target = max(1, len(probabilities) * heads * num_tokens * num_tokens)
    step = targets_per_backward or max(1, GRAD_BUDGET // per_target)
    device = probabilities[0].device
    rows = torch.zeros(n_target, num_prompt, dtype=torch.float32, device=device)
    block = (
        torch.zeros(n_target, num_prompt, num_prompt, dtype=torch.float32, device=device) if need_block else None
    )
    runs = 0
    for start in range(0, n_target, step):
        stop = min(start + step, n_target)
        chunk = torch.arange(start, stop, device=log_probs.device)
        seeds = torch.zeros(stop - start, n_target, dtype=log_probs.dtype, device=log_probs.device)
        seeds[torch.arange(stop - start), chunk] = 1.0  # one unit vector per target: d log p(y_t) / dA
        grads = _batched_gradients(log_probs, probabilities, seeds)
        runs += 1
        with torch.no_grad():
            for attention, grad in zip(probabilities, grads):
                weighted = grad[:, 0].float().clamp_(min=0).mul_(attention[0].float())  # (k, H, T, T)
                head_mean = weighted.mean(dim=1)  # (k, T, T)
                local = torch.arange(stop - start, device=device)
                rows[start:stop] += head_mean[local, positions[start:stop].to(device), :num_prompt]
                if block is not None:
                    block[start:stop] += head_mean[:, :num_prompt, :num_prompt]
            del grads
    scale = 1.0 / len(probabilities)
    return rows.mul_(scale), (block.mul_(scale) if block is not None else None), runs
