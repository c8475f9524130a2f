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
import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley._utils.forward import forward_args_tuple, logits_from_output
from captum_attn_shapley._utils.targets import TargetLike, normalize_target

#: Where the attention probabilities sit in an attention module's output: an index into
#: the output tuple, ``None`` when the output is the probability tensor itself, or a
#: callable that extracts it.
OutputSelector = Union[int, None, Callable[[Any], Optional[Tensor]]]

ModuleSpec = Union[str, Module]

_EAGER = "eager"


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


def _first_tensor(output: Any) -> Optional[Tensor]:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and len(output) > 0 and isinstance(output[0], Tensor):
        return output[0]
    return getattr(output, "last_hidden_state", None)


def _modules_referenced_by(func: Any, depth: int = 0) -> List[Module]:
    """Modules a callable can reach: bound ``self``, partial arguments, closure cells, globals."""
    if depth > 3 or func is None:
        return []
    if isinstance(func, Module):
        return [func]
    found: List[Module] = []
    if isinstance(func, functools.partial):
        for obj in (func.func, *func.args, *func.keywords.values()):
            found += _modules_referenced_by(obj, depth + 1)
        return found
    bound_self = getattr(func, "__self__", None)
    if isinstance(bound_self, Module):
        return [bound_self]
    wrapped = getattr(func, "__wrapped__", None)
    if wrapped is not None:
        found += _modules_referenced_by(wrapped, depth + 1)
    code = getattr(func, "__code__", None)
    for cell in getattr(func, "__closure__", None) or ():
        try:
            contents = cell.cell_contents
        except ValueError:  # empty cell
            continue
        if isinstance(contents, Module) or callable(contents):
            found += _modules_referenced_by(contents, depth + 1)
    if code is not None:
        func_globals = getattr(func, "__globals__", {})
        for name in code.co_names:
            obj = func_globals.get(name)
            if isinstance(obj, Module):
                found.append(obj)
    return found


