#!/usr/bin/env python3
"""The shared part of the layer attention attributions: which attention calls a layer module stands for, and
the base class that runs the wrapped attention method on them (see :mod:`.layer_attention`)."""

from typing import Any, Callable, List, Optional, Sequence, Tuple, TypeVar, Union, cast

from captum.attr import LayerAttribution
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley.attr.attention_attribution import AttentionAttribution
from captum_attn_shapley.capture import AttentionCapture

#: A layer argument: one module, or a list of modules (one result per module).
LayerLike = Union[Module, Sequence[Module]]

_T = TypeVar("_T")


def _layer_list(layer: Any) -> Tuple[List[Module], bool]:
    """The given layer(s) as a list, and whether a list was given."""
    if isinstance(layer, (list, tuple)):
        if len(layer) == 0:
            raise ValueError(
                "`layer` is an empty list: pass an attention module or a transformer block, or a non-empty "
                "list of them (one result per layer)."
            )
        return list(layer), True
    return [layer], False


def attention_layer_calls(capture: AttentionCapture, module: Any, argument: str = "layer") -> List[int]:
    r"""
    The layer indices (attention calls, in call order) of a self-attention module or of the transformer
    block that contains exactly one.

    A module that the forward pass calls several times (ALBERT's shared layer groups) has all of its calls:
    the calls are shared out among the modules in consecutive runs, as
    :func:`~captum_attn_shapley.capture.discovery.attention_calls` counts them.

    Args:
        capture (AttentionCapture): The capture of the model (its attention modules and call count).
        module (Module): The attention module, or a module that contains exactly one of them.
        argument (str): The argument's name, for the messages.

    Returns:
        list[int]: The module's layer indices, for ``layers=`` of the attention methods.

    Examples::

        >>> method = AttnGradShapley(model)
        >>> attention_layer_calls(method.capturer, model.bert.encoder.layer[3])
        [3]
    """
    modules = capture.modules
    example = f"the module named {modules[0][0]!r} or the transformer block that contains it"
    if not isinstance(module, Module):
        raise TypeError(
            f"`{argument}` must be a torch.nn.Module (a self-attention module or a transformer block with exactly "
            f"one), got {type(module).__name__}: {module!r:.80}. Pass e.g. {example}."
        )
    model = capture.model
    kind = type(module).__name__
    path = next((name for name, sub in model.named_modules() if sub is module), None)
    if path is None:
        raise ValueError(
            f"`{argument}` ({kind}) is not part of the model {type(model).__name__} that forward_func calls. "
            f"Pass one of its modules, e.g. {example}."
        )
    inside = [
        i for i, (_, attention, _) in enumerate(modules) if any(sub is attention for sub in module.modules())
    ]
    where = f"`{argument}` ({kind}, {path or 'the model itself'!r})"
    if len(inside) > 1:
        names = [modules[i][0] for i in inside]
        shown = ", ".join(repr(n) for n in names[:4]) + (" ..." if len(names) > 4 else "")
        raise ValueError(
            f"{where} contains {len(names)} self-attention modules ({shown}); a layer is one attention module or "
            "a block with exactly one. Pass one of them, or a Python list of modules for one result each "
            "(e.g. list(<the model's blocks>))."
        )
    if not inside:
        owner = next(
            (name for name, attention, _ in modules if any(s is module for s in attention.modules())), None
        )
        if owner is not None:
            raise ValueError(
                f"{where} is part of the self-attention module {owner!r}, not a whole one: pass that module "
                "or the transformer block that contains it."
            )
        raise ValueError(
            f"{where} contains none of the model's self-attention modules ({len(modules)}: "
            f"{modules[0][0]!r} ...). Pass {example}; for attention modules the package does not discover, "
            "name them with attention_modules=."
        )
    per_module = capture.num_layers // len(modules)  # > 1 only for shared modules (one per call otherwise)
    return list(range(inside[0] * per_module, (inside[0] + 1) * per_module))


class AttentionLayerAttribution(LayerAttribution):  # type: ignore[misc]  # captum ships no types
    r"""
    Base of the layer attention attributions: holds the wrapped attention method and the layer indices of
    ``layer`` (its attention calls), and runs the method for all of them in one capture pass (one result per
    layer; ``"ig_attention"`` alone needs a pass per layer, its path scaling one layer at a time).

    Args:
        method (AttentionAttribution): The attention method whose ``layers=`` the layer fixes.
        layer (Module or list[Module]): A self-attention module, or a transformer block containing exactly
                    one, or a list of them (then :meth:`attribute` returns a list, one result per layer).
        device_ids (None): Captum's argument for ``DataParallel`` models; not supported (the capture runs
                    ``forward_func`` in one process): pass None and the model itself.
    """

    def __init__(
        self, method: AttentionAttribution, layer: LayerLike, device_ids: Optional[List[int]] = None
    ) -> None:
        if device_ids is not None:
            raise ValueError(
                f"device_ids={device_ids!r} is not supported: the attention capture runs forward_func in one "
                "process, not through DataParallel. Pass device_ids=None and the model itself."
            )
        layers, self._is_list = _layer_list(layer)
        arguments = [f"layer[{i}]" for i in range(len(layers))] if self._is_list else ["layer"]
        #: The layer indices (attention calls) of each given layer, for ``layers=`` of the attention methods.
        self.layer_indices: List[List[int]] = [
            attention_layer_calls(method.capturer, module, argument) for module, argument in zip(layers, arguments)
        ]
        LayerAttribution.__init__(self, method.forward_func, list(layers) if self._is_list else layer, device_ids)
        #: The wrapped attention method.
        self.attention_method = method

    @property
    def model(self) -> Module:
        """The transformer whose attention is used."""
        return self.attention_method.model

    def _per_layer(self, compute: Callable[[List[List[int]]], List[_T]]) -> Union[_T, List[_T]]:
        """``compute(groups)``, one result per group of layer indices (all from one capture pass), for the given
        layers' groups: a list if ``layer`` was a list, else the one result."""
        results = compute(self.layer_indices)
        return results if self._is_list else results[0]

    def _attributions_per_layer(self, attributions: Any) -> List[Any]:
        """The given attributions, one entry per layer (a list for a list of layers)."""
        if not self._is_list:
            return [attributions]
        if not isinstance(attributions, (list, tuple)) or len(attributions) != len(self.layer_indices):
            raise ValueError(
                f"`attributions` must be a list of {len(self.layer_indices)} tensors, one per layer, as attribute "
                f"returns for a list of layers; got {type(attributions).__name__}."
            )
        return list(attributions)


def token_scores(output: Any) -> Tensor:
    """The token (or patch) scores of a method's output: the first element for tuple inputs."""
    return cast(Tensor, output[0] if isinstance(output, tuple) else output)
