#!/usr/bin/env python3
"""Attention attribution by integrated gradients (``weighting="ig_attention"``), on the fused engine.

Hao et al. (AAAI 2021, "Self-Attention Attribution") attribute an attention matrix ``A`` by integrated
gradients along the straight path from zero attention to ``A``:

    IG(A) = A * integral_0^1 dy(alpha A)/dA dalpha  ~  A * (1/m) sum_{k=1..m} G(k/m A)

(the right Riemann sum with ``m = n_steps`` points, as in the paper; the last point, ``alpha = 1``, is the
unmodified model). Here the path scales the attention of every SELECTED layer at once (all layers by
default, one layer in the layer API, which is Hao et al.'s own set-up); unselected layers compute their
attention as usual. The selected layers' attention is the integration variable: along the path it is
``alpha`` times the attention of the unmodified input, not recomputed from the scaled states.

How the fused engine runs it, all steps in ONE forward and ONE backward pass over ``batch x n_steps`` rows
(row ``b * m + k`` is example ``b`` at ``alpha = (k + 1) / m``):

- every selected call gets, on each row, the query and key of its example's ``alpha = 1`` row (detached:
  the attention is held fixed, no gradient flows into its softmax), its own value ``V_k``, and its output
  is multiplied by ``alpha``: ``O_k = alpha (A V_k)``, the fused kernel still computes ``A V_k``;
- the gradient w.r.t. the scaled attention of row ``k`` is ``G_k = dO_k V_k^T``, so the step mean is one
  product with the steps laid along the inner axis: ``(1/m) sum_k dO_k V_k^T = [dO_1 .. dO_m][V_1 .. V_m]^T / m``.
  Each call is recorded that way (query and key of the unmodified input, the values of all steps side by
  side), and the engine's usual rebuild reduces ``A * relu(mean_k G_k)`` a block of query rows at a time;
  nothing of size ``T x T`` per step is ever held.

Scaling all selected layers together costs one batched pass of ``batch x m`` rows whatever the number of
layers; scaling one layer at a time, as Hao et al. do, costs that once per layer (``L`` times more, e.g.
12x for BERT-base) and gives each layer's own integral, available here through the layer API. Completeness
holds for the joint path: ``sum over selected layers and entries of A * integral = y(A) - y(0)``, with the
selected layers' attention set to zero at the start of the path.
"""

import contextlib
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    ContextManager,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    cast,
)

import torch
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley.capture.eager import _configs_with_attn_implementation, pretrained_roots

if TYPE_CHECKING:
    from captum_attn_shapley.capture.fused import FusedRecorder

#: Default number of path points (Hao et al. use 20).
DEFAULT_STEPS = 20


