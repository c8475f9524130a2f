#!/usr/bin/env python3
"""AttnLRP's propagation rules (Achtibat et al., ICML 2024) as a modified backward pass.

Layer-wise relevance propagation written as gradient x input: the forward pass is the model's own (same
values, to the bit), and the backward pass of a few operations is replaced so that ``x * dy/dx`` at the
model's input embeddings is the relevance the rules propagate (see the AttnLRP page of the documentation):

- **linear layers** (and every sum, residual connection, convolution): the plain gradient (the epsilon rule
  with the biases absorbing their share);
- **LayerNorm / RMSNorm**: the identity rule on the normalisation, i.e. the normalising denominator treated as a
  constant (``y = w (x - mean x) / stop_grad(std x) + b``; for RMSNorm the gradient is ``y / x``);
- **element-wise non-linearities** (GELU, SiLU, tanh, ReLU, ... as modules or as ``torch`` functions): the
  identity rule, the relevance passes unchanged: the backward multiplies by ``f(x) / (x + 1e-10)``;
- **element-wise products** of a gated MLP (``act(gate(x)) * up(x)``, Llama-style): the uniform rule, each factor
  gets half (its gradient halved);
- **the attention** (``softmax(Q K^T) V``): the uniform rule on both bilinear products and the plain softmax
  gradient (the softmax rule ``R_in = x (R_out - s sum R_out)`` is exactly gradient x input); applied by the fused
  capture's attention backward (:func:`~.fused_backward.attention_backward` with ``lrp=True``).

The rules apply per call: :func:`lrp_rules` registers process-wide module hooks (shared by concurrent calls and
counted under a lock, removed by the last) and a ``torch`` function mode, both acting only inside the contexts
that entered the rules (a :class:`contextvars.ContextVar`); the model itself is never modified.
"""

import contextlib
import contextvars
import threading
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Optional, Set, Tuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils.hooks import RemovableHandle

#: The relevance factor of the bilinear products (the uniform rule: each of the two factors gets half).
UNIFORM = 0.5

#: Stabiliser of the identity rule's ratio ``f(x) / (x + EPSILON)`` (the authors' library's value).
EPSILON = 1e-10

#: Element-wise non-linearities of ``torch.nn`` that get the identity rule.
_TORCH_ACTIVATIONS: Tuple[type, ...] = (
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.Mish,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Softsign,
    nn.Tanhshrink,
)

#: The same as ``torch`` functions (a model's head may call ``torch.tanh`` directly).
_FUNCTIONS: Set[Callable[..., Any]] = {
    torch.tanh,
    Tensor.tanh,
    torch.relu,
    Tensor.relu,
    F.gelu,
    F.silu,
    F.relu,
    F.mish,
}

_RULES: "contextvars.ContextVar[Optional[_RuleState]]" = contextvars.ContextVar(
    "captum_attn_shapley_lrp_rules", default=None
)
_GUARD = threading.Lock()
_USERS = 0
_HANDLES: List[RemovableHandle] = []


class _RuleState:
    """What one call's rules need: the factors of gated products seen so far (by module id)."""

    def __init__(self) -> None:
        self.halved: Set[int] = set()


def is_layer_norm(module: nn.Module) -> bool:
    """Whether ``module`` is a LayerNorm (``torch.nn.LayerNorm`` or a subclass)."""
    return isinstance(module, nn.LayerNorm)


def is_rms_norm(module: nn.Module) -> bool:
    """Whether ``module`` is an RMSNorm (``torch.nn.RMSNorm`` or a class named ``*RMSNorm``)."""
    return isinstance(module, getattr(nn, "RMSNorm", ())) or type(module).__name__.endswith("RMSNorm")


def is_activation(module: nn.Module) -> bool:
    """Whether ``module`` is an element-wise non-linearity (``torch.nn``'s or ``transformers.activations``')."""
    return isinstance(module, _TORCH_ACTIVATIONS) or type(module).__module__ == "transformers.activations"


