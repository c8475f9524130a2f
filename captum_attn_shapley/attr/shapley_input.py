#!/usr/bin/env python3
"""Shapley-Input, exact Shapley values of the model itself, as a Captum attribution.

See the mathematics page of the documentation, section "The baselines".
"""

import numbers
from typing import Any, List, Optional, Tuple, Union

import torch
from torch import Tensor

from captum_attn_shapley._utils.deprecation import renamed_keyword
from captum_attn_shapley._utils.forward import (
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
from captum_attn_shapley.shapley import exact_shapley, grand_coalition_gain

AttributionOutput = Union[Tensor, Tuple[Tensor, ...]]


class ShapleyInput(AttentionAttribution):
    r"""
    Exact Shapley values of the model itself ("Shapley-Input"; "The baselines" on
    :doc:`the mathematics page </mathematics>`):
    ``v(S)`` is the softmax probability of the target class when the players outside
    ``S`` are replaced (text: by the ``baselines`` token id, typically ``[MASK]``; images:
    their patch's pixels by the ``baselines`` value). All ``2^n`` coalitions are
    evaluated with batched forward passes, so only short inputs are feasible: more than
    ``max_players`` players raise an error.

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
            perturbations_per_eval (int): Coalitions per forward pass (Captum's name). Formerly
                        ``batch_size`` (deprecated alias, removed in the next release).
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
        phi = torch.zeros(prepared.players.shape, dtype=torch.float64)
        totals: List[Tensor] = []
        for b in range(prepared.players.shape[0]):
            game = _ModelGame(
                self, prepared, b, inputs, baselines, additional_forward_args, perturbations_per_eval
            )
            idx = players_of(prepared.players[b]).cpu()
            unused = torch.zeros(idx.numel(), idx.numel())  # the model game ignores the matrix
            if idx.numel():
                phi[b, idx] = exact_shapley(game, unused, max_players=max_players).double().cpu()
            totals.append(grand_coalition_gain(game, unused).cpu())
        dtype = prepared.matrix.dtype
        device = prepared.matrix.device
        attributions = self._format_output(inputs, phi.to(device=device, dtype=dtype), prepared.layout)
        warn_below_precision(attributions, self.model)
        if return_convergence_delta:
            delta = phi.sum(dim=1) - torch.stack(totals)
            return attributions, delta.to(device=device, dtype=dtype)
        return attributions


class _ModelGame:
    """``v(S)`` = target probability with non-coalition players replaced, in batches."""

    def __init__(
        self,
        method: ShapleyInput,
        prepared: PreparedBatch,
        index: int,
        inputs: Union[Tensor, Tuple[Tensor, ...]],
        baselines: Union[int, float, None],
        additional_forward_args: Any,
        perturbations_per_eval: int,
    ) -> None:
        self.method = method
        self.layout: TokenLayout = prepared.layout
        self.players = players_of(prepared.players[index])
        self.target = int(prepared.captured.target[index])
        inputs_tuple = as_tuple(inputs)
        self.first: Tensor = inputs_tuple[0][index : index + 1]
        self.rest = tuple(_row(t, index, inputs_tuple[0].shape[0]) for t in inputs_tuple[1:])
        extra = forward_args_tuple(additional_forward_args)
        self.extra = tuple(_row(a, index, inputs_tuple[0].shape[0]) for a in extra)
        self.baseline = 0.0 if baselines is None else baselines
        self.perturbations_per_eval = perturbations_per_eval

    def _masked(self, coalitions: Tensor) -> Tensor:
        k = coalitions.shape[0]
        x = self.first.expand(k, *self.first.shape[1:]).clone()
        dropped = ~coalitions.to(x.device)
        if self.layout.kind == "image" and self.layout.grid is not None:
            rows, cols = self.layout.grid
            patch_h, patch_w = x.shape[-2] // rows, x.shape[-1] // cols
            grid = torch.zeros(k, rows * cols, dtype=torch.bool, device=x.device)
            grid[:, self.players.to(x.device) - self.layout.num_prefix_tokens] = dropped
            blocks = grid.reshape(k, 1, rows, cols)
            blocks = blocks.repeat_interleave(patch_h, dim=2).repeat_interleave(patch_w, dim=3)
            pad_h, pad_w = x.shape[-2] - blocks.shape[-2], x.shape[-1] - blocks.shape[-1]
            blocks = torch.nn.functional.pad(blocks, (0, pad_w, 0, pad_h))
            return torch.where(blocks, torch.full_like(x, float(self.baseline)), x)
        positions = self.players.to(x.device)
        replaced = x[:, positions]
        x[:, positions] = torch.where(dropped, torch.full_like(replaced, self.baseline), replaced)
        return x

    @torch.no_grad()
    def __call__(self, m: Tensor, coalitions: Tensor) -> Tensor:
        values = []
        for start in range(0, coalitions.shape[0], self.perturbations_per_eval):
            chunk = coalitions[start : start + self.perturbations_per_eval]
            k = chunk.shape[0]
            x = self._masked(chunk)
            rest = tuple(_expand(t, k) for t in self.rest)
            extra = tuple(_expand(a, k) for a in self.extra)
            logits = logits_from_output(self.method.forward_func(x, *rest, *extra))
            values.append(class_probabilities(logits)[:, self.target])
        return torch.cat(values).cpu()


def _row(arg: Any, index: int, batch: int) -> Any:
    if isinstance(arg, Tensor) and arg.dim() > 0 and arg.shape[0] == batch:
        return arg[index : index + 1]
    return arg


def _expand(arg: Any, k: int) -> Any:
    if isinstance(arg, Tensor) and arg.dim() > 0 and arg.shape[0] == 1:
        return arg.expand(k, *arg.shape[1:])
    return arg
