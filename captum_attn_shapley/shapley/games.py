#!/usr/bin/env python3
"""Attention games and their exact Shapley values.

See the mathematics page of the documentation, section "Games and their Shapley values".

Three built-in games are defined on an influence matrix ``M`` (``T x T``) and a set of
players (tokens). ``m`` is ``M`` restricted to the players (``n x n``).

- ``"cls"``:        ``v(S) = sum_{i in S} M[0, i]``  (additive: ``phi_i = M[0, i]``)
- ``"mutual"``:     ``v({i}) = m_ii``, ``v(S) = sum_{i<j in S} (m_ij + m_ji)`` for ``|S| >= 2``
- ``"max_mutual"``: ``v({i}) = m_ii``, ``v(S) = sum_{i<j in S} max(m_ij, m_ji)`` for ``|S| >= 2``

For the two pairwise games, with ``w_ij`` the pair weight, the Shapley value is

    phi_i = 1/2 sum_{j != i} w_ij + (m_ii - mean_k m_kk) / (n - 1)    (n >= 2)
    phi_1 = m_11                                                       (n = 1)

(each pair gives half its weight to each member; each singleton term ``m_kk [S = {k}]``
gives ``1/n`` of it to ``k`` and ``-1/(n(n-1))`` to every other player). Every function
here is vectorised over a padded batch: non-players get exactly zero.
"""

from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from captum_attn_shapley._utils.checks import check_choice
from captum_attn_shapley.shapley._estimation import GameFunction

#: The built-in games, by their option name.
BUILTIN_GAMES = ("cls", "mutual", "max_mutual")

#: The built-in pairwise games (closed form in the pair weights ``w_ij``).
PAIR_GAMES = ("mutual", "max_mutual")

GameLike = Union[str, GameFunction]


def check_game(game: GameLike) -> GameLike:
    r"""
    Validates the ``game`` option.

    Args:
        game (str or Callable): One of ``"cls"``, ``"mutual"``, ``"max_mutual"``, or a
                    user :data:`GameFunction`.

    Returns:
        str or Callable: The game.
    """
    if callable(game):
        return game
    return check_choice(game, BUILTIN_GAMES, "game", " or a callable game(m, coalitions) -> values")


def check_pair_game(game: str) -> str:
    r"""
    Validates the name of a pairwise game.

    Args:
        game (str): ``"mutual"`` or ``"max_mutual"``.

    Returns:
        str: The game.
    """
    if game not in PAIR_GAMES:
        raise ValueError(f"{game!r} is not a pairwise game; use 'mutual' or 'max_mutual'.")
    return game


def pair_weights(matrix: Tensor, game: str) -> Tensor:
    r"""
    The symmetric pair weights ``w_ij`` of a pairwise game.

    Args:
        matrix (Tensor): Influence matrices, shape ``(..., n, n)``.
        game (str): ``"mutual"`` (``m_ij + m_ji``) or ``"max_mutual"``
                    (``max(m_ij, m_ji)``).

    Returns:
        Tensor: Shape ``(..., n, n)``, symmetric.
    """
    transposed = matrix.transpose(-1, -2)
    if check_pair_game(game) == "mutual":
        return matrix + transposed
    return torch.maximum(matrix, transposed)


#: Elements of one block of the pairwise games' temporaries (a block of rows of ``w``).
GAME_BLOCK = 1 << 19


