#!/usr/bin/env python3
"""What a capture keeps of each attention layer: the reduction of its influence matrix a method needs.

Both capture engines (:mod:`.fused` and :mod:`.hooks`) hand each selected layer's attention
probabilities ``A`` (and, for the gradient variants, their gradient ``G``), a block of query rows at a
time, to one :class:`InfluenceReducer`, which accumulates straight into what the method reads (see the
mathematics page, section "Influence matrices"):

- ``"matrix"``: ``M = mean_{l,h} W[l,h]``, shape ``(batch, T, T)`` (the pairwise games);
- ``"cls_row"``: the classification position's row of ``M``, ``(batch, T)`` (the CLS game);
- ``"received"``: the mean over real query rows of ``M``'s columns, ``(batch, T)`` (Att, Grad-SAM);
- ``"layer_cls_rows"``: per layer, the classification row of the head-averaged attention (T-TCAV's weights);
- ``"pair_sums"``: for a pairwise game (``game``), each player's sum of pair weights and ``M``'s diagonal,
  ``(batch, 2, T)``, accumulated without ``M`` (:mod:`.pair_sums`; needs the player mask);
- ``"raw"``: every selected layer's full ``A`` (and ``G``), for inspection and tests.

With :attr:`InfluenceRequest.groups` (the layer attributions given a list of layers), the selected layers are
split into groups, each reduced on its own (its own mean over its layers), and the result gets a leading group
axis: one forward (and backward) pass serves every group.

``W = A`` (weighting ``"attention"``) or ``W = A * relu(G)`` (``"grad_attention"``; for ``"ig_attention"`` ``G`` is
the path's mean gradient, :mod:`.integrated_attention`); with ``signed=True`` the ReLU is skipped,
``W = A * G``. No reduction holds more than one layer's rows at a time, except ``"raw"``.
"""

import dataclasses
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple, cast

import torch
from torch import Tensor

from captum_attn_shapley._utils.checks import check_choice
from captum_attn_shapley.capture.influence_matrix import check_signed, check_weighting
from captum_attn_shapley.capture.integrated_attention import DEFAULT_STEPS, check_n_steps
from captum_attn_shapley.capture.pair_sums import PairSums
from captum_attn_shapley.shapley.games import check_pair_game

#: Accepted values of :attr:`InfluenceRequest.reduction`.
REDUCTIONS = ("matrix", "cls_row", "received", "layer_cls_rows", "pair_sums", "raw")

#: Given the batch size, ``T`` and the device: the real (non-padding) tokens ``(batch, T)``, each
#: example's classification position ``(batch,)`` and, for ``"pair_sums"``, the players ``(batch, T)``
#: (else None).
PositionResolver = Callable[[int, int, torch.device], Tuple[Tensor, Tensor, Optional[Tensor]]]