def unsupported_norms(model: nn.Module) -> List[str]:
    r"""
    The normalisation modules of ``model`` that AttnLRP has no rule for.

    Args:
        model (Module): The model.

    Returns:
        list[str]: ``"name (Class)"`` of every module whose class name contains ``Norm`` but is neither a
        LayerNorm nor an RMSNorm (e.g. batch or group normalisation): empty when every norm is handled.
    """
    found = []
    for name, module in model.named_modules():
        if "Norm" in type(module).__name__ and not (is_layer_norm(module) or is_rms_norm(module)):
            found.append(f"{name} ({type(module).__name__})")
    return found


class _IdentityRule(torch.autograd.Function):
    """Returns ``output``; the backward multiplies the incoming gradient by the saved ratio."""

    @staticmethod
    def forward(ctx: Any, inputs: Tensor, output: Tensor, ratio: Tensor) -> Tensor:
        ctx.save_for_backward(ratio)
        return output

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tuple[Optional[Tensor], None, None]:
        (ratio,) = ctx.saved_tensors
        return grad * ratio, None, None


class _LayerNormRule(torch.autograd.Function):
    """Returns ``output``; the backward is the LayerNorm's with the standard deviation held constant."""

    @staticmethod
    def forward(ctx: Any, inputs: Tensor, output: Tensor, scale: Tensor, dims: Tuple[int, ...]) -> Tensor:
        ctx.save_for_backward(scale)
        ctx.dims = dims
        return output

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tuple[Optional[Tensor], None, None, None]:
        (scale,) = ctx.saved_tensors  # weight / std, broadcast over the normalised dims
        scaled = grad * scale
        return scaled - scaled.mean(dim=ctx.dims, keepdim=True), None, None, None


class _ScaleGradient(torch.autograd.Function):
    """The identity in the forward pass; the backward multiplies the gradient by a constant."""

    @staticmethod
    def forward(ctx: Any, inputs: Tensor, factor: float) -> Tensor:
        ctx.factor = factor
        return inputs.view_as(inputs)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tuple[Tensor, None]:
        return grad * ctx.factor, None


def scale_gradient(inputs: Tensor, factor: float) -> Tensor:
    """``inputs`` (same values) whose gradient is multiplied by ``factor`` (the uniform rule's 1/2 and 1/4)."""
    if not inputs.requires_grad or factor == 1.0:
        return inputs
    return cast(Tensor, _ScaleGradient.apply(inputs, factor))  # type: ignore[no-untyped-call]


def identity_rule(inputs: Tensor, output: Tensor, factor: float = 1.0) -> Tensor:
    r"""
    The identity rule of an element-wise function ``y = f(x)``: the backward multiplies the incoming gradient
    by ``factor * f(x) / (x + EPSILON)``, so that ``x * dx = factor * y * dy`` (up to the stabiliser).

    Args:
        inputs (Tensor): ``x``.
        output (Tensor): ``y = f(x)``, same shape.
        factor (float): An extra factor (the uniform rule of a product the output feeds: 0.5).

    Returns:
        Tensor: ``y`` (the same values), with the rule's backward.
    """
    if not output.is_floating_point() or output.shape != inputs.shape or not inputs.requires_grad:
        return output
    ratio = inputs.detach().add(EPSILON)  # as the authors' library: f(x) / (x + eps)
    torch.div(output.detach(), ratio, out=ratio)
    if factor != 1.0:
        ratio.mul_(factor)
    return cast(Tensor, _IdentityRule.apply(inputs, output.detach(), ratio))  # type: ignore[no-untyped-call]


def layer_norm_rule(module: nn.LayerNorm, inputs: Tensor, output: Tensor) -> Tensor:
    r"""
    The identity rule of a LayerNorm: ``y = w (x - mean x) / std x + b`` with ``std x`` held constant (the mean
    subtraction is linear and keeps its gradient): ``dx = g - mean g`` with ``g = w dy / std x``.

    Returns:
        Tensor: ``y`` (the same values), with the rule's backward.
    """
    if not inputs.requires_grad:
        return output
    dims = tuple(range(-len(module.normalized_shape), 0))
    x = inputs.detach().float()
    _, _, scale = torch.native_layer_norm(x, list(module.normalized_shape), None, None, module.eps)  # 1 / std
    if module.weight is not None:
        scale = scale * module.weight.detach().float()
    rule = _LayerNormRule.apply
    return cast(Tensor, rule(inputs, output.detach(), scale.to(inputs.dtype), dims))  # type: ignore[no-untyped-call]


