#!/usr/bin/env python3
"""Shapley-Input, exact Shapley values of the model itself, as a Captum attribution.

See the mathematics page of the documentation, section "The baselines".
"""

import numbers
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_attn_shapley._utils.deprecation import renamed_keyword
from captum_attn_shapley._utils.forward import (
    args_for_rows,
    as_tuple,
    class_probabilities,
    forward_args_tuple,
    logits_from_output,
)
from captum_attn_shapley._utils.input_warnings import warn_below_precision, warn_if_probabilities
from captum_attn_shapley._utils.log import log_usage
from captum_attn_shapley._utils.targets import TargetLike
from captum_attn_shapley._utils.validation import check_token_id
from captum_attn_shapley.attr.attention_attribution import AttentionAttribution, PreparedBatch
from captum_attn_shapley.capture import TokenLayout
from captum_attn_shapley.capture.players import players_of
from captum_attn_shapley.shapley import exact_shapley

AttributionOutput = Union[Tensor, Tuple[Tensor, ...]]


class ShapleyInput(AttentionAttribution):
    r"""
    Exact Shapley values of the model itself ("Shapley-Input"; "The baselines" on
    :doc:`the mathematics page </mathematics>`):
    ``v(S)`` is the softmax probability of the target class when the players outside
    ``S`` are replaced (text: by the ``baselines`` token id, typically ``[MASK]``; images:
    their patch's pixels by the ``baselines`` value). All ``2^n`` coalitions are
    evaluated, so only short inputs are feasible: more than ``max_players`` players raise an
    error. The coalitions of all examples are laid out one after the other and cut into
    forward passes of ``perturbations_per_eval`` rows (several short examples share a pass;
    a pass already a quarter full is not extended by an example of another length), each
    pass padded only to the longest real length among its examples (trailing padding is
    dropped from the token ids and every ``(batch, seq)`` argument, unless an argument has
    another axis of the sequence's length); only the target's probability of each coalition
    is kept, and the values are weighted into Shapley values by
    :func:`~captum_attn_shapley.shapley.exact_shapley` without further forward passes.

    Args: see :class:`~captum_attn_shapley.AttentionAttribution`.

    Examples::

        >>> shap = ShapleyInput(model)
        >>> phi = shap.attribute(input_ids, baselines=tokenizer.mask_token_id,
        ...                      additional_forward_args=(attention_mask,))
    """

    @classmethod
    def get_name(cls) -> str:
        return "Shapley-Input"

    def has_convergence_delta(self) -> bool:
        return True

    @renamed_keyword("batch_size", "perturbations_per_eval")
    @log_usage()
    def attribute(
        self,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        baselines: Union[int, float, None] = None,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        player_mask: Optional[Tensor] = None,
        max_players: int = 14,
        perturbations_per_eval: int = 256,
        return_convergence_delta: bool = False,
    ) -> Union[AttributionOutput, Tuple[AttributionOutput, Tensor]]:
        r"""
        Args:
            inputs (Tensor or tuple[Tensor, ...]): As in :meth:`AttnGradShapley.attribute`;
                        the first tensor is the one whose players are replaced.
            baselines (int or float): The replacement: a token id for text (required,
                        e.g. ``tokenizer.mask_token_id``), a pixel value for images
                        (default 0).
            target, additional_forward_args, player_mask: As in
                        :meth:`AttnGradShapley.attribute`.
            max_players (int): Largest number of players accepted (``2^n`` forwards).
            perturbations_per_eval (int): Coalitions per forward pass (Captum's name), of
                        one or several examples. Formerly ``batch_size`` (deprecated alias,
                        removed in the next release).
            return_convergence_delta (bool): Also return the efficiency gap.

        Returns:
            Attributions in the same layout as :meth:`AttnGradShapley.attribute`
            (and the delta, shape ``(batch,)``, if requested).
        """
        if perturbations_per_eval < 1:
            raise ValueError("perturbations_per_eval must be at least 1.")
        _, player_mask = self._check_call(inputs, additional_forward_args, None, player_mask)
        prepared = self._prepare(
            inputs, target, additional_forward_args, "attention", None, player_mask, reduction="cls_row"
        )
        if prepared.layout.kind == "text":
            if baselines is None:
                raise ValueError(
                    "ShapleyInput needs `baselines`, the replacement token id for text, e.g. "
                    "baselines=tokenizer.mask_token_id."
                )
            baselines = check_token_id(baselines, self.model, "baselines")
        elif baselines is not None and (isinstance(baselines, bool) or not isinstance(baselines, numbers.Real)):
            raise TypeError(f"`baselines` must be a pixel value (a number) for images, got {baselines!r}.")
        warn_if_probabilities(
            prepared.captured.logits,
            "ShapleyInput (its game is the softmax probability of the target class)",
            "Return logits from the forward function.",
        )
        counts = prepared.players.sum(dim=1)
        if int(counts.max()) > max_players:
            raise ValueError(
                f"Shapley-Input enumerates 2^n coalitions: an example has {int(counts.max())} players, "
                f"above max_players={max_players}. Use shorter inputs, raise max_players, or use a "
                "sampling method (captum.attr.ShapleyValueSampling)."
            )
        values = _CoalitionValues(
            self.forward_func, prepared, inputs, baselines, additional_forward_args, perturbations_per_eval
        ).compute()
        phi = torch.zeros(prepared.players.shape, dtype=torch.float64)
        totals: List[Tensor] = []
        for b, v in enumerate(values):
            idx = players_of(prepared.players[b]).cpu()
            n = idx.numel()
            if n:
                phi[b, idx] = exact_shapley(_lookup(v), torch.zeros(n, n, dtype=torch.float64), max_players=n)
            totals.append(v[-1] - v[0])
        dtype = prepared.matrix.dtype
        device = prepared.matrix.device
        attributions = self._format_output(inputs, phi.to(device=device, dtype=dtype), prepared.layout)
        warn_below_precision(attributions, self.model)
        if return_convergence_delta:
            delta = phi.sum(dim=1) - torch.stack(totals)
            return attributions, delta.to(device=device, dtype=dtype)
        return attributions


