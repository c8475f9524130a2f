#!/usr/bin/env python3
"""AttnGradShapley: exact Shapley values of attention games, as a Captum attribution."""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from torch import Tensor
from torch.nn import Module

from captum_attn_shapley._utils.checks import check_choice
from captum_attn_shapley._utils.input_warnings import warn_below_precision
from captum_attn_shapley._utils.log import log_usage
from captum_attn_shapley._utils.targets import TargetLike
from captum_attn_shapley.attr._solve import grand_values, solve
from captum_attn_shapley.attr.attention_attribution import AttentionAttribution
from captum_attn_shapley.capture import ModuleSpec, OutputSelector
from captum_attn_shapley.capture.influence_matrix import check_signed, check_weighting
from captum_attn_shapley.capture.integrated_attention import (
    DEFAULT_STEPS,
    check_internal_batch_size,
    check_n_steps,
)
from captum_attn_shapley.capture.players import ClassificationPosition
from captum_attn_shapley.shapley.games import PAIR_GAMES, GameLike, check_game

#: Accepted values of the ``estimator`` option.
ESTIMATORS = ("exact", "permutation", "kernel")

_GAME_NAMES = {"cls": "CLS", "mutual": "Mutual", "max_mutual": "Max-Mutual"}

#: The weightings' names in the variants' names (the paper's two, Hao et al.'s IG-Att, AttnLRP's LRP-Att).
_WEIGHTING_NAMES = {
    "attention": "Att",
    "grad_attention": "Grad-Att",
    "ig_attention": "IG-Att",
    "lrp_attention": "LRP-Att",
}


def variant_name(game: GameLike, weighting: str, signed: bool = False) -> str:
    r"""
    The paper's name of a variant, e.g. ``"Shapley-Grad-Att-Max-Mutual"``; ``"Shapley-IG-Att-CLS"`` for the
    ``"ig_attention"`` weighting, and ``"Shapley-Signed-Grad-Att-CLS"`` with ``signed=True``.

    Args:
        game (str or Callable): The game.
        weighting (str): One of :data:`~captum_attn_shapley.capture.WEIGHTINGS`.
        signed (bool): Whether the gradient factor keeps its sign.

    Returns:
        str: The variant's name.
    """
    kind = ("Signed-" if signed else "") + _WEIGHTING_NAMES.get(weighting, weighting)
    if callable(game):
        label = getattr(game, "__name__", "custom")
    else:
        label = _GAME_NAMES[game]
    return f"Shapley-{kind}-{label}"


#: The paper's six exact variants, by name: ``(game, weighting)``.
PAPER_VARIANTS: Dict[str, Tuple[str, str]] = {
    variant_name(game, weighting): (game, weighting)
    for weighting in ("attention", "grad_attention")
    for game in ("cls", "mutual", "max_mutual")
}


def _reduction_for(game: GameLike, estimator: str = "exact") -> Tuple[str, Optional[str]]:
    """What a game reads of ``M``, and the pairwise game whose sums the capture accumulates: the CLS game
    one row; the exact pairwise games their pair sums (no ``T x T`` matrix); estimators and user games the
    whole matrix."""
    if game == "cls":
        return "cls_row", None
    if isinstance(game, str) and game in PAIR_GAMES and estimator == "exact":
        return "pair_sums", game
    return "matrix", None


