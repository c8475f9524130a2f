#!/usr/bin/env python3
"""Our attention attributions as Captum Insights methods, with their options as Insights parameters."""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

from torch import Tensor

from captum_attn_shapley._utils.forward import as_tuple, forward_args_tuple
from captum_attn_shapley._utils.log import log_usage
from captum_attn_shapley._utils.targets import TargetLike
from captum_attn_shapley.attr._received import ReceivedAttentionAttribution
from captum_attn_shapley.attr.att import AttentionReceived
from captum_attn_shapley.attr.attention_attribution import AttentionAttribution
from captum_attn_shapley.attr.attn_grad_shapley import AttnGradShapley
from captum_attn_shapley.attr.grad_sam import GradSAM
from captum_attn_shapley.capture.influence_matrix import WEIGHTINGS
from captum_attn_shapley.capture.players import text_player_mask
from captum_attn_shapley.evaluation.registry import ATTENTION_CLASSES
from captum_attn_shapley.shapley.games import BUILTIN_GAMES
from captum_attn_shapley.visualization.images import patch_attributions_to_pixels
from captum_attn_shapley.visualization.insights.availability import insights_modules
from captum_attn_shapley.visualization.insights.forwards import TextEmbeddingForward


def parse_layers(value: Union[None, str, int, Sequence[int]]) -> Optional[List[int]]:
    r"""
    Reads the ``layers`` parameter as typed in Insights' text box.

    Args:
        value (str, int, sequence of int or None): ``""`` or ``"all"`` (all layers), or
                    layer indices separated by spaces or commas, e.g. ``"0 1 -1"``.
                    Already parsed values are returned as they are.

    Returns:
        list[int] or None: The layer indices, or None for all layers.

    Examples::

        >>> parse_layers("0, 2 -1")
        [0, 2, -1]
        >>> parse_layers("all") is None
        True
    """
    if value is None:
        return None
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        text = value.replace(",", " ").strip()
        if text.lower() in ("", "all"):
            return None
        try:
            return [int(part) for part in text.split()]
        except ValueError:
            raise ValueError(
                f'Cannot read layers {value!r}: give layer indices separated by spaces, e.g. "0 1 -1", '
                "or leave the field empty for all layers."
            ) from None
    return [int(v) for v in value]


def _as_input_shaped(attributions: Tuple[Tensor, ...], inputs: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
    """Per-patch maps become per-pixel maps with the image's channels (what Insights draws)."""
    shaped = []
    for attr, inp in zip(attributions, inputs):
        if inp.dim() == 4 and attr.dim() == 3:
            pixels = patch_attributions_to_pixels(attr, inp)  # (batch, 1, H, W)
            attr = pixels.expand(-1, inp.shape[1], -1, -1) / inp.shape[1]
        shaped.append(attr)
    return tuple(shaped)


def _text_player_mask(
    method: AttentionAttribution,
    inputs: Tuple[Tensor, ...],
    additional_forward_args: Any,
    player_mask: Optional[Tensor],
) -> Optional[Tensor]:
    """With TextEmbeddingForward, the players come from the ids passed along with the embeddings."""
    if player_mask is not None or not isinstance(method.forward_func, TextEmbeddingForward):
        return player_mask
    extra = forward_args_tuple(additional_forward_args)
    ids = extra[0] if extra else None
    if not isinstance(ids, Tensor) or ids.dim() != 2 or ids.shape != inputs[0].shape[:2]:
        return None
    mask = extra[1] if len(extra) > 1 and isinstance(extra[1], Tensor) else None
    return text_player_mask(ids, mask, method.special_token_ids, model=method.model)


class _InsightsMixin:
    """Insights calls ``cls(model)`` and ``attribute(inputs, additional_forward_args=, target=, **params)``."""

    def _insights_attribute(
        self,
        base: Callable[..., Any],
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike,
        additional_forward_args: Any,
        layers: Any,
        player_mask: Optional[Tensor],
        **kwargs: Any,
    ) -> Union[Tensor, Tuple[Tensor, ...]]:
        assert isinstance(self, AttentionAttribution)
        inputs_tuple = as_tuple(inputs)
        players = _text_player_mask(self, inputs_tuple, additional_forward_args, player_mask)
        attr = base(
            self,
            inputs,
            target=target,
            additional_forward_args=additional_forward_args,
            layers=parse_layers(layers),
            player_mask=players,
            **kwargs,
        )
        shaped = _as_input_shaped(as_tuple(attr), inputs_tuple)
        return shaped if isinstance(inputs, tuple) else shaped[0]


class InsightsAttnGradShapley(_InsightsMixin, AttnGradShapley):
    r"""
    :class:`~captum_attn_shapley.AttnGradShapley` as an Insights method: ``game``,
    ``weighting`` and ``layers`` are Insights parameters; image results come as pixel maps
    with the image's channels; with :class:`TextEmbeddingForward` the special tokens are
    found from the ids passed along.
    """

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike = None,
        additional_forward_args: Any = None,
        game: str = "cls",
        weighting: str = "grad_attention",
        layers: Union[None, str, Sequence[int]] = None,
        player_mask: Optional[Tensor] = None,
    ) -> Union[Tensor, Tuple[Tensor, ...]]:
        r"""
        Args:
            inputs, target, additional_forward_args, game, weighting, player_mask: As in
                        :meth:`AttnGradShapley.attribute`.
            layers (str or sequence of int, optional): As in
                        :meth:`AttnGradShapley.attribute`, or Insights' text (see
                        :func:`parse_layers`).

        Returns:
            *Tensor* or *tuple[Tensor, ...]*: Shaped like ``inputs`` for images (pixel
            maps repeated over the channels, divided by their number); per token for text.
        """
        return self._insights_attribute(
            AttnGradShapley.attribute.__wrapped__,  # type: ignore[attr-defined]
            inputs,
            target,
            additional_forward_args,
            layers,
            player_mask,
            game=game,
            weighting=weighting,
        )


