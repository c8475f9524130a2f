#!/usr/bin/env python3
"""Layer versions of the attention attributions, as Captum :class:`~captum.attr.LayerAttribution` classes.

Each class is built like Captum's layer methods, ``(forward_func, layer, device_ids=None, ...)``, where
``layer`` is a self-attention module or a transformer block that contains exactly one (or a list of them),
and explains with the game played on that layer's attention alone. A layer is an attention *call* (see
:class:`~captum_attn_shapley.capture.AttentionCapture`): a module the forward pass calls several times, like
ALBERT's shared layer, stands for all of its calls. The computation is the one of the wrapped method
(:class:`~captum_attn_shapley.attr.AttnGradShapley`, :class:`~captum_attn_shapley.attr.AttentionReceived`,
:class:`~captum_attn_shapley.attr.GradSAM`) with ``layers=`` set to the module's calls, as Captum's
``LayerIntegratedGradients`` wraps ``IntegratedGradients``.
"""

from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

from torch import Tensor
from torch.nn import Module

from captum_attn_shapley._utils.log import log_usage
from captum_attn_shapley._utils.targets import TargetLike
from captum_attn_shapley.attr._attention_layers import (
    AttentionLayerAttribution,
    LayerLike,
    attention_layer_calls,
    token_scores,
)
from captum_attn_shapley.attr._received import ReceivedAttentionAttribution
from captum_attn_shapley.attr.att import AttentionReceived
from captum_attn_shapley.attr.attn_grad_shapley import AttnGradShapley
from captum_attn_shapley.attr.grad_sam import GradSAM
from captum_attn_shapley.capture import ModuleSpec, OutputSelector
from captum_attn_shapley.capture.integrated_attention import DEFAULT_STEPS
from captum_attn_shapley.capture.players import ClassificationPosition
from captum_attn_shapley.shapley.games import GameLike

__all__ = [
    "AttentionLayerAttribution",
    "LayerAttentionReceived",
    "LayerAttnGradShapley",
    "LayerGradSAM",
    "LayerLike",
    "LayerReceivedAttention",
    "attention_layer_calls",
]