def _module_hook(module: nn.Module, args: Tuple[Any, ...], output: Any) -> Any:
    state = _RULES.get()
    if state is None or not args or not isinstance(args[0], Tensor) or not isinstance(output, Tensor):
        return None
    inputs = args[0]
    if is_layer_norm(module):
        return layer_norm_rule(module, inputs, output)  # type: ignore[arg-type]
    factor = UNIFORM if id(module) in state.halved else 1.0
    if is_rms_norm(module) or is_activation(module):  # RMSNorm: y_d = w_d x_d / rms(x), rms constant: y / x
        return identity_rule(inputs, output, factor)
    if factor != 1.0:  # the other factor of a gated product (a linear layer): half its gradient
        return scale_gradient(output, factor)
    return None


def _module_pre_hook(module: nn.Module, args: Tuple[Any, ...]) -> None:
    state = _RULES.get()
    if state is None:
        return
    parts = [getattr(module, name, None) for name in ("gate_proj", "up_proj", "down_proj", "act_fn")]
    if all(isinstance(part, nn.Module) for part in parts):  # a gated MLP: down(act(gate(x)) * up(x))
        state.halved.update((id(parts[1]), id(parts[3])))


class _FunctionRules(TorchFunctionMode):
    """The identity rule on element-wise non-linearities called as ``torch`` functions."""

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: Tuple[Any, ...] = (),
        kwargs: Optional[Dict[str, Any]] = None,
    ) -> Any:
        output = func(*args, **(kwargs or {}))
        if func in _FUNCTIONS and args and isinstance(args[0], Tensor) and isinstance(output, Tensor):
            if _RULES.get() is not None and args[0].requires_grad:
                return identity_rule(args[0], output)
        return output


@contextlib.contextmanager
def lrp_rules() -> Iterator[None]:
    r"""
    Applies AttnLRP's rules to every model run in the current context (thread) until exit; other threads
    and contexts run unchanged. The attention's rules are applied by the fused capture itself.

    Examples::

        >>> with lrp_rules():
        ...     logits = model(input_ids).logits   # same values; LRP backward
    """
    global _USERS
    with _GUARD:
        if _USERS == 0:
            module_hooks = nn.modules.module
            _HANDLES.append(module_hooks.register_module_forward_pre_hook(_module_pre_hook))
            _HANDLES.append(module_hooks.register_module_forward_hook(_module_hook))
        _USERS += 1
    token = _RULES.set(_RuleState())
    try:
        with _FunctionRules():
            yield
    finally:
        _RULES.reset(token)
        with _GUARD:
            _USERS -= 1
            if _USERS == 0:
                while _HANDLES:
                    _HANDLES.pop().remove()


def rules_active() -> bool:
    """Whether the current context runs under :func:`lrp_rules`."""
    return _RULES.get() is not None


def lrp_pass(weighting: str, engine: str) -> ContextManager[None]:
    r"""
    The rules a capture pass runs under: :func:`lrp_rules` for the ``"lrp_attention"`` weighting (AttnLRP's
    backward), else none.

    Args:
        weighting (str): The capture's weighting.
        engine (str): Its engine (``"fused"`` or ``"hooks"``).

    Returns:
        ContextManager: To enter around the forward and backward passes.

    Raises:
        ValueError: For ``"lrp_attention"`` on the hook engine, which has no AttnLRP attention backward.
    """
    if weighting != "lrp_attention":
        return contextlib.nullcontext()
    if engine != "fused":
        raise ValueError(
            "weighting='lrp_attention' (AttnLRP's backward) needs the fused capture: a Hugging Face model in eval "
            "mode whose attention runs through transformers' registry (sdpa, or eager switched to sdpa), with "
            "engine='auto' or 'fused'; this call would use the hook engine (engine='hooks', named "
            "attention_modules, training mode, or attention outside the registry such as DeBERTa-v2 or MPNet). "
            "Call model.eval() and use engine='auto', or another method for such models."
        )
    return lrp_rules()