class _CoalitionValues:
    """
    ``v(S)`` for all ``2^n`` coalitions of every example: the rows ``(example, coalition)`` are
    laid out example after example (examples ordered by length), cut into forward passes of
    ``rows`` rows (so one pass may hold the coalitions of several short examples; a pass at
    least a quarter full is not extended with a longer example), each pass padded only to the
    longest real length among its examples (text: trailing padding beyond it is dropped from
    the ids and from every ``(batch, seq)`` argument).
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        prepared: PreparedBatch,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        baselines: Union[int, float, None],
        additional_forward_args: Any,
        rows: int,
    ) -> None:
        self.forward_func = forward_func
        self.layout: TokenLayout = prepared.layout
        inputs_tuple = as_tuple(inputs)
        self.first: Tensor = inputs_tuple[0]
        self.batch = self.first.shape[0]
        self.others = inputs_tuple[1:] + forward_args_tuple(additional_forward_args)
        self.players = [players_of(prepared.players[b]).to(self.first.device) for b in range(self.batch)]
        self.targets = prepared.captured.target.to(self.first.device)
        self.baseline = 0.0 if baselines is None else baselines
        self.rows = rows
        self.widths = self._widths(prepared.real_tokens)

    def _widths(self, real_tokens: Tensor) -> List[int]:
        """Columns each example needs: up to its last real token (text), else all of them."""
        seq = self.first.shape[1] if self.first.dim() > 1 else 0
        if self.layout.kind != "text" or self.first.dim() != 2 or not _trimmable(self.others, self.batch, seq):
            return [seq] * self.batch
        widths = []
        for b in range(self.batch):
            real = torch.nonzero(real_tokens[b].cpu()).flatten()
            last = int(real.max()) + 1 if real.numel() else seq
            if self.players[b].numel():
                last = max(last, int(self.players[b].max()) + 1)
            widths.append(min(max(last, 1), seq))
        return widths

    def compute(self) -> List[Tensor]:
        """The values of every example, float64 of length ``2^n``, indexed by coalition bitmask."""
        values = [torch.empty(2 ** p.numel(), dtype=torch.float64) for p in self.players]
        order = sorted(range(self.batch), key=lambda b: (self.widths[b], b))
        segments: List[Tuple[int, int, int]] = []
        used = 0
        for b in order:
            if segments and self.widths[b] != self.widths[segments[-1][0]] and 4 * used >= self.rows:
                self._run(segments, values)  # a pass a quarter full or more pads no shorter example
                segments, used = [], 0
            start, total = 0, values[b].numel()
            while start < total:
                take = min(total - start, self.rows - used)
                segments.append((b, start, start + take))
                used += take
                start += take
                if used == self.rows:
                    self._run(segments, values)
                    segments, used = [], 0
        if segments:
            self._run(segments, values)
        return values

    @torch.no_grad()
    def _run(self, segments: Sequence[Tuple[int, int, int]], values: List[Tensor]) -> None:
        width = max(self.widths[b] for b, _, _ in segments)
        device = self.first.device
        example = torch.cat([torch.full((stop - start,), b, dtype=torch.long) for b, start, stop in segments])
        example = example.to(device)
        x = torch.cat([self._masked(b, start, stop, width) for b, start, stop in segments])
        seq = self.first.shape[1] if self.first.dim() > 1 else 0
        trim = width if self.first.dim() == 2 and width < seq else None
        others = tuple(args_for_rows(arg, example, self.batch, seq, trim) for arg in self.others)
        logits = logits_from_output(self.forward_func(x, *others))
        if logits.shape[0] != x.shape[0]:
            raise ValueError(
                f"The forward function returned {logits.shape[0]} rows for {x.shape[0]} inputs: it must "
                "return one row of class scores per input."
            )
        probability = class_probabilities(logits)[
            torch.arange(x.shape[0], device=logits.device), self.targets[example].to(logits.device)
        ]
        probability = probability.cpu()
        offset = 0
        for b, start, stop in segments:
            values[b][start:stop] = probability[offset : offset + stop - start]
            offset += stop - start

    def _masked(self, b: int, start: int, stop: int, width: int) -> Tensor:
        """Example ``b``'s inputs for the coalitions ``start .. stop - 1`` (bitmasks over its players)."""
        players = self.players[b]
        device = self.first.device
        masks = torch.arange(start, stop, dtype=torch.int64, device=device)
        bits = torch.arange(players.numel(), dtype=torch.int64, device=device)
        dropped = ((masks.unsqueeze(1) >> bits) & 1) == 0
        k = stop - start
        row = self.first[b : b + 1]
        if self.layout.kind == "image" and self.layout.grid is not None:
            x = row.expand(k, *row.shape[1:])
            rows, cols = self.layout.grid
            patch_h, patch_w = x.shape[-2] // rows, x.shape[-1] // cols
            grid = torch.zeros(k, rows * cols, dtype=torch.bool, device=device)
            grid[:, players - self.layout.num_prefix_tokens] = dropped
            blocks = grid.reshape(k, 1, rows, cols)
            blocks = blocks.repeat_interleave(patch_h, dim=2).repeat_interleave(patch_w, dim=3)
            pad_h, pad_w = x.shape[-2] - blocks.shape[-2], x.shape[-1] - blocks.shape[-1]
            blocks = torch.nn.functional.pad(blocks, (0, pad_w, 0, pad_h))
            return torch.where(blocks, torch.full_like(x, float(self.baseline)), x)
        if row.dim() == 2:
            row = row[:, :width]
        x = row.expand(k, *row.shape[1:]).clone()
        kept = x[:, players]
        x[:, players] = torch.where(dropped, torch.full_like(kept, self.baseline), kept)
        return x


def _trimmable(args: Tuple[Any, ...], batch: int, seq: int) -> bool:
    """Whether dropping trailing columns is safe: every argument with a sequence axis is ``(batch, seq)``."""
    for arg in args:
        if isinstance(arg, Tensor) and arg.dim() > 0 and arg.shape[0] in (batch, 1):
            if seq in tuple(arg.shape[1:]) and not (arg.dim() == 2 and arg.shape[1] == seq):
                return False
    return True


def _lookup(values: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """The game ``v(S)`` read from precomputed values indexed by the coalition's bitmask."""

    def game(m: Tensor, coalitions: Tensor) -> Tensor:
        bits = torch.arange(coalitions.shape[1], dtype=torch.int64, device=coalitions.device)
        index = (coalitions.to(torch.int64) << bits).sum(dim=1)
        return values.to(m.device)[index.to(values.device)]

    return game