class LayerAttnGradShapley(AttentionLayerAttribution):
    r"""
    :class:`~captum_attn_shapley.attr.AttnGradShapley` on one layer's attention: the exact Shapley values of
    the attention game (CLS, Mutual, Max-Mutual or your own) whose influence matrix is that layer's attention
    (optionally weighted by the ReLU of its gradient), averaged over its heads. Equal to
    ``AttnGradShapley(forward_func, ...).attribute(..., layers=method.layer_indices[0])``.

    Args:
        forward_func (Callable or Module): The model, or a Captum-style function wrapping it that returns
                    logits.
        layer (Module or list[Module]): A self-attention module of the model, or a transformer block that
                    contains exactly one (e.g. ``model.bert.encoder.layer[3]``, ``model.vit.layers[3]``), or a
                    list of them: then :meth:`attribute` returns a list, one result per layer, as Captum's
                    layer methods do. A module called several times (ALBERT's shared layer) counts with all
                    of its calls.
        device_ids (None): See :class:`AttentionLayerAttribution`.
        game, weighting, signed: Keyword-only, as in :class:`~captum_attn_shapley.attr.AttnGradShapley`
                    (``weighting="ig_attention"`` then scales this layer's attention alone along the path:
                    Hao et al.'s per-layer attention attribution).
        model, attention_modules, attention_output_index: Keyword-only, as in ``AttnGradShapley``.
        special_token_ids, switch_to_eager, classification_position, engine: Keyword-only, as in
                    ``AttnGradShapley``.

    Examples::

        >>> layer_method = LayerAttnGradShapley(model, model.bert.encoder.layer[-1], game="mutual")
        >>> attributions, delta = layer_method.attribute(
        ...     enc["input_ids"], additional_forward_args=(enc["attention_mask"],),
        ...     return_convergence_delta=True)
        >>> per_layer = LayerAttnGradShapley(model, list(model.bert.encoder.layer)).attribute(
        ...     enc["input_ids"], additional_forward_args=(enc["attention_mask"],))   # a list
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: LayerLike,
        device_ids: Optional[List[int]] = None,
        *,
        game: GameLike = "cls",
        weighting: str = "grad_attention",
        model: Optional[Module] = None,
        attention_modules: Optional[Sequence[ModuleSpec]] = None,
        attention_output_index: OutputSelector = 1,
        special_token_ids: Optional[Sequence[int]] = None,
        switch_to_eager: bool = True,
        classification_position: ClassificationPosition = None,
        engine: str = "auto",
        signed: bool = False,
    ) -> None:
        method = AttnGradShapley(
            forward_func,
            game=game,
            weighting=weighting,
            model=model,
            attention_modules=attention_modules,
            attention_output_index=attention_output_index,
            special_token_ids=special_token_ids,
            switch_to_eager=switch_to_eager,
            classification_position=classification_position,
            engine=engine,
            signed=signed,
        )
        super().__init__(method, layer, device_ids)
        self.shapley: AttnGradShapley = method

    @classmethod
    def get_name(cls) -> str:
        return "Layer AttnGradShapley"

    @property
    def variant_name(self) -> str:
        """The paper's name of this instance's default variant, e.g. ``"Shapley-Grad-Att-Max-Mutual"``."""
        return self.shapley.variant_name

    def has_convergence_delta(self) -> bool:
        return True

    @log_usage()
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike = None,
        additional_forward_args: Any = None,
        game: Optional[GameLike] = None,
        weighting: Optional[str] = None,
        player_mask: Optional[Tensor] = None,
        estimator: str = "exact",
        n_samples: int = 1000,
        seed: int = 0,
        max_players: int = 16,
        return_convergence_delta: bool = False,
        signed: Optional[bool] = None,
        n_steps: int = DEFAULT_STEPS,
        internal_batch_size: Optional[int] = None,
    ) -> Union[Tensor, List[Tensor], Tuple[Tensor, Tensor], Tuple[List[Tensor], List[Tensor]]]:
        r"""
        Args:
            inputs, target, additional_forward_args, game, weighting, player_mask: As in
                        :meth:`AttnGradShapley.attribute <captum_attn_shapley.attr.AttnGradShapley.attribute>`.
            estimator, n_samples, seed, max_players: As in ``AttnGradShapley.attribute``.
            signed, n_steps, internal_batch_size: As in ``AttnGradShapley.attribute``.
            return_convergence_delta (bool): Also return the efficiency gap
                        ``sum_i phi_i - (v(N) - v(empty))`` of each layer's game, per example.

        Returns:
            **attributions** or 2-element tuple of **attributions**, **delta**:
            - **attributions** (*Tensor* or *list[Tensor]*): The layer's token scores, ``(batch, seq_len)``
                        for text (zero for non-players), ``(batch, rows, cols)`` per patch for images (upsample
                        with ``LayerAttribution.interpolate(attributions.unsqueeze(1), (H, W))``); for tuple
                        inputs, the scores of the first input. A list, one per layer, if ``layer`` is a list.
            - **delta** (*Tensor* or *list[Tensor]*, returned if return_convergence_delta=True): Shape
                        ``(batch,)``; a list, one per layer, if ``layer`` is a list.
        """

        results = self.shapley._attribute(
            inputs,
            target,
            additional_forward_args,
            game,
            weighting,
            None,
            player_mask,
            estimator=estimator,
            n_samples=n_samples,
            seed=seed,
            max_players=max_players,
            return_convergence_delta=return_convergence_delta,
            signed=signed,
            n_steps=n_steps,
            internal_batch_size=internal_batch_size,
            groups=self.layer_indices,
        )
        if return_convergence_delta:
            scores = [token_scores(out[0]) for out in results]
            deltas = [out[1] for out in results]
            return (scores, deltas) if self._is_list else (scores[0], deltas[0])
        scores = [token_scores(out) for out in results]
        return scores if self._is_list else scores[0]

    def compute_convergence_delta(
        self,
        attributions: Union[Tensor, Sequence[Tensor]],
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike = None,
        additional_forward_args: Any = None,
        game: Optional[GameLike] = None,
        weighting: Optional[str] = None,
        player_mask: Optional[Tensor] = None,
        signed: Optional[bool] = None,
        n_steps: int = DEFAULT_STEPS,
    ) -> Union[Tensor, List[Tensor]]:
        r"""
        The efficiency gap of given attributions: ``sum_i phi_i - (v(N) - v(empty))`` of each layer's game.

        Args:
            attributions (Tensor or list[Tensor]): As returned by :meth:`attribute`.
            inputs, target, additional_forward_args, game, weighting, player_mask: The arguments
                        :meth:`attribute` was called with.
            signed, n_steps: The arguments :meth:`attribute` was called with.

        Returns:
            Tensor or list[Tensor]: Shape ``(batch,)``; a list, one per layer, if ``layer`` is a list.
        """
        given = self._attributions_per_layer(attributions)
        args = (inputs, target, additional_forward_args, game, weighting, None, player_mask)
        deltas = self.shapley._deltas(given, *args, signed=signed, n_steps=n_steps, groups=self.layer_indices)
        return deltas if self._is_list else deltas[0]


class LayerReceivedAttention(AttentionLayerAttribution):
    r"""
    Base of :class:`LayerAttentionReceived` and :class:`LayerGradSAM`: the wrapped method's scores (the
    attention, or gradient-weighted attention, each token receives) on one layer's attention.

    Args:
        forward_func, layer, device_ids: See :class:`LayerAttnGradShapley`.
        model, attention_modules, attention_output_index: Keyword-only, as in
                    :class:`~captum_attn_shapley.attr.AttentionAttribution`.
        special_token_ids, switch_to_eager, classification_position, engine: Keyword-only, as in
                    ``AttentionAttribution``.
    """

    #: The wrapped method's class.
    method_class: type = AttentionReceived

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: LayerLike,
        device_ids: Optional[List[int]] = None,
        *,
        model: Optional[Module] = None,
        attention_modules: Optional[Sequence[ModuleSpec]] = None,
        attention_output_index: OutputSelector = 1,
        special_token_ids: Optional[Sequence[int]] = None,
        switch_to_eager: bool = True,
        classification_position: ClassificationPosition = None,
        engine: str = "auto",
    ) -> None:
        method: ReceivedAttentionAttribution = self.method_class(
            forward_func,
            model=model,
            attention_modules=attention_modules,
            attention_output_index=attention_output_index,
            special_token_ids=special_token_ids,
            switch_to_eager=switch_to_eager,
            classification_position=classification_position,
            engine=engine,
        )
        super().__init__(method, layer, device_ids)
        self.received: ReceivedAttentionAttribution = method

    @log_usage()
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike = None,
        additional_forward_args: Any = None,
        player_mask: Optional[Tensor] = None,
    ) -> Union[Tensor, List[Tensor]]:
        r"""
        Args:
            inputs, target, additional_forward_args, player_mask: As in
                        :meth:`AttnGradShapley.attribute <captum_attn_shapley.attr.AttnGradShapley.attribute>`
                        (``target`` only matters for the gradient weightings).

        Returns:
            *Tensor* or *list[Tensor]*: The layer's token scores in the layout of
            :meth:`LayerAttnGradShapley.attribute` (zero for non-players); a list, one per layer, if
            ``layer`` is a list.
        """
        args = (inputs, target, additional_forward_args, None, player_mask)
        return self._per_layer(
            lambda groups: [token_scores(out) for out in self.received._received_scores(*args, groups=groups)]
        )


class LayerAttentionReceived(LayerReceivedAttention):
    r"""
    Att on one layer: ``score_i = mean_{h, q} A[l, h][q, i]`` over that layer's heads and the real query
    rows. Equal to ``AttentionReceived(forward_func).attribute(..., layers=method.layer_indices[0])``.

    Args: see :class:`LayerReceivedAttention`.

    Examples::

        >>> att = LayerAttentionReceived(model, model.bert.encoder.layer[0])
        >>> scores = att.attribute(enc["input_ids"], additional_forward_args=(enc["attention_mask"],))
    """

    method_class = AttentionReceived

    @classmethod
    def get_name(cls) -> str:
        return "Layer Att"


class LayerGradSAM(LayerReceivedAttention):
    r"""
    Grad-SAM on one layer: ``score_i = mean_{h, q} (A[l, h] * relu(dy / dA[l, h]))[q, i]`` over that
    layer's heads and the real query rows. Equal to ``GradSAM(forward_func).attribute(...,
    layers=method.layer_indices[0])``.

    Args: see :class:`LayerReceivedAttention`.

    Examples::

        >>> grad_sam = LayerGradSAM(vit, list(vit.vit.layers))
        >>> per_layer = grad_sam.attribute(pixel_values, target=3)   # a list of (batch, rows, cols)
    """

    method_class = GradSAM

    @classmethod
    def get_name(cls) -> str:
        return "Layer Grad-SAM"
