#!/usr/bin/env python3
"""The Shapley values of a prepared batch's games, and their grand coalition values (for AttnGradShapley).

The built-in games use their closed forms (the CLS row, the pairwise games' sums, or the matrix); user games and
the sampling estimators solve each example's game on its players' submatrix.
"""

import torch
from torch import Tensor

from captum_attn_shapley.attr.attention_attribution import PreparedBatch
from captum_attn_shapley.capture.players import players_of
from captum_attn_shapley.shapley import (
    exact_shapley,
    game_function,
    grand_coalition_gain,
    grand_coalition_value,
    grand_coalition_value_from_sums,
    kernel_shapley,
    permutation_shapley,
    shapley_values,
    shapley_values_from_sums,
)
from captum_attn_shapley.shapley.games import GameLike


def grand_values(batch: PreparedBatch, game: GameLike) -> Tensor:
    r"""
    The grand coalition's gain of each example's game, computed independently of the Shapley values (the
    efficiency gap's reference).

    Args:
        batch (PreparedBatch): One batch (one layer group) after the capture pass.
        game (str or Callable): The game.

    Returns:
        Tensor: ``v(N) - v(empty)``, float64, ``(batch,)``.
    """
    if batch.reduction == "cls_row":  # v(N) of the CLS game: the players' sum of the row
        return (batch.matrix.double() * batch.players.double()).sum(dim=1)
    if batch.reduction == "pair_sums":
        sums = batch.matrix.double()
        return grand_coalition_value_from_sums(sums[:, 0], sums[:, 1], batch.players)
    if isinstance(game, str):
        return grand_coalition_value(batch.matrix, batch.players, game, batch.layout.cls_positions, torch.float64)
    matrix = batch.matrix.double()
    values = []
    for b in range(matrix.shape[0]):
        idx = players_of(batch.players[b])
        values.append(grand_coalition_gain(game, matrix[b][idx][:, idx]).to(matrix.device))
    return torch.stack(values)


def solve(
    batch: PreparedBatch, game: GameLike, estimator: str, n_samples: int, seed: int, max_players: int
) -> Tensor:
    r"""
    The Shapley values of each example's game.

    Args:
        batch (PreparedBatch): One batch (one layer group) after the capture pass.
        game (str or Callable): The game.
        estimator (str): ``"exact"``, ``"permutation"`` or ``"kernel"``.
        n_samples, seed, max_players: The sampling estimators' draws and seed (example ``b`` uses
                    ``seed + b``); the most players exact enumeration accepts.

    Returns:
        Tensor: float64, ``(batch, T)``, zero for non-players.
    """
    is_row = batch.reduction == "cls_row"
    if isinstance(game, str) and estimator == "exact":
        if is_row:  # the CLS game is additive: each player's value is its entry of the row
            row = batch.matrix.double()
            return torch.where(batch.players, row, torch.zeros((), dtype=row.dtype, device=row.device))
        if batch.reduction == "pair_sums":  # the capture accumulated the sums the closed form reads
            sums = batch.matrix.double()
            return shapley_values_from_sums(sums[:, 0], sums[:, 1], batch.players)
        # float64 sums, a block at a time: no float64 copy of the whole matrix
        return shapley_values(batch.matrix, batch.players, game, batch.layout.cls_positions, torch.float64)
    matrix = batch.matrix.double()
    phi = torch.zeros(matrix.shape[0], matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    rows = matrix if is_row else batch.layout.cls_rows(matrix)
    for b in range(matrix.shape[0]):
        idx = players_of(batch.players[b])
        if idx.numel() == 0:
            continue
        m = rows[b][idx].diag() if is_row else matrix[b][idx][:, idx]  # the CLS game reads only the row
        value = game if callable(game) else game_function(game, cls_row=rows[b, idx])
        if estimator == "exact":
            values = exact_shapley(value, m, max_players=max_players)
        elif estimator == "permutation":
            values = permutation_shapley(value, m, n_samples, seed=seed + b)
        else:
            values = kernel_shapley(value, m, n_samples, seed=seed + b)
        phi[b, idx] = values.to(device=phi.device, dtype=phi.dtype)
    return phi