def _pair_sums(matrix: Tensor, p: Tensor, game: str, dtype: torch.dtype) -> Tensor:
    """``sum_{j != i, j player} w_ij`` for every token ``i``, in ``dtype``, a block of rows at a time (no
    ``n x n`` temporary: the influence matrix is the only one held)."""
    check_pair_game(game)
    batch, n, _ = matrix.shape
    column = p.to(dtype).unsqueeze(-1)
    sums = torch.empty(batch, n, dtype=dtype, device=matrix.device)
    step = max(1, GAME_BLOCK // max(batch * n, 1))
    for start in range(0, n, step):
        rows = slice(start, min(start + step, n))
        block = matrix[:, rows, :].to(dtype, copy=True)
        mirror = matrix[:, :, rows].transpose(-1, -2).to(dtype)
        weights = block.add_(mirror) if game == "mutual" else torch.maximum(block, mirror)
        sums[:, rows] = (weights @ column).squeeze(-1)
    diag = torch.diagonal(matrix, dim1=-2, dim2=-1).to(dtype)
    return sums - (2 if game == "mutual" else 1) * diag * p.to(dtype)


def _pair_sums_and_diagonal(
    matrix: Tensor, players: Tensor, game: str, dtype: torch.dtype
) -> Tuple[Tensor, Tensor]:
    """What the closed form of a pairwise game reads of ``M``: each player's pair sums and the diagonal."""
    sums = _pair_sums(matrix, players.to(dtype), game, dtype)
    return sums, torch.diagonal(matrix, dim1=-2, dim2=-1).to(dtype)


def cls_rows(matrix: Tensor, cls_positions: Optional[Tensor]) -> Tensor:
    r"""
    ``matrix[b, ..., cls_positions[b], :]`` for each example: the classification position's row.

    Args:
        matrix (Tensor): Shape ``(batch, T, T)``, or ``(batch, heads, T, T)`` (any dimensions between).
        cls_positions (Tensor, optional): Shape ``(batch,)``, integer; None means row 0.

    Returns:
        Tensor: ``matrix`` without its row axis: ``(batch, T)`` or ``(batch, heads, T)``.
    """
    if cls_positions is None:
        return matrix[..., 0, :]
    between = [1] * (matrix.dim() - 2)
    index = cls_positions.to(matrix.device).long().view(-1, *between, 1)
    return matrix.gather(-2, index.expand(*matrix.shape[:-2], 1, matrix.shape[-1])).squeeze(-2)


def shapley_values(
    matrix: Tensor,
    players: Tensor,
    game: str,
    cls_positions: Optional[Tensor] = None,
    dtype: Optional[torch.dtype] = None,
) -> Tensor:
    r"""
    Exact Shapley values of a built-in game, in closed form, for a batch.

    Args:
        matrix (Tensor): Influence matrices ``M``, shape ``(batch, T, T)``.
        players (Tensor): Bool player mask, shape ``(batch, T)``.
        game (str): ``"cls"``, ``"mutual"`` or ``"max_mutual"``.
        cls_positions (Tensor, optional): ``(batch,)``: the row of the CLS game (default: row 0).
        dtype (torch.dtype, optional): The dtype of the result and of the sums (default: the matrix's;
                    e.g. ``torch.float64`` sums a float32 matrix exactly enough for any length).

    Returns:
        Tensor: Shape ``(batch, T)``; zero for non-players.

    Examples::

        >>> M = torch.rand(2, 5, 5)
        >>> players = torch.tensor([[0, 1, 1, 1, 0], [0, 1, 1, 0, 0]], dtype=torch.bool)
        >>> phi = shapley_values(M, players, "max_mutual")
    """
    dtype = dtype or matrix.dtype
    if game == "cls":
        zero = torch.zeros((), dtype=dtype, device=matrix.device)
        return torch.where(players, cls_rows(matrix, cls_positions).to(dtype), zero)
    return shapley_values_from_sums(*_pair_sums_and_diagonal(matrix, players, game, dtype), players)


def shapley_values_from_sums(pair_sums: Tensor, diagonal: Tensor, players: Tensor) -> Tensor:
    r"""
    Exact Shapley values of a pairwise game from what they read of ``M``: each player's sum of pair
    weights ``s_i = sum_{j != i, j player} w_ij`` and the diagonal ``m_ii``.

    Args:
        pair_sums (Tensor): ``s``, shape ``(batch, T)`` (ignored for non-players).
        diagonal (Tensor): ``m_ii``, shape ``(batch, T)``.
        players (Tensor): Bool player mask, shape ``(batch, T)``.

    Returns:
        Tensor: Shape ``(batch, T)``, in ``pair_sums``' dtype; zero for non-players.
    """
    dtype = pair_sums.dtype
    p = players.to(dtype)
    n = p.sum(dim=1, keepdim=True)
    diag = diagonal.to(dtype) * p
    mean_diag = diag.sum(dim=1, keepdim=True) / n.clamp_min(1)
    phi = 0.5 * pair_sums + (diag - mean_diag) / (n - 1).clamp_min(1)
    phi = torch.where(n == 1, diag, phi)
    return torch.where(players, phi, torch.zeros((), dtype=dtype, device=phi.device))


def grand_coalition_value(
    matrix: Tensor,
    players: Tensor,
    game: str,
    cls_positions: Optional[Tensor] = None,
    dtype: Optional[torch.dtype] = None,
) -> Tensor:
    r"""
    ``v(N)`` of a built-in game for each example (``v(empty) = 0``): by efficiency, the
    sum of the Shapley values.

    Args:
        matrix (Tensor): Shape ``(batch, T, T)``.
        players (Tensor): Bool, shape ``(batch, T)``.
        game (str): A built-in game.
        cls_positions (Tensor, optional): ``(batch,)``: the row of the CLS game (default: row 0).
        dtype (torch.dtype, optional): The dtype of the result and of the sums (default: the matrix's).

    Returns:
        Tensor: Shape ``(batch,)``.
    """
    dtype = dtype or matrix.dtype
    if game == "cls":
        return (cls_rows(matrix, cls_positions).to(dtype) * players.to(dtype)).sum(dim=1)
    return grand_coalition_value_from_sums(*_pair_sums_and_diagonal(matrix, players, game, dtype), players)


def grand_coalition_value_from_sums(pair_sums: Tensor, diagonal: Tensor, players: Tensor) -> Tensor:
    r"""
    ``v(N)`` of a pairwise game from each player's sum of pair weights and the diagonal (see
    :func:`shapley_values_from_sums`).

    Args:
        pair_sums (Tensor): ``(batch, T)``.
        diagonal (Tensor): ``(batch, T)``.
        players (Tensor): Bool ``(batch, T)``.

    Returns:
        Tensor: Shape ``(batch,)``, in ``pair_sums``' dtype.
    """
    p = players.to(pair_sums.dtype)
    n = p.sum(dim=1)
    pairs = 0.5 * (torch.where(players, pair_sums, torch.zeros_like(pair_sums))).sum(dim=1)
    single = (diagonal.to(pair_sums.dtype) * p).sum(dim=1)
    return torch.where(n == 1, single, torch.where(n >= 2, pairs, torch.zeros_like(pairs)))


def game_function(game: str, cls_row: Union[Tensor, None] = None) -> GameFunction:
    r"""
    The characteristic function of a built-in game, for enumeration or sampling.

    Args:
        game (str): A built-in game.
        cls_row (Tensor, optional): For ``"cls"``: the classification position's row restricted to
                    the players, ``M[cls, players]``, shape ``(n,)``.

    Returns:
        GameFunction: ``v(m, coalitions) -> (k,)``.
    """
    if game == "cls":
        if cls_row is None:
            raise ValueError("The 'cls' game needs the classification token's row `cls_row`.")
        row = cls_row

        def cls_value(m: Tensor, coalitions: Tensor) -> Tensor:
            return coalitions.to(row.dtype) @ row.to(coalitions.device)

        return cls_value

    check_game(game)

    def pairwise_value(m: Tensor, coalitions: Tensor) -> Tensor:
        s = coalitions.to(m.dtype)
        weights = pair_weights(m, game)
        weights = weights - torch.diag_embed(torch.diagonal(weights))
        pairs = 0.5 * torch.einsum("ki,ij,kj->k", s, weights, s)
        single = s @ torch.diagonal(m)
        size = s.sum(dim=1)
        return torch.where(size == 1, single, torch.where(size >= 2, pairs, torch.zeros_like(pairs)))

    return pairwise_value
