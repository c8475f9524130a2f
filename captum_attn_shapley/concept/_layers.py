#!/usr/bin/env python3
"""Which transformer blocks a TokenTCAV probes, and the attention module of each."""

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from torch.nn import Module

from captum_attn_shapley.capture.attention import AttentionCapture

#: A transformer block: its module name (``"vit.layers.4"``) or its index (``4``; negative from the end).
LayerSpec = Union[str, int]


def block_name(attention_name: str) -> Optional[str]:
    r"""
    The block that holds an attention module: its name up to the first numeric part.

    Args:
        attention_name (str): The attention module's name.

    Returns:
        str or None: The block's name, or None if the name has no numeric part.

    Examples::

        >>> block_name("vit.layers.4.attention.attention")
        'vit.layers.4'
    """
    parts = attention_name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return None


def _as_list(value: Any) -> List[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def resolve_layers(
    capturer: AttentionCapture, model: Module, layers: Union[LayerSpec, Sequence[LayerSpec]]
) -> Tuple[List[str], Dict[str, Module], Dict[str, int]]:
    r"""
    Resolves TokenTCAV's ``layers`` to transformer blocks, each holding exactly one attention module.

    Block indices are the indices of the capturer's attention modules (validated and made
    non-negative by :meth:`AttentionCapture.resolve_layers`); a block named twice counts once.

    Args:
        capturer (AttentionCapture): The capturer of ``model``'s attention.
        model (Module): The model.
        layers (str, int or sequence of them): Block names or block indices.

    Returns:
        tuple: ``(names, blocks, attention_index)``: the block names in the given order, the
        block modules by name and the index of each block's attention module by name.
    """
    specs = _as_list(layers)
    if len(specs) == 0:
        raise ValueError("`layers` is empty: name at least one transformer block.")
    attention_names = [name for name, _, _ in capturer.modules]
    block_of = [block_name(name) for name in attention_names]
    known_blocks = [b for b in block_of if b is not None]
    modules = dict(model.named_modules())
    names: List[str] = []
    blocks: Dict[str, Module] = {}
    attention_index: Dict[str, int] = {}
    for spec in specs:
        if isinstance(spec, bool) or not isinstance(spec, (int, str)):
            raise TypeError(f"Layers are block names or indices, got {spec!r}.")
        if isinstance(spec, int):
            index = capturer.resolve_layers([spec])[0]
            name = block_of[index]
            if name is None:
                raise ValueError(
                    f"Cannot tell which block holds attention module {attention_names[index]!r}: "
                    "name the block explicitly (a module name)."
                )
        else:
            name = spec
            if name not in modules:
                raise ValueError(
                    f"No module named {name!r} in {type(model).__name__}. Name a transformer block, "
                    f"e.g. one of {known_blocks[:3]}{' ...' if len(known_blocks) > 3 else ''}, or give "
                    "block indices."
                )
        inside = [i for i, a in enumerate(attention_names) if a == name or a.startswith(name + ".")]
        if len(inside) != 1:
            what = "no attention module" if not inside else f"{len(inside)} attention modules"
            raise ValueError(
                f"Layer {name!r} contains {what}; TokenTCAV weights each block's token states by that "
                f"block's own attention, so name a single transformer block, e.g. {known_blocks[:2]}."
            )
        if name not in blocks:
            names.append(name)
            blocks[name] = modules[name]
            attention_index[name] = inside[0]
    return names, blocks, attention_index


def layer_name(layer: LayerSpec, attention_index: Dict[str, int], num_layers: int) -> str:
    r"""
    The name of one of the resolved blocks, given as a name or a block index.

    Args:
        layer (str or int): A block name or index (negative from the end).
        attention_index (dict[str, int]): The resolved blocks' attention indices, by name (in order).
        num_layers (int): The model's number of attention modules.

    Returns:
        str: The block's name.

    Raises:
        ValueError: If ``layer`` is not one of the resolved blocks.
    """
    if isinstance(layer, str) and layer in attention_index:
        return layer
    if isinstance(layer, int) and not isinstance(layer, bool) and -num_layers <= layer < num_layers:
        for name, idx in attention_index.items():
            if idx == layer % num_layers:
                return name
    raise ValueError(f"Layer {layer!r} is not one of this TokenTCAV's layers {list(attention_index)}.")
