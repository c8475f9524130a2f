#!/usr/bin/env python3
"""Shared base of the attention-based Captum attributions (AttnGradShapley, Att, Grad-SAM)."""

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from captum.attr import Attribution
from torch import Tensor
from torch.nn import Module

from captum_attn_shapley._utils.forward import as_tuple
from captum_attn_shapley._utils.targets import TargetLike
from captum_attn_shapley._utils.validation import (
    GradientCheckedForward,
    check_architecture,
    check_binary_mask,
    check_inputs,
    check_layers,
    check_not_compiled,
    unwrap_compiled,
)
from captum_attn_shapley.attr._path_chunks import example_chunks, prepare_in_chunks
from captum_attn_shapley.capture import (
    AttentionCapture,
    CapturedAttention,
    InfluenceRequest,
    ModuleSpec,
    OutputSelector,
    TokenLayout,
    default_player_mask,
    find_model,
    resolve_special_token_ids,
    unique_ids,
)
from captum_attn_shapley.capture.influence_matrix import check_weighting
from captum_attn_shapley.capture.integrated_attention import DEFAULT_STEPS, FUSED_ONLY_WEIGHTINGS
from captum_attn_shapley.capture.players import (
    ClassificationPosition,
    check_classification_position,
    check_player_mask,
    infer_layout,
    real_token_mask,
)


@dataclass
class PreparedBatch:
    r"""
    One batch after the capture pass.

    Attributes:
        captured (CapturedAttention): The capture.
        matrix (Tensor): The requested reduction of the influence matrix ``M``: ``M`` itself
                    ``(batch, T, T)`` (``"matrix"``), or ``(batch, T)``: its classification row
                    (``"cls_row"``) or the mean over real query rows of its columns (``"received"``);
                    or ``(batch, 2, T)``: a pairwise game's pair-weight sums and ``M``'s diagonal
                    (``"pair_sums"``).
        players (Tensor): Bool player mask, shape ``(batch, T)``.
        real_tokens (Tensor): Bool mask of non-padding tokens, shape ``(batch, T)``.
        layout (TokenLayout): How tokens map back onto the inputs.
        grouped (bool): Whether ``matrix`` has a leading axis of layer groups (``_prepare``'s ``groups``);
                    :meth:`per_group` splits it.
    """

    captured: CapturedAttention
    matrix: Tensor
    reduction: str
    players: Tensor
    real_tokens: Tensor
    layout: TokenLayout
    grouped: bool = False

    def per_group(self) -> List["PreparedBatch"]:
        """One batch per layer group (the batch itself when not grouped)."""
        if not self.grouped:
            return [self]
        return [dataclasses.replace(self, matrix=matrix, grouped=False) for matrix in self.matrix]