def find_model(forward_func: Callable, model: Optional[Module] = None) -> Module:
    r"""
    Finds the transformer behind a Captum-style forward function.

    Args:
        forward_func (Callable): The model itself, a bound method of it, a
                    ``functools.partial`` around it, or a function that calls it (as a
                    closure variable or a module-level global).
        model (Module, optional): The model, given explicitly; returned as is.

    Returns:
        Module: The model whose attention is captured.
    """
    if model is not None:
        if not isinstance(model, Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
        return model
    candidates = _modules_referenced_by(forward_func)
    # Keep only the outermost modules (drop those contained in another candidate).
    unique: List[Module] = []
    for cand in candidates:
        if any(cand is u for u in unique):
            continue
        unique.append(cand)
    outer = [c for c in unique if not any(o is not c and any(sub is c for sub in o.modules()) for o in unique)]
    if len(outer) == 1:
        return outer[0]
    what = "no torch.nn.Module" if not outer else f"{len(outer)} different modules"
    raise ValueError(
        f"Could not find the model behind forward_func: it references {what}. "
        "Pass the model explicitly, e.g. AttnGradShapley(forward_func, model=model)."
    )


def _hf_attention_specs(model: Module) -> List[Tuple[Optional[type], Optional[str], int, Optional[str]]]:
    """(class, class-name suffix, output index, layer-name filter) from ``_can_record_outputs``."""
    specs: List[Tuple[Optional[type], Optional[str], int, Optional[str]]] = []
    for sub in model.modules():
        recordable = getattr(type(sub), "_can_record_outputs", None)
        if not isinstance(recordable, dict) or "attentions" not in recordable:
            continue
        entries = recordable["attentions"]
        for entry in entries if isinstance(entries, (list, tuple)) else [entries]:
            if isinstance(entry, type):
                specs.append((entry, None, 1, None))
            elif isinstance(entry, str):
                specs.append((None, entry, 1, None))
            elif hasattr(entry, "target_class") or hasattr(entry, "class_name"):
                specs.append(
                    (
                        getattr(entry, "target_class", None),
                        getattr(entry, "class_name", None),
                        int(getattr(entry, "index", 1)),
                        getattr(entry, "layer_name", None),
                    )
                )
        break  # the outermost declaring model describes its whole tree
    return specs


def discover_attention_modules(
    model: Module, attention_modules: Optional[Sequence[ModuleSpec]] = None, output_selector: OutputSelector = 1
) -> List[Tuple[str, Module, OutputSelector]]:
    r"""
    Lists the self-attention modules of a model, in forward (layer) order.

    Args:
        model (Module): The transformer.
        attention_modules (sequence of str or Module, optional): The attention modules,
                    named as in ``model.named_modules()`` or given as objects. Default:
                    discovered from the Hugging Face ``_can_record_outputs`` declaration
                    (BERT, RoBERTa, DistilBERT, ViT, DeiT and most other HF encoders).
        output_selector (int, None or Callable): For user-named modules, where the
                    attention probabilities are in the module's output: an index into
                    its output tuple (default 1, the Hugging Face convention), ``None``
                    when the output is the probability tensor itself (e.g. a dropout
                    applied to the probabilities), or a callable.

    Returns:
        list of (name, module, selector): One entry per layer.
    """
    named = list(model.named_modules())
    if attention_modules is not None:
        if len(attention_modules) == 0:
            raise ValueError("`attention_modules` is empty: name at least one attention module.")
        by_name = dict(named)
        result = []
        for spec in attention_modules:
            if isinstance(spec, str):
                if spec not in by_name:
                    hint = [n for n in by_name if "attn" in n.lower() or "attention" in n.lower()]
                    raise ValueError(
                        f"No module named {spec!r} in {type(model).__name__}. "
                        f"Attention-like modules are: {hint[:8]}{' ...' if len(hint) > 8 else ''}"
                    )
                result.append((spec, by_name[spec], output_selector))
            elif isinstance(spec, Module):
                name = next((n for n, m in named if m is spec), None)
                if name is None:
                    raise ValueError(
                        f"The given {type(spec).__name__} module is not part of {type(model).__name__}."
                    )
                result.append((name, spec, output_selector))
            else:
                raise TypeError(
                    f"attention_modules entries must be module names or modules, got {type(spec).__name__}."
                )
        return result
    found: List[Tuple[str, Module, OutputSelector]] = []
    for cls, suffix, index, layer_name in _hf_attention_specs(model):
        for name, module in named:
            if cls is not None and not isinstance(module, cls):
                if suffix is None or not name.endswith(suffix):
                    continue
            elif cls is None and (suffix is None or not name.endswith(suffix)):
                continue
            if layer_name is not None and f".{layer_name.strip('.')}." not in f"{name}.":
                continue
            if not any(module is f[1] for f in found):
                found.append((name, module, index))
    if not found:
        raise ValueError(
            f"Could not discover the attention modules of {type(model).__name__}: it is not a "
            "Hugging Face model that declares them. Name them explicitly, e.g. "
            "attention_modules=['encoder.layers.0.attn', ...], and say where the probabilities are in "
            "their output with attention_output_index (an index, or None if the module outputs them)."
        )
    order = {id(m): i for i, (_, m) in enumerate(named)}
    found.sort(key=lambda f: order[id(f[1])])
    return found


def _select(output: Any, selector: OutputSelector) -> Optional[Tensor]:
    if callable(selector):
        return selector(output)
    if selector is None:
        return output if isinstance(output, Tensor) else None
    if isinstance(output, (tuple, list)) and len(output) > selector:
        return output[selector]
    if isinstance(output, Tensor) and selector == 0:
        return output
    return None


def _check_length(model: Module, input_ids: Any) -> None:
    """Over-long text inputs get a clear error instead of an index error deep in the model."""
    config = getattr(model, "config", None)
    limit = getattr(config, "max_position_embeddings", None)
    if isinstance(input_ids, Tensor) and input_ids.dim() == 2 and isinstance(limit, int):
        if input_ids.shape[1] > limit:
            raise ValueError(
                f"The input has {input_ids.shape[1]} tokens but {type(model).__name__} accepts at most "
                f"{limit}. Truncate it, e.g. tokenizer(texts, truncation=True, max_length={limit})."
            )


def _check_image_size(model: Module, inputs: Dict[str, Any]) -> None:
    """Images of the wrong size get an error that says which size the model expects."""
    pixels = inputs.get("pixel_values")
    config = getattr(model, "config", None)
    size = getattr(config, "image_size", None)
    if not isinstance(pixels, Tensor) or size is None or inputs.get("interpolate_pos_encoding"):
        return
    expected = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    channels = getattr(config, "num_channels", None)
    if pixels.dim() != 4:
        raise ValueError(
            f"pixel_values must be a batch of images (batch, channels, height, width); got shape "
            f"{tuple(pixels.shape)}. Add the batch dimension with pixel_values.unsqueeze(0)."
        )
    if tuple(pixels.shape[-2:]) != expected or (isinstance(channels, int) and pixels.shape[1] != channels):
        raise ValueError(
            f"Images of shape {tuple(pixels.shape[1:])} do not fit {type(model).__name__}, which expects "
            f"({channels}, {expected[0]}, {expected[1]}). Resize them, e.g. with the model's image "
            "processor (processor(images, return_tensors='pt')), or pass interpolate_pos_encoding=True."
        )


def _configs_with_attn_implementation(model: Module) -> List[Any]:
    configs: List[Any] = []
    for sub in model.modules():
        cfg = getattr(sub, "config", None)
        if cfg is not None and hasattr(cfg, "_attn_implementation"):
            if not any(cfg is c for c in configs):
                configs.append(cfg)
    return configs


def _pretrained_roots(model: Module) -> List[Any]:
    """Outermost submodules that can switch their attention implementation (HF models)."""
    roots: List[Any] = []
    for sub in model.modules():
        if callable(getattr(sub, "set_attn_implementation", None)):
            if not any(any(s is sub for s in r.modules()) for r in roots):
                roots.append(sub)
    return roots


@contextlib.contextmanager
def eager_attention(model: Module, switch: bool = True) -> Iterator[None]:
    r"""
    Context manager that makes a Hugging Face model use eager attention for its body.

    ``sdpa`` and flash attention never materialise the attention probabilities, so
    ``output_attentions`` and forward hooks see nothing. Inside this context the model
    runs with ``attn_implementation="eager"``; the original implementation is restored on
    exit, also when an exception is raised.

    Args:
        model (Module): The model (any module; non-Hugging Face modules are left alone).
        switch (bool): If False, raise a clear error instead of switching.
    """
    configs = _configs_with_attn_implementation(model)
    previous = [(cfg, cfg._attn_implementation) for cfg in configs]
    needs = [cfg for cfg, impl in previous if impl not in (_EAGER, None)]
    if not needs:
        yield
        return
    impls = sorted({str(cfg._attn_implementation) for cfg in needs})
    if not switch:
        raise RuntimeError(
            f"{type(model).__name__} uses {'/'.join(impls)} attention, which does not expose attention "
            "probabilities. Load it with attn_implementation='eager' (e.g. "
            "AutoModelForSequenceClassification.from_pretrained(name, attn_implementation='eager')), call "
            "model.set_attn_implementation('eager'), or allow switching with switch_to_eager=True."
        )
    roots = _pretrained_roots(model)
    if not roots:
        raise RuntimeError(
            f"{type(model).__name__} uses {'/'.join(impls)} attention and has no set_attn_implementation "
            "to switch it to eager. Load the model with attn_implementation='eager'."
        )
    root_previous = [(r, r.config._attn_implementation) for r in roots]
    try:
        for root in roots:
            root.set_attn_implementation(_EAGER)
        still = [cfg for cfg in configs if cfg._attn_implementation not in (_EAGER, None)]
        if still:
            raise RuntimeError(
                f"Could not switch {type(model).__name__} to eager attention; load it with "
                "attn_implementation='eager'."
            )
        yield
    finally:
        for root, impl in root_previous:
            root.set_attn_implementation(impl)
        for cfg, impl in previous:  # sub-configs the roots did not restore
            if cfg._attn_implementation != impl:
                cfg._attn_implementation_internal = impl


@contextlib.contextmanager
def _grad_enabled_parameters(model: Module, needed: bool) -> Iterator[None]:
    """Temporarily lets a frozen model build an autograd graph; flags are restored on exit."""
    frozen = [p for p in model.parameters() if not p.requires_grad] if needed else []
    if needed and len(frozen) < sum(1 for _ in model.parameters()):
        frozen = []  # some parameters already require grad: the graph is built anyway
    try:
        for p in frozen:
            p.requires_grad_(True)
        yield
    finally:
        for p in frozen:
            p.requires_grad_(False)


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
        forward_func: Callable,
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
            _check_length(module, model_inputs.get("input_ids"))
            _check_image_size(module, model_inputs)

        with contextlib.ExitStack() as stack:
            stack.enter_context(eager_attention(self.model, self.switch_to_eager))
            stack.enter_context(_grad_enabled_parameters(self.model, need_graph))
            for idx, (name, module, selector) in enumerate(self.modules):
                hooks.append(module.register_forward_hook(make_hook(idx, name, selector)))
            for idx, module in enumerate(state_list):
                hooks.append(module.register_forward_hook(make_state_hook(idx)))
            # The inputs are read where the transformer itself receives them, inside any wrapper.
            transformer = next(iter(_pretrained_roots(self.model)), self.model)
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