class AttnGradShapley(AttentionAttribution):
    r"""
    Shapley values of a cooperative game between tokens defined by the transformer's
    attention (sections "Influence matrices" and "Games and their Shapley values" on
    :doc:`the mathematics page </mathematics>`), from one forward and one backward pass over the
    batch.

    The influence matrix ``M`` averages the attention probabilities over the selected
    layers and all heads, optionally weighted elementwise by the ReLU of the gradient of
    the target logit w.r.t. the attention (``weighting="grad_attention"``), or of its
    integral along the attention path from 0 to ``A`` (``weighting="ig_attention"``, Hao et
    al., AAAI 2021: ``A * relu(mean_k dy/dA at k/n_steps A)``, the selected layers scaled
    together, all ``n_steps`` points in one batched pass; Shapley-IG-Att-*), or by the
    gradient AttnLRP's modified backward brings to ``A`` (``weighting="lrp_attention"``:
    ``A * relu(dA)``, the positive LRP relevance of the attention probabilities, from the
    same one backward pass; Shapley-LRP-Att-*; see :class:`~captum_attn_shapley.attr.AttnLRP`). ``signed=True``
    skips the ReLU (``A * G``): the gradient factor keeps its sign, so tokens can count
    against the target. The game is played by the players (text: real tokens except special
    tokens; images: patches):

    - ``"cls"``: ``v(S) = sum_{i in S} M[0, i]`` (Shapley-[Grad-]Att-CLS),
    - ``"mutual"``: pairwise ``m_ij + m_ji`` (Shapley-[Grad-]Att-Mutual),
    - ``"max_mutual"``: pairwise ``max(m_ij, m_ji)`` (Shapley-[Grad-]Att-Max-Mutual),
    - or a user callable ``game(m, coalitions) -> values``.

    The built-in games are solved EXACTLY in closed form (O(n^2) per example, any
    length); user games by exact enumeration (up to ``max_players`` players) or by the
    unbiased permutation / KernelSHAP estimators. The attributions satisfy efficiency:
    they sum to ``v(N) - v(empty)``; the convergence delta is that gap.

    Signed weights: all three closed forms hold for any real ``M`` (the CLS game is additive
    with any coefficients; the pairwise games are sums of pair games and singleton terms,
    solved by linearity whatever their signs; ``max(m_ij, m_ji)`` is then the larger signed
    value, not the larger magnitude), so ``signed=True`` is accepted with every game; it is
    refused with ``weighting="attention"``, which has no gradient factor. ``signed`` is a
    separate flag rather than more weighting names because it applies the same way to
    every gradient weighting (Grad-Att, IG-Att, and any added later).

    Args:
        forward_func (Callable or Module): The model, or a Captum-style function wrapping
                    it that returns logits (or a Hugging Face output with ``logits``).
        game (str or Callable): Default game of this instance (see above).
                    Default: ``"cls"`` (with ``"grad_attention"``: Shapley-Grad-Att-CLS, the most
                    faithful of the paper's six variants in the package's pre-registered study; see
                    :doc:`/which_method`).
        weighting (str): Default influence matrix: ``"grad_attention"``, ``"attention"``
                    ``"ig_attention"`` or ``"lrp_attention"`` (both always on the fused engine: a
                    Hugging Face model in eval mode; eager attention is switched to ``sdpa`` for the
                    call). Default: ``"grad_attention"``.
        signed (bool): Default of :meth:`attribute`'s ``signed``. Default: False.
        model, attention_modules, attention_output_index, special_token_ids: See :class:`AttentionAttribution`.
        switch_to_eager, classification_position, engine: See :class:`AttentionAttribution`.

    Examples::

        >>> model = AutoModelForSequenceClassification.from_pretrained(name).eval()  # sdpa: fused capture
        >>> enc = tokenizer(["the crew was rude"], return_tensors="pt", padding=True)
        >>> explainer = AttnGradShapley(model, game="max_mutual", weighting="grad_attention")
        >>> attributions, delta = explainer.attribute(
        ...     enc["input_ids"], additional_forward_args=(enc["attention_mask"],),
        ...     return_convergence_delta=True)
        >>> attributions.shape  # (batch, seq_len), zero at [CLS], [SEP] and padding
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
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
        super().__init__(
            forward_func,
            model=model,
            attention_modules=attention_modules,
            attention_output_index=attention_output_index,
            special_token_ids=special_token_ids,
            switch_to_eager=switch_to_eager,
            classification_position=classification_position,
            engine=engine,
        )
        self.game = check_game(game)
        self.weighting = check_weighting(weighting)
        self.signed = check_signed(signed, self.weighting)

    @classmethod
    def get_name(cls) -> str:
        return "AttnGradShapley"

    @property
    def variant_name(self) -> str:
        """The paper's name of this instance's default variant."""
        return variant_name(self.game, self.weighting, self.signed)

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
        layers: Optional[Sequence[int]] = None,
        player_mask: Optional[Tensor] = None,
        estimator: str = "exact",
        n_samples: int = 1000,
        seed: int = 0,
        max_players: int = 16,
        return_convergence_delta: bool = False,
        signed: Optional[bool] = None,
        n_steps: int = DEFAULT_STEPS,
        internal_batch_size: Optional[int] = None,
    ) -> Union[Tensor, Tuple[Tensor, ...], Tuple[Union[Tensor, Tuple[Tensor, ...]], Tensor]]:
        r"""
        Args:
            inputs (Tensor or tuple[Tensor, ...]): The model inputs, batch first:
                        ``input_ids`` (batch, seq_len) for text, ``pixel_values``
                        (batch, 3, H, W) for images. Called as
                        ``forward_func(*inputs, *additional_forward_args)``.
            target (int, list[int], Tensor, optional): Class to explain, as in Captum: one
                        int for all examples, one per example, or None (default) for the
                        predicted class.
            additional_forward_args (Any, optional): Extra positional arguments of
                        ``forward_func``, e.g. ``(attention_mask,)``.
            game (str or Callable, optional): Overrides the instance's game.
            weighting (str, optional): Overrides the instance's weighting.
            layers (sequence of int, optional): Layers to average over (default: all;
                        negative indices count from the end).
            player_mask (Tensor, optional): Bool ``(batch, seq_len)`` mask of the players
                        (``(batch, rows, cols)`` over the patch grid for images). Default:
                        real tokens minus special tokens (text), all patches (images).
            estimator (str): ``"exact"`` (default: closed form for built-in games,
                        enumeration for user games), ``"permutation"`` or ``"kernel"``
                        (unbiased sampling estimators, for any game).
            n_samples (int): Permutations / coalitions drawn by the sampling estimators.
            seed (int): Seed of the sampling estimators (example ``b`` uses ``seed + b``).
            max_players (int): Largest number of players exact enumeration accepts.
            return_convergence_delta (bool): Also return the efficiency gap
                        ``sum_i phi_i - (v(N) - v(empty))`` per example.
            signed (bool, optional): Keep the sign of the gradient factor (``A * G``, no ReLU).
                        Default: the instance's.
            n_steps (int): Points of the ``"ig_attention"`` path (right Riemann sum,
                        ``alpha = k / n_steps``, ``k = 1 .. n_steps``). Default: 20.
            internal_batch_size (int, optional): With ``"ig_attention"``: the most rows
                        (examples x ``n_steps``) of one forward and backward pass; more
                        examples are run in chunks. Default: None (one pass).

        Returns:
            **attributions** or 2-element tuple of **attributions**, **delta**:
            - **attributions** (*Tensor* or *tuple[Tensor, ...]*): Text and generic token
                        models: shape ``(batch, seq_len)`` aligned with ``input_ids``,
                        zero for non-players. Images: per-patch scores of shape
                        ``(batch, rows, cols)``; see
                        :func:`~captum_attn_shapley.patch_attributions_to_pixels` for
                        pixel maps. For tuple inputs, a tuple whose first element holds
                        them (the other elements are zeros).
            - **delta** (*Tensor*, returned if return_convergence_delta=True): Shape
                        ``(batch,)``, the efficiency gap (float rounding for the exact
                        estimators).
        """
        args = (inputs, target, additional_forward_args, game, weighting, layers, player_mask)
        sampling = (estimator, n_samples, seed, max_players, return_convergence_delta)
        result: Union[Tensor, Tuple[Tensor, ...], Tuple[Union[Tensor, Tuple[Tensor, ...]], Tensor]]
        result = self._attribute(*args, *sampling, signed, n_steps, internal_batch_size)[0]
        return result

    def _attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike,
        additional_forward_args: Any,
        game: Optional[GameLike],
        weighting: Optional[str],
        layers: Optional[Sequence[int]],
        player_mask: Optional[Tensor],
        estimator: str = "exact",
        n_samples: int = 1000,
        seed: int = 0,
        max_players: int = 16,
        return_convergence_delta: bool = False,
        signed: Optional[bool] = None,
        n_steps: int = DEFAULT_STEPS,
        internal_batch_size: Optional[int] = None,
        groups: Optional[Sequence[Sequence[int]]] = None,
    ) -> List[Any]:
        """:meth:`attribute`'s computation: its result, in a list of one; with ``groups`` (lists of layer
        indices, :class:`~captum_attn_shapley.attr.LayerAttnGradShapley`), one result per group, all groups
        from one capture pass."""
        game, weighting = self._options(game, weighting)
        check_choice(estimator, ESTIMATORS, "estimator")
        path = self._path_options(weighting, signed, n_steps, internal_batch_size)
        layers, player_mask = self._check_call(inputs, additional_forward_args, layers, player_mask)
        prepared = self._prepare(
            inputs,
            target,
            additional_forward_args,
            weighting,
            layers,
            player_mask,
            *_reduction_for(game, estimator),
            **path,
            groups=groups,
        )
        results: List[Any] = []
        for batch in prepared.per_group():
            phi = solve(batch, game, estimator, n_samples, seed, max_players)
            attributions = self._format_output(inputs, phi.to(batch.matrix.dtype), batch.layout)
            warn_below_precision(attributions, self.model)
            if return_convergence_delta:
                total = grand_values(batch, game)  # computed independently of phi
                results.append((attributions, (phi.sum(dim=1) - total).to(batch.matrix.dtype)))
            else:
                results.append(attributions)
        return results

    def compute_convergence_delta(
        self,
        attributions: Union[Tensor, Tuple[Tensor, ...]],
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike = None,
        additional_forward_args: Any = None,
        game: Optional[GameLike] = None,
        weighting: Optional[str] = None,
        layers: Optional[Sequence[int]] = None,
        player_mask: Optional[Tensor] = None,
        signed: Optional[bool] = None,
        n_steps: int = DEFAULT_STEPS,
    ) -> Tensor:
        r"""
        The efficiency gap of given attributions: ``sum_i phi_i - (v(N) - v(empty))``.

        Args:
            attributions (Tensor or tuple): As returned by :meth:`attribute`.
            inputs, target, additional_forward_args, game, weighting, layers, player_mask:
                        The arguments :meth:`attribute` was called with.
            signed, n_steps: The arguments :meth:`attribute` was called with.

        Returns:
            Tensor: Shape ``(batch,)``.
        """
        args = (inputs, target, additional_forward_args, game, weighting, layers, player_mask)
        return self._deltas([attributions], *args, signed=signed, n_steps=n_steps)[0]

    def _deltas(
        self,
        attributions: Sequence[Union[Tensor, Tuple[Tensor, ...]]],
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        target: TargetLike,
        additional_forward_args: Any,
        game: Optional[GameLike],
        weighting: Optional[str],
        layers: Optional[Sequence[int]],
        player_mask: Optional[Tensor],
        signed: Optional[bool] = None,
        n_steps: int = DEFAULT_STEPS,
        groups: Optional[Sequence[Sequence[int]]] = None,
    ) -> List[Tensor]:
        """:meth:`compute_convergence_delta`'s computation, for one attribution or, with ``groups``, one per
        layer group (from one capture pass)."""
        game, weighting = self._options(game, weighting)
        path = self._path_options(weighting, signed, n_steps, None)
        layers, player_mask = self._check_call(inputs, additional_forward_args, layers, player_mask)
        head = (inputs, target, additional_forward_args, weighting, layers, player_mask)
        prepared = self._prepare(*head, *_reduction_for(game), **path, groups=groups)
        deltas = []
        for given, batch in zip(attributions, prepared.per_group()):
            first = given[0] if isinstance(given, tuple) else given
            total = grand_values(batch, game)
            deltas.append(first.reshape(first.shape[0], -1).sum(dim=1).to(total.dtype) - total)
        return deltas

    def _options(self, game: Optional[GameLike], weighting: Optional[str]) -> Tuple[GameLike, str]:
        """The call's game and weighting: the arguments, else the instance's defaults."""
        return (
            check_game(self.game if game is None else game),
            check_weighting(self.weighting if weighting is None else weighting),
        )

    def _path_options(
        self, weighting: str, signed: Optional[bool], n_steps: int, internal_batch_size: Optional[int]
    ) -> Dict[str, Any]:
        """The call's ``signed``, ``n_steps`` and ``internal_batch_size``, checked."""
        signed = self.signed and weighting != "attention" if signed is None else signed
        return dict(
            signed=check_signed(signed, weighting),
            n_steps=check_n_steps(n_steps),
            internal_batch_size=check_internal_batch_size(internal_batch_size),
        )