@dataclass(frozen=True)
class InfluenceRequest:
    r"""
    What a capture should return of the selected layers' attention.

    Attributes:
        reduction (str): One of :data:`REDUCTIONS` (see the module docstring). Default: ``"raw"``.
        weighting (str): ``"attention"``, or a gradient weighting: ``"grad_attention"``, ``"ig_attention"``
                    (see :data:`~.influence_matrix.WEIGHTINGS`).
        game (str, optional): With ``"pair_sums"``: ``"mutual"`` or ``"max_mutual"``.
        signed (bool): Keep the sign of the gradient factor (``A * G`` instead of ``A * relu(G)``); only with a
                    gradient weighting. Default: False.
        n_steps (int): Points of the ``"ig_attention"`` path. Default: 20.
        groups (tuple[tuple[int, ...], ...], optional): Layer indices (attention calls) grouped: each
                    group is reduced on its own and the result has a leading group axis. Not with
                    ``"raw"`` and ``"layer_cls_rows"`` (already per layer), nor with ``"ig_attention"``
                    (whose path scales the selected layers together). Default: None (one group of every
                    selected layer).
    """

    reduction: str = "raw"
    weighting: str = "attention"
    game: Optional[str] = None
    signed: bool = False
    n_steps: int = DEFAULT_STEPS
    groups: Optional[Tuple[Tuple[int, ...], ...]] = None

    def __post_init__(self) -> None:
        check_choice(self.reduction, REDUCTIONS, "reduction")
        check_weighting(self.weighting)
        if self.reduction == "layer_cls_rows" and self.weighting != "attention":
            raise ValueError(
                "The 'layer_cls_rows' reduction reads the attention alone: use weighting='attention'."
            )
        if (self.reduction == "pair_sums") != (self.game is not None):
            raise ValueError("The 'pair_sums' reduction, and it only, needs game='mutual' or 'max_mutual'.")
        if self.game is not None:
            check_pair_game(self.game)
        check_signed(self.signed, self.weighting)
        check_n_steps(self.n_steps)
        if self.groups is not None:
            if self.reduction in ("raw", "layer_cls_rows") or self.weighting == "ig_attention":
                raise ValueError(
                    "Layer groups need a reduction that averages over layers ('matrix', 'cls_row', 'received' "
                    "or 'pair_sums') and a weighting whose layers do not interact (not 'ig_attention')."
                )
            if not self.groups or not all(self.groups):
                raise ValueError(f"`groups` must be non-empty groups of layer indices, got {self.groups!r}.")

    @property
    def needs_gradients(self) -> bool:
        """Whether the reduction reads the gradients of the attention."""
        return self.weighting != "attention"

    @property
    def rows(self) -> str:
        """``"cls"`` when only each example's classification row is read, else ``"all"``."""
        return "cls" if self.reduction in ("cls_row", "layer_cls_rows") else "all"


