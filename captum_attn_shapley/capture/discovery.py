#!/usr/bin/env python3
"""Model discovery: the transformer behind a forward function, its attention modules, its config.

Finds the underlying :class:`torch.nn.Module` of a Captum-style ``forward_func`` and its attention
modules (Hugging Face BERT, RoBERTa, DistilBERT, ViT, DeiT and any model that declares its attention
modules through ``_can_record_outputs``; any other model when the user names the modules).
"""

import functools
import inspect
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

from torch import Tensor
from torch.nn import Module

#: Where the attention probabilities sit in an attention module's output: an index into
#: the output tuple, ``None`` when the output is the probability tensor itself, or a
#: callable that extracts it.
OutputSelector = Union[int, None, Callable[[Any], Optional[Tensor]]]

ModuleSpec = Union[str, Module]

_EAGER = "eager"


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


def find_model(forward_func: Callable[..., Any], model: Optional[Module] = None) -> Module:
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


def _hf_attention_specs(
    model: Module,
) -> Tuple[Optional[Module], List[Tuple[Optional[type], Optional[str], int, Optional[str]]]]:
    """The outermost module declaring ``_can_record_outputs["attentions"]`` and its entries:
    (class, class-name suffix, output index, layer-name filter)."""
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
        # The outermost declaring module describes its tree (an encoder-decoder's encoder comes first:
        # its self-attention is the default).
        return sub, specs
    return None, specs


def _self_attention_modules(model: Module) -> List[Tuple[str, Module, OutputSelector]]:
    """Undeclared Hugging Face self-attention modules (DeBERTa-v2, MPNet): ``*SelfAttention`` classes whose
    forward takes ``output_attentions`` and returns the probabilities second when asked."""
    found: List[Tuple[str, Module, OutputSelector]] = []
    for name, module in model.named_modules():
        if not type(module).__name__.endswith("SelfAttention"):
            continue
        try:
            params = inspect.signature(module.forward).parameters
        except (TypeError, ValueError):
            continue
        if "output_attentions" in params:
            found.append((name, module, 1))
    return found


def attention_calls(model: Module, modules: Sequence[Tuple[str, Module, OutputSelector]]) -> int:
    r"""
    How many attention calls (layers) one forward pass makes through the given modules.

    One per module, except where the config says that fewer modules are shared by more layers (ALBERT's
    ``num_hidden_groups``: its one attention module runs ``num_hidden_layers`` times).

    Args:
        model (Module): The model.
        modules (sequence): The attention modules, as from :func:`discover_attention_modules`.

    Returns:
        int: The number of layers.
    """
    layers = config_value(model, "num_hidden_layers")
    shared = config_value(model, "num_hidden_groups") is not None
    count = len(modules)
    if shared and isinstance(layers, int) and count > 0 and layers > count and layers % count == 0:
        return layers
    return count


def model_behind(forward_func: Callable[..., Any]) -> Optional[Module]:
    r"""
    The model behind a forward function, or None where :func:`find_model` cannot tell.

    Args:
        forward_func (Callable): The model or a function wrapping it.

    Returns:
        Module or None: The model.
    """
    try:
        return find_model(forward_func)
    except (TypeError, ValueError):
        return None


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
                    (BERT, RoBERTa, DistilBERT, ViT, DeiT and most other HF encoders; for an
                    encoder-decoder, its encoder's self-attention), else the ``*SelfAttention`` modules
                    that return their probabilities when asked (DeBERTa-v2, MPNet).
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
    declaring, specs = _hf_attention_specs(model)
    scope = {id(m) for m in declaring.modules()} if declaring is not None else set()
    for cls, suffix, index, layer_name in specs:
        for name, module in named:
            if id(module) not in scope:
                continue
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
        found = _self_attention_modules(model)
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


def config_value(model: Module, name: str) -> Any:
    r"""
    A Hugging Face config field, read from the first submodule whose config has it.

    Args:
        model (Module): The model (wrappers included).
        name (str): The config field, e.g. ``"patch_size"`` or ``"pad_token_id"``.

    Returns:
        Any: The value, or None if no config sets it.
    """
    for sub in model.modules():
        cfg = getattr(sub, "config", None)
        value = getattr(cfg, name, None) if cfg is not None else None
        if value is not None:
            return value
    return None