def check_n_steps(n_steps: Any, argument: str = "n_steps") -> int:
    r"""
    Validates the number of points of the integrated-gradients path.

    Args:
        n_steps (Any): The given value.
        argument (str): The argument's name, for the message.

    Returns:
        int: ``n_steps``.
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(
            f"{argument} must be a positive int (the points of the attention path, e.g. {DEFAULT_STEPS}), "
            f"got {n_steps!r}."
        )
    return n_steps


def check_internal_batch_size(size: Any, argument: str = "internal_batch_size") -> Optional[int]:
    r"""
    Validates the largest number of rows (examples x path points) of one pass.

    Args:
        size (Any): None (all rows in one pass) or a positive int.
        argument (str): The argument's name, for the message.

    Returns:
        int or None: ``size``.
    """
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(
            f"{argument} must be None (one pass) or a positive int (rows of one pass: examples x n_steps), "
            f"got {size!r}."
        )
    return size


#: Weightings that run on the fused engine only: an eager Hugging Face model is switched to ``sdpa`` for them.
FUSED_ONLY_WEIGHTINGS = ("ig_attention", "lrp_attention")


def fused_engine_for(
    request: Any, engine: str, model: Module, modules: Sequence[Module], lock: Any
) -> Tuple[str, ContextManager[None]]:
    r"""
    The engine of a pass, and what to enter around it: a weighting of :data:`FUSED_ONLY_WEIGHTINGS` on a Hugging
    Face model in eval mode that runs eager attention (the package's demo models do) gets the fused engine,
    with the model switched to ``sdpa`` for the call (the same attention, computed by the fused kernel;
    restored afterwards, under the model's capture lock). Anything else is left as it is.

    Args:
        request (captum_attn_shapley.capture.InfluenceRequest): What the pass returns.
        engine (str): The engine chosen for the call.
        model (Module): The model.
        modules (sequence of Module): Its attention modules.
        lock (threading.RLock): The model's capture lock (:func:`~.one_pass.model_lock`).

    Returns:
        tuple[str, ContextManager]: The engine and the context to enter for the pass.
    """
    if request.weighting not in FUSED_ONLY_WEIGHTINGS or engine == "fused":
        return engine, contextlib.nullcontext()
    roots = pretrained_roots(model)
    if (
        not roots
        or any(module.training for module in modules)
        or not all(hasattr(module, "config") for module in modules)
    ):
        return engine, contextlib.nullcontext()
    return "fused", _sdpa_attention(model, roots, lock, request.weighting)


@contextlib.contextmanager
def _sdpa_attention(model: Module, roots: List[Any], lock: Any, weighting: str) -> Iterator[None]:
    with lock:
        configs = [(cfg, cfg._attn_implementation) for cfg in _configs_with_attn_implementation(model)]
        previous = [(root, root.config._attn_implementation) for root in roots]
        try:
            for root in roots:
                try:
                    root.set_attn_implementation("sdpa")
                except (ValueError, ImportError) as error:
                    raise RuntimeError(
                        f"weighting={weighting!r} runs in the fused attention kernel, and {type(model).__name__} "
                        f"cannot switch to sdpa attention ({error}); use weighting='grad_attention'."
                    ) from error
            yield
        finally:
            for root, impl in previous:
                root.set_attn_implementation(impl)
            for cfg, impl in configs:  # sub-configs the roots did not restore
                if cfg._attn_implementation != impl:
                    cfg._attn_implementation_internal = impl


def check_path_pass(request: Any, engine: str, model: Module, has_states: bool) -> int:
    r"""
    The path's points of a capture pass (1 without ``"ig_attention"``), after checking that the pass can run it.

    Args:
        request (captum_attn_shapley.capture.InfluenceRequest): What the pass returns.
        engine (str): ``"fused"`` or ``"hooks"``.
        model (Module): The model (for the message).
        has_states (bool): Whether token states are recorded too.

    Returns:
        int: ``n_steps`` for ``"ig_attention"``, else 1.
    """
    if request.weighting != "ig_attention":
        return 1
    if engine != "fused":
        raise RuntimeError(
            "weighting='ig_attention' scales the attention inside the fused attention call of a Hugging Face "
            f"model in eval mode whose attention runs through transformers' registry; {type(model).__name__} is "
            "captured by hooks (attention outside the registry, named attention modules, or training mode). "
            "Call model.eval(), or use weighting='grad_attention'."
        )
    if has_states:
        raise ValueError("weighting='ig_attention' does not record token states: use weighting='attention'.")
    return int(request.n_steps)


def check_fused_calls(request: Any, model: Module) -> None:
    r"""
    Raises for a pass of a weighting of :data:`FUSED_ONLY_WEIGHTINGS` in which the fused engine saw no attention
    call (the model computes its attention outside transformers' registry: the hook engine cannot run it).

    Args:
        request (captum_attn_shapley.capture.InfluenceRequest): What the pass returns.
        model (Module): The model (for the message).
    """
    if request.weighting in FUSED_ONLY_WEIGHTINGS:
        raise RuntimeError(
            f"weighting={request.weighting!r} runs in the fused attention kernel, but {type(model).__name__} "
            "computes its attention outside transformers' attention registry (e.g. DeBERTa-v2, MPNet, a "
            "custom model): use weighting='grad_attention'."
        )


def path_points(n_steps: int, dtype: torch.dtype = torch.float32, device: Any = None) -> Tensor:
    r"""
    The path's points ``alpha_k = k / m``, ``k = 1 .. m`` (right Riemann sum; the last one is 1).

    Args:
        n_steps (int): ``m``.
        dtype (torch.dtype): Their dtype.
        device (torch.device, optional): Their device.

    Returns:
        Tensor: Shape ``(m,)``.
    """
    return torch.arange(1, n_steps + 1, dtype=dtype, device=device) / n_steps


def expand_rows(values: Sequence[Any], batch: int, steps: int) -> Tuple[Any, ...]:
    r"""
    Repeats every tensor whose first axis is the batch ``steps`` times, example by example (row
    ``b * steps + k`` is example ``b``); anything else is passed unchanged.

    Args:
        values (sequence): Inputs or additional forward arguments.
        batch (int): Examples.
        steps (int): Path points.

    Returns:
        tuple: The expanded values.
    """
    return tuple(
        v.repeat_interleave(steps, dim=0) if isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == batch else v
        for v in values
    )


def unmodified_rows(tensor: Tensor, steps: int) -> Tensor:
    r"""
    Each example's ``alpha = 1`` row (the unmodified model) of a tensor of ``batch x steps`` rows.

    Args:
        tensor (Tensor): Shape ``(batch * steps, ...)``.
        steps (int): Path points.

    Returns:
        Tensor: Shape ``(batch, ...)``.
    """
    return tensor[steps - 1 :: steps]


def unmodified_inputs(model_inputs: Dict[str, Any], steps: int) -> Dict[str, Any]:
    """The transformer's inputs of the unmodified rows: the tensors with as many rows as the ids (or pixels,
    or embeddings) of the pass, ``batch x steps``."""
    first = next(
        (
            model_inputs[k]
            for k in ("input_ids", "pixel_values", "inputs_embeds")
            if model_inputs.get(k) is not None
        ),
        None,
    )
    if not isinstance(first, Tensor) or first.dim() == 0 or first.shape[0] % steps:
        return model_inputs
    rows = first.shape[0]
    return {
        name: unmodified_rows(value, steps)
        if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == rows
        else value
        for name, value in model_inputs.items()
    }


def side_by_side(tensor: Tensor, steps: int) -> Tensor:
    """``(batch * m, heads, T, d)`` to ``(batch, heads, T, m * d)``, step ``k`` in columns ``k d .. (k+1) d``."""
    rows, heads, tokens, dim = tensor.shape
    stacked = tensor.reshape(rows // steps, steps, heads, tokens, dim).permute(0, 2, 3, 1, 4)
    return stacked.reshape(rows // steps, heads, tokens, steps * dim).float()


def output_gradient(grad: Tensor, steps: int) -> Tensor:
    r"""
    ``dO`` of a recorded call as :meth:`~.fused.FusedRecorder.reduce` reads it, from the gradient of the call's
    output: for the path's calls (``steps > 1``) the points' ``dO_k / m`` side by side, whose product with the
    stacked values is the step mean ``(1/m) sum_k dO_k V_k^T``.

    Args:
        grad (Tensor): ``(rows, queries, heads, dim)`` (the output's layout).
        steps (int): The path's points ``m`` (1: not a path's call).

    Returns:
        Tensor: ``(rows / m, heads, queries, m * dim)``.
    """
    if steps == 1:
        return grad.transpose(1, 2)
    return side_by_side(grad.transpose(1, 2), steps).div_(steps)


def integrated_attend(
    recorder: "FusedRecorder",
    module: Module,
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
    kernel: Callable[..., Any],
    steps: int,
) -> Tensor:
    r"""
    Runs one selected call of the path's pass: ``O_k = alpha_k * kernel(Q_1, K_1, V_k)`` on every row, with
    ``Q_1, K_1`` the query and key of the example's unmodified row; records it for the rebuild.

    Args:
        recorder (FusedRecorder): The capture.
        module (Module): The attention module.
        args, kwargs: The call's arguments (query, key, value, mask, ...).
        kernel (Callable): The original attention function.
        steps (int): Path points ``m``.

    Returns:
        Tensor: The scaled output ``(batch * m, T, heads, d)``.
    """
    from captum_attn_shapley.capture.fused import AttentionCall, _call_of

    query, key, value = args[0], args[1], args[2]
    if query.shape[0] % steps:
        raise RuntimeError(
            f"An attention call of {query.shape[0]} rows in a pass of {steps} path points: the forward function "
            "must pass every example's rows to the model unchanged (one row per example and point)."
        )
    batch = query.shape[0] // steps
    layer = recorder.num_calls
    recorder.num_calls += 1
    recorder.batch_size, recorder.num_tokens = batch, key.shape[2]
    fixed_query = unmodified_rows(query.detach(), steps)
    fixed_key = unmodified_rows(key.detach(), steps)
    rest = args[3:]
    output = cast(
        Tensor,
        kernel(
            module,
            fixed_query.repeat_interleave(steps, dim=0),
            fixed_key.repeat_interleave(steps, dim=0),
            value,
            *rest,
            **kwargs,
        )[0],
    )
    alphas = path_points(steps, output.dtype, output.device).repeat(batch).view(-1, 1, 1, 1)
    output = output * alphas
    if not output.requires_grad:
        output.requires_grad_(True)  # a frozen model: the graph starts here
    call = _call_of(module, (fixed_query, fixed_key, value) + rest, kwargs)
    mask = call.mask
    if mask is not None and mask.shape[0] == batch * steps:
        mask = unmodified_rows(mask, steps)
    stacked = side_by_side(value.detach(), steps).to(call.value.dtype)
    recorder.calls[layer] = AttentionCall(call.query, call.key, stacked, mask, call.causal, call.scaling, output)
    return output