class InfluenceReducer:
    r"""
    Accumulates the selected layers' (weighted) attention into the requested reduction.

    Args:
        request (InfluenceRequest): What to keep.
        num_layers (int): How many layers will be added (the mean's denominator).
        positions (PositionResolver): Resolves the real tokens and classification positions, on the
                    first block of rows (the model's inputs are known by then).
    """

    def __init__(self, request: InfluenceRequest, num_layers: int, positions: PositionResolver) -> None:
        self.request = request
        self.num_layers = num_layers
        self._positions = positions
        self.real: Optional[Tensor] = None
        self.cls: Optional[Tensor] = None
        self._query_weights: Optional[Tensor] = None
        self.total: Optional[Tensor] = None
        self.pairs: Optional[PairSums] = None
        self.layer_rows: Dict[int, Tensor] = {}
        self.raw_attentions: Dict[int, Tensor] = {}
        self.raw_gradients: Dict[int, Tensor] = {}
        #: With ``request.groups``: one reducer per group, and the groups each layer belongs to.
        self.groups: List[InfluenceReducer] = []
        self._groups_of: Dict[int, List[InfluenceReducer]] = {}
        if request.groups is not None:
            single = dataclasses.replace(request, groups=None)
            for layers in request.groups:
                group = InfluenceReducer(single, len(layers), positions)
                self.groups.append(group)
                for layer in set(layers):
                    self._groups_of.setdefault(layer, []).append(group)

    def resolve(self, batch: int, num_tokens: int, device: torch.device) -> Tuple[Tensor, Tensor]:
        r"""
        The real tokens and classification positions of the batch (resolved once).

        Args:
            batch (int): Examples.
            num_tokens (int): ``T``.
            device (torch.device): Where the attention lives.

        Returns:
            tuple[Tensor, Tensor]: Bool ``(batch, T)`` real tokens, long ``(batch,)`` positions.
        """
        if self.real is None or self.cls is None:
            real, cls, players = self._positions(batch, num_tokens, device)
            self._set_positions(real.to(device), cls.to(device), players)
        assert self.real is not None and self.cls is not None
        return self.real, self.cls

    def _set_positions(self, real: Tensor, cls: Tensor, players: Optional[Tensor], sharing: int = 1) -> None:
        self.real, self.cls = real, cls
        for group in self.groups:
            group._set_positions(real, cls, players, sharing=len(self.groups))
        if self.request.reduction == "pair_sums" and not self.groups:
            assert players is not None and self.request.game is not None
            self.pairs = PairSums(self.request.game, players.to(real.device), sharing)

    def add(
        self,
        layer: int,
        rows: Optional[slice],
        attention: Tensor,
        gradient: Optional[Tensor],
        examples: slice = slice(None),
    ) -> None:
        r"""
        Adds a block of query rows of one layer.

        Args:
            layer (int): The layer (its index among the capture's layers).
            rows (slice or None): The query rows held by ``attention``; None means each example's
                        classification row (``attention`` then has one row per example).
            attention (Tensor): ``A`` on those rows, shape ``(batch, heads, rows, T)`` (or, without
                        ``gradient``, the already weighted ``A * relu(G)``).
            gradient (Tensor, optional): ``G`` on the same rows. Overwritten: ``relu(G) * A`` is computed
                        in place.
            examples (slice): The examples of the block (default: all).
        """
        request = self.request
        if request.reduction == "raw":
            self.raw_attentions[layer] = attention
            if gradient is not None:
                self.raw_gradients[layer] = gradient
            return
        if gradient is None:
            weighted = attention
        else:
            weighted = (gradient if request.signed else gradient.clamp_(min=0)).mul_(attention)
        head_mean = weighted.sum(dim=1, dtype=torch.float32).div_(weighted.shape[1])  # (examples, rows, T)
        self.add_mean(layer, rows, head_mean, examples)

    def add_mean(
        self, layer: int, rows: Optional[slice], head_mean: Tensor, examples: slice = slice(None)
    ) -> None:
        r"""
        Adds a block of query rows of one layer already averaged over the heads (as :meth:`add` does, or as the
        compiled kernels of :mod:`.native` write them).

        Args:
            layer (int): The layer (its index among the capture's layers).
            rows (slice or None): As in :meth:`add`.
            head_mean (Tensor): The head mean of the (weighted) attention on those rows, float32
                        ``(examples, rows, T)``; read, not kept (it may be a reused buffer).
            examples (slice): The examples of the block (default: all).
        """
        request = self.request
        if self.groups:
            for group in self._groups_of.get(layer, []):
                group.add_mean(layer, rows, head_mean, examples)
            return
        num_tokens = head_mean.shape[-1]
        if request.reduction == "layer_cls_rows":
            self.layer_rows[layer] = head_mean[:, 0, :].clone()
            return
        assert self.real is not None, "resolve() comes first"
        if self.pairs is not None:
            assert rows is not None
            self.pairs.add(head_mean, rows, examples)
            return
        batch = self.real.shape[0]
        if self.total is None:
            shape = (batch, num_tokens, num_tokens) if request.reduction == "matrix" else (batch, num_tokens)
            self.total = torch.zeros(shape, dtype=torch.float32, device=head_mean.device)
        if request.reduction == "cls_row":
            self.total[examples].add_(head_mean[:, 0, :])
        elif request.reduction == "matrix":
            assert rows is not None
            self.total[examples, rows, :].add_(head_mean)
        else:  # received: the mean over real query rows of each column
            assert rows is not None
            weights = self._received_weights(batch, num_tokens, head_mean.device)[examples, rows]
            self.total[examples].add_(torch.einsum("br,brt->bt", weights, head_mean))

    def _received_weights(self, batch: int, num_tokens: int, device: torch.device) -> Tensor:
        if self._query_weights is None:
            real, _ = self.resolve(batch, num_tokens, device)
            weights = real.to(torch.float32)
            self._query_weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1)
        return self._query_weights

    def result(self) -> Optional[Tensor]:
        r"""
        Returns:
            Tensor or None: The mean over layers of the accumulated reduction (``"matrix"``,
            ``"cls_row"``, ``"received"``, ``"pair_sums"``), with a leading group axis for ``request.groups``;
            None for the per-layer reductions.
        """
        if self.groups:
            return torch.stack([cast(Tensor, group.result()) for group in self.groups])
        if self.pairs is not None:
            sums = torch.stack([self.pairs.pair_weight_sums(), self.pairs.diagonal], dim=1)
            return (sums / max(self.num_layers, 1)).to(torch.float32)
        if self.total is None:
            return None
        return self.total / max(self.num_layers, 1)

    def per_layer(self, layers: List[int]) -> List[Tensor]:
        r"""
        Args:
            layers (list[int]): The capture's layers, in order.

        Returns:
            list[Tensor]: ``"layer_cls_rows"``'s rows, one per layer.
        """
        return [self.layer_rows[i] for i in layers]