class _InsightsReceived(_InsightsMixin):
    """Att and Grad-SAM in Insights: the ``layers`` parameter."""

    @log_usage()
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike = None,
        additional_forward_args: Any = None,
        layers: Union[None, str, Sequence[int]] = None,
        player_mask: Optional[Tensor] = None,
    ) -> Union[Tensor, Tuple[Tensor, ...]]:
        r"""
        Args and Returns: as :meth:`InsightsAttnGradShapley.attribute`.
        """
        return self._insights_attribute(
            ReceivedAttentionAttribution.attribute.__wrapped__,  # type: ignore[attr-defined]
            inputs,
            target,
            additional_forward_args,
            layers,
            player_mask,
        )


class InsightsAttentionReceived(_InsightsReceived, AttentionReceived):
    r""":class:`~captum_attn_shapley.attr.AttentionReceived` ("Att") as an Insights method."""


class InsightsGradSAM(_InsightsReceived, GradSAM):
    r""":class:`~captum_attn_shapley.attr.GradSAM` as an Insights method (``layers`` parameter)."""


#: The Insights version of each attention class the registry offers in Insights.
_INSIGHTS_CLASSES: Dict[Type[AttentionAttribution], Type[AttentionAttribution]] = {
    AttnGradShapley: InsightsAttnGradShapley,
    GradSAM: InsightsGradSAM,
    AttentionReceived: InsightsAttentionReceived,
}

#: The methods :func:`register_insights_methods` adds, by their name in Insights, in the order of
#: :data:`~captum_attn_shapley.evaluation.registry.ATTENTION_CLASSES`.
INSIGHTS_METHODS: Dict[str, Type[AttentionAttribution]] = {
    cls.get_name(): _INSIGHTS_CLASSES[cls] for cls in ATTENTION_CLASSES
}


def register_insights_methods() -> List[str]:
    r"""
    Adds AttnGradShapley, Grad-SAM and Att to Captum Insights' attribution methods, with
    their options as Insights parameters: ``game`` (``cls``, ``mutual``, ``max_mutual``)
    and ``weighting`` (``grad_attention``, ``attention``, ``lrp_attention``, ``ig_attention``)
    for AttnGradShapley, so the six paper variants and the relevance- and path-weighted ones,
    and ``layers`` (empty for all, or indices such as ``"0 1 -1"``) for all three. Idempotent.

    Returns:
        list[str]: The names added to Insights' method list.

    Raises:
        InsightsUnavailableError: With captum 0.9 or later (no Insights) or without the
                    Flask server's requirements; the message says how to get them, or to
                    use the HTML report.

    Examples::

        >>> from captum_attn_shapley.visualization.insights import register_insights_methods
        >>> register_insights_methods()
        ['AttnGradShapley', 'Grad-SAM', 'Att']
    """
    _, config, _ = insights_modules()
    layers = config.StrConfig(value="")
    params: Dict[str, Dict[str, Any]] = {
        InsightsAttnGradShapley.get_name(): {
            "game": config.StrEnumConfig(value="cls", limit=list(BUILTIN_GAMES)),
            "weighting": config.StrEnumConfig(value="grad_attention", limit=list(WEIGHTINGS)),
            "layers": layers,
        },
        InsightsGradSAM.get_name(): {"layers": layers},
        InsightsAttentionReceived.get_name(): {"layers": layers},
    }
    for name, cls in INSIGHTS_METHODS.items():
        config.ATTRIBUTION_NAMES_TO_METHODS[name] = cls
        config.ATTRIBUTION_METHOD_CONFIG[name] = config.ConfigParameters(
            params=params[name], post_process={"layers": parse_layers}
        )
    return list(INSIGHTS_METHODS)