class AttentionAttribution(Attribution):  # type: ignore[misc]  # captum ships no types: Attribution is Any
    r"""
    Base class of attributions computed from a transformer's attention (and its
    gradients) captured in one forward and one backward pass.

    Args:
        forward_func (Callable or Module): The model, or a Captum-style function wrapping
                    it that returns logits (or a Hugging Face output with ``logits``). A
                    ``torch.compile``'d model is explained through the module it wraps
                    (``._orig_mod``, same weights, run eagerly). Architectures with windowed
                    attention (Swin-style) raise a ``ValueError`` here.
        model (Module, optional): The model behind ``forward_func``, when it cannot be
                    found automatically (e.g. a wrapper that reaches the model through an
                    object attribute).
        attention_modules (sequence of str or Module, optional): The self-attention
                    modules, for models that do not declare them (non-Hugging Face
                    models). Default: discovered automatically.
        attention_output_index (int, None or Callable): Where user-named attention
                    modules put the attention probabilities in their output: an index
                    (default 1), None if the module outputs the probabilities, or a callable.
        special_token_ids (sequence of int, optional): Token ids that are never players
                    (e.g. ``tokenizer.all_special_ids``). Default: the ids of the tokenizer
                    saved with the model if it loads offline, else those in the config.
        switch_to_eager (bool): For the hook engine: switch ``sdpa``/flash attention to eager for
                    each call (restored afterwards); if False, such a model raises an error.
        engine (str): How the attention is captured: ``"auto"`` (default), ``"fused"`` (Hugging Face
                    models on ``sdpa``: the model keeps its fused kernel, the probabilities are rebuilt
                    a block of rows at a time) or ``"hooks"`` (eager attention, hooks on the attention
                    modules); see :class:`~captum_attn_shapley.capture.AttentionCapture`.
        classification_position (None, str or int): The token whose final state the model's head
                    reads: its row is the CLS game's, and it is never a player. Default: the
                    model's (position 0 for encoders and Vision Transformers; the last real token
                    for decoder-only classifiers such as GPT-2 and Llama); ``"first"`` or ``"last"``
                    (real token, for heads that pool it) or an index override it (see
                    :func:`~captum_attn_shapley.capture.players.classification_positions`).
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        model: Optional[Module] = None,
        attention_modules: Optional[Sequence[ModuleSpec]] = None,
        attention_output_index: OutputSelector = 1,
        special_token_ids: Optional[Sequence[int]] = None,
        switch_to_eager: bool = True,
        classification_position: ClassificationPosition = None,
        engine: str = "auto",
    ) -> None:
        forward_func = unwrap_compiled(forward_func)  # a torch.compile'd model: its eager module, same weights
        model = find_model(forward_func, unwrap_compiled(model))
        check_not_compiled(model)
        check_architecture(model)
        super().__init__(forward_func)
        self.classification_position = check_classification_position(classification_position)
        self.capturer = AttentionCapture(
            GradientCheckedForward(forward_func),
            model=model,
            attention_modules=attention_modules,
            attention_output_index=attention_output_index,
            switch_to_eager=switch_to_eager,
            engine=engine,
        )
        self._special_token_ids: Optional[List[int]] = (
            unique_ids(special_token_ids) if special_token_ids is not None else None
        )

    @property
    def model(self) -> Module:
        """The transformer whose attention is used."""
        return self.capturer.model

    @property
    def special_token_ids(self) -> List[int]:
        """Token ids never treated as players (resolved lazily, see the class docstring)."""
        if self._special_token_ids is None:
            self._special_token_ids = resolve_special_token_ids(None, model=self.model, required=False)
        return self._special_token_ids

    def _check_call(
        self, inputs: Any, additional_forward_args: Any, layers: Any, player_mask: Any
    ) -> Tuple[Optional[List[int]], Optional[Tensor]]:
        """The public boundary's checks of one call, before any work; returns the validated ``layers`` and
        ``player_mask``."""
        check_inputs(self.model, inputs, additional_forward_args)
        mask = None if player_mask is None else check_binary_mask(player_mask, "player_mask")
        return check_layers(layers), mask

    def _prepare(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike,
        additional_forward_args: Any,
        weighting: str,
        layers: Optional[Sequence[int]],
        player_mask: Optional[Tensor],
        reduction: str = "matrix",
        pair_game: Optional[str] = None,
        signed: bool = False,
        n_steps: int = DEFAULT_STEPS,
        internal_batch_size: Optional[int] = None,
        groups: Optional[Sequence[Sequence[int]]] = None,
    ) -> PreparedBatch:
        """The capture pass of one call, reduced as requested. With ``groups`` (lists of layer indices; then
        ``layers`` is ignored), each group is reduced on its own, all of them from one pass (one pass per
        group for ``"ig_attention"``, whose path scales the selected layers together): the batch is
        :attr:`~PreparedBatch.grouped`."""
        check_weighting(weighting)
        resolved = None
        if groups is not None:
            resolved = tuple(tuple(self.capturer.resolve_layers(list(group))) for group in groups)
            if weighting == "ig_attention":  # each group's own path: one pass per group
                same: Dict[str, Any] = dict(reduction=reduction, pair_game=pair_game, signed=signed)
                same.update(n_steps=n_steps, internal_batch_size=internal_batch_size)
                head = (inputs, target, additional_forward_args, weighting)
                parts = [self._prepare(*head, list(group), player_mask, **same) for group in resolved]
                return dataclasses.replace(parts[0], matrix=torch.stack([p.matrix for p in parts]), grouped=True)
            layers = sorted({layer for group in resolved for layer in group})
        if weighting in FUSED_ONLY_WEIGHTINGS and self.capturer.engine == "hooks":
            raise ValueError(
                f"weighting={weighting!r} runs in the fused attention kernel, but this method was built with "
                "engine='hooks'; build it with engine='auto' (or 'fused') for this weighting."
            )
        inputs_tuple = as_tuple(inputs)
        chunks = example_chunks(inputs_tuple[0].shape[0], n_steps, internal_batch_size)
        if weighting == "ig_attention" and len(chunks) > 1:  # the path's pass in chunks of examples
            options: Dict[str, Any] = dict(weighting=weighting, layers=layers, reduction=reduction)
            options.update(pair_game=pair_game, signed=signed, n_steps=n_steps)
            args = (inputs, target, additional_forward_args, player_mask)
            return prepare_in_chunks(self._prepare, chunks, *args, **options)

        def players_of(captured: CapturedAttention) -> Tensor:
            layout = infer_layout(captured, self.model, inputs_tuple, self.classification_position)
            return self._player_mask(captured, layout, inputs_tuple, player_mask)

        request = InfluenceRequest(reduction, weighting, pair_game, signed, n_steps, groups=resolved)
        captured = self.capturer.capture(
            inputs,
            target=target,
            additional_forward_args=additional_forward_args,
            layers=layers,
            request=request,
            classification_position=self.classification_position,
            players=players_of if reduction == "pair_sums" else None,
        )
        layout = infer_layout(captured, self.model, inputs_tuple, self.classification_position)
        batch, num_tokens = captured.batch_size, layout.num_tokens
        assert captured.influence is not None
        device = captured.influence.device
        players = captured.players
        if players is None:
            players = self._player_mask(captured, layout, inputs_tuple, player_mask)
        players = players.to(device)
        real = real_token_mask(captured, batch, num_tokens, players.device)
        return PreparedBatch(captured, captured.influence, reduction, players, real, layout, resolved is not None)

    def _player_mask(
        self,
        captured: CapturedAttention,
        layout: TokenLayout,
        inputs_tuple: Tuple[Any, ...],
        player_mask: Optional[Tensor],
    ) -> Tensor:
        """The players of a captured batch: the user's ``player_mask`` (checked against the layout), or the
        default (real tokens that are not special tokens; every patch of an image)."""
        if player_mask is None:
            special = self.special_token_ids if layout.kind == "text" else []
            return default_player_mask(captured, layout, inputs_tuple, special)
        return check_player_mask(player_mask, captured.batch_size, layout.num_tokens, layout)

    @staticmethod
    def _format_output(
        inputs: Union[Tensor, Tuple[Tensor, ...]], token_scores: Tensor, layout: TokenLayout
    ) -> Union[Tensor, Tuple[Tensor, ...]]:
        """Token scores in the output layout; for tuple inputs, a tuple (zeros for the rest)."""
        scores = layout.to_output(token_scores)
        if not isinstance(inputs, tuple):
            return scores
        rest = tuple(torch.zeros_like(t, dtype=scores.dtype) for t in inputs[1:])
        return (scores,) + rest
