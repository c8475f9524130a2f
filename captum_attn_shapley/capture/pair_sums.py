#!/usr/bin/env python3
"""The pairwise games' sums, accumulated without the ``T x T`` influence matrix.

The exact Shapley values of the two pairwise games read ``M`` only through, for each player ``i``,
``s_i = sum_{j != i, j player} w_ij`` and the diagonal ``m_ii`` (mathematics page, "Games and their
Shapley values"). Both are accumulated here a block of query rows at a time, as the capture produces them:

- Mutual, ``w_ij = m_ij + m_ji``: ``s_i = (M p)_i + (M^T p)_i - 2 m_ii`` (``p`` the player mask), two
  vectors per example;
- Max-Mutual, ``w_ij = max(m_ij, m_ji) = (m_ij + m_ji) / 2 + |m_ij - m_ji| / 2``: the same two vectors
  and the antisymmetric part ``D = M - M^T``, which is held once per pair: ``T x floor(T/2)`` numbers,
  half the matrix. Row ``i`` of the packed array holds ``D[i, (i + k) mod T]`` for ``k = 1 .. floor(T/2)``
  (each pair at its circular distance; for even ``T`` the pairs at distance ``T/2`` are held twice,
  consistently, and counted once).

The sums of the vectors are kept in float64; ``D`` in float32, like the influence matrix itself.

When the batch's whole matrix is small (``batch x T x T`` at most :data:`DENSE_MAX_MUTUAL` elements, 16 MiB,
shared by the layer groups of one capture),
Max-Mutual accumulates ``M`` itself instead: one addition per block instead of the packed array's strided
updates, and ``s_i`` read from ``max(M, M^T)`` at the end (same values to float round-off).
"""

from typing import Dict, Optional

import torch
from torch import Tensor

from captum_attn_shapley.capture.workspace import workspace
from captum_attn_shapley.shapley.games import check_pair_game

#: Elements of one block of the temporaries (``rows x T`` of the head-averaged weights).
PAIR_BLOCK = 1 << 19

#: Max-Mutual holds the whole matrix (``batch x T x T`` float32) when it has at most this many elements.
DENSE_MAX_MUTUAL = 1 << 22


class PairSums:
    r"""
    Accumulates ``s_i`` and ``m_ii`` of a pairwise game for a batch.

    Args:
        game (str): ``"mutual"`` or ``"max_mutual"``.
        players (Tensor): Bool ``(batch, T)``.
        sharing (int): How many accumulators of this shape the capture holds at once (its layer groups): they
                    share :data:`DENSE_MAX_MUTUAL`. Default: 1.
    """

    def __init__(self, game: str, players: Tensor, sharing: int = 1) -> None:
        self.game = check_pair_game(game)
        self.players = players.to(torch.float32)
        batch, num_tokens = players.shape
        device = players.device
        self.rows = torch.zeros(batch, num_tokens, dtype=torch.float64, device=device)  # (M p)_i
        self.columns = torch.zeros(batch, num_tokens, dtype=torch.float64, device=device)  # (M^T p)_i
        self.diagonal = torch.zeros(batch, num_tokens, dtype=torch.float64, device=device)
        self.half = num_tokens // 2
        self._buffers: Dict[str, Optional[Tensor]] = {"doubled": None, "partners": None}
        self._triangles: Dict[int, Tensor] = {}
        self.packed: Optional[Tensor] = None
        #: Max-Mutual's whole matrix ``M``, float32, when it is small (:data:`DENSE_MAX_MUTUAL`).
        self.dense: Optional[Tensor] = None
        if game == "max_mutual" and sharing * batch * num_tokens * num_tokens <= DENSE_MAX_MUTUAL:
            self.dense = torch.zeros(batch, num_tokens, num_tokens, dtype=torch.float32, device=device)
        elif game == "max_mutual" and self.half > 0:
            # a margin of T // 2 elements on each side takes the (zero) writes just outside the array
            size = batch * num_tokens * self.half
            storage = torch.zeros(size + 2 * self.half, dtype=torch.float32, device=device)
            self.packed = storage[self.half : self.half + size].view(batch, num_tokens, self.half)

    def add(self, weights: Tensor, rows: slice, examples: slice) -> None:
        r"""
        Adds a block of query rows of ``M``.

        Args:
            weights (Tensor): ``M[examples, rows, :]``, shape ``(examples, rows, T)``, float32.
            rows (slice): Its query rows (a contiguous range).
            examples (slice): Its examples (a contiguous range).
        """
        start, stop, _ = rows.indices(weights.shape[-1])
        if self.dense is not None:
            self.dense[examples, start:stop] += weights
            self.diagonal[examples, start:stop] += torch.diagonal(weights, offset=start, dim1=-2, dim2=-1).double()
            return
        # at most T // 2 - 1 rows: the packed array's strided views then never overlap themselves
        step = max(1, min(PAIR_BLOCK // max(weights.shape[0] * weights.shape[-1], 1), self.half - 1))
        for first in range(start, stop, step):
            last = min(first + step, stop)
            self._add_block(weights[:, first - start : last - start], first, examples)

    def _add_block(self, weights: Tensor, first: int, examples: slice) -> None:
        num_rows = weights.shape[1]
        rows = slice(first, first + num_rows)
        players = self.players[examples]
        self.rows[examples, rows] += torch.matmul(weights, players.unsqueeze(-1)).squeeze(-1).double()
        self.columns[examples] += torch.matmul(players[:, rows].unsqueeze(1), weights).squeeze(1).double()
        self.diagonal[examples, rows] += torch.diagonal(weights, offset=first, dim1=-2, dim2=-1).double()
        if self.packed is not None:
            self._add_antisymmetric(weights.contiguous(), first, examples)

    def _add_antisymmetric(self, weights: Tensor, first: int, examples: slice) -> None:
        """``D[i, i + k] += m_{i,i+k}`` and ``D[i - k, i] -= m_{i,i-k}`` (indices mod T) for the block's rows
        ``i = first + l`` and ``k = 1 .. T // 2``, through strided views of the packed array."""
        num_examples, num_rows, n = weights.shape
        half = self.half
        # columns c and c + n hold the same value: indices mod n become ranges
        self._buffers["doubled"], doubled = workspace(
            self._buffers["doubled"], (num_examples, num_rows, 2 * n), weights
        )
        doubled[..., :n] = weights
        doubled[..., n:] = weights
        forward = doubled.as_strided(
            (num_examples, num_rows, half), (doubled.stride(0), 2 * n + 1, 1), doubled.storage_offset() + first + 1
        )
        packed = self.packed
        assert packed is not None
        packed[examples, first : first + num_rows] += forward
        # The partners j = i - k, in j's order: packed row j (mod n), column k - 1 = first + l - j - 1, gets
        # -m[first + l, j] = -columns[j, l]. For j in [first - h, first + rows - 2] and every l, that column is
        # l + (first - j - 1): a window sliding by one per row. Outside 1 <= k <= h (two triangles) the source is
        # zeroed; those writes land in neighbouring entries or the margins and subtract nothing.
        columns = weights.transpose(1, 2)
        low = first - half
        span = half + num_rows - 1
        self._buffers["partners"], source = workspace(
            self._buffers["partners"], (num_examples, span, num_rows), weights
        )
        if low < 0:
            sources = [columns[:, low % n : n], columns[:, : first + num_rows - 1]]
        else:
            sources = [columns[:, low : first + num_rows - 1]]
        position = 0
        for piece in sources:
            for example in range(num_examples):  # 2-D transposing copies: several times faster than one 3-D copy
                source[example, position : position + piece.shape[1]].copy_(piece[example])
            position += piece.shape[1]
        lower, upper = self._triangle_masks(num_rows, weights.device)
        source[:, : num_rows - 1] *= lower  # j < first + rows - 1 - h: only l <= j - first + h
        source[:, half:] *= upper  # j >= first: only l >= j - first + 1
        batch = packed.shape[0]
        example_start = examples.indices(batch)[0]
        position = 0
        for piece in sources:
            j = (low + position) % n
            wrap = j - (low + position)  # n for the rows before 0, else 0
            target = packed.as_strided(
                (num_examples, piece.shape[1], num_rows),
                (n * half, half - 1, 1),
                packed.storage_offset() + example_start * n * half + j * (half - 1) + first + wrap - 1,
            )
            target.sub_(source[:, position : position + piece.shape[1]])
            position += piece.shape[1]

    def _triangle_masks(self, num_rows: int, device: torch.device) -> "tuple[Tensor, Tensor]":
        """0/1 float masks ``l <= t`` and ``l > t`` of shape ``(rows - 1, rows)`` (cached by ``rows``)."""
        if num_rows not in self._triangles:
            partner = torch.arange(num_rows - 1, device=device).unsqueeze(-1)
            row = torch.arange(num_rows, device=device)
            self._triangles[num_rows] = torch.stack([(row <= partner).float(), (row > partner).float()])
        masks = self._triangles[num_rows]
        return masks[0], masks[1]

    def pair_weight_sums(self) -> Tensor:
        r"""
        Returns:
            Tensor: ``s_i = sum_{j != i, j player} w_ij``, float64, ``(batch, T)`` (for every token ``i``;
            meaningful for players).
        """
        if self.dense is not None:
            return self._dense_sums(self.dense)
        symmetric = self.rows + self.columns - 2 * self.diagonal
        if self.game == "mutual":
            return symmetric
        return 0.5 * (symmetric + self._absolute_sums())

    def _dense_sums(self, matrix: Tensor) -> Tensor:
        """``sum_{j != i, j player} max(m_ij, m_ji)`` from the whole matrix, float64, a block of rows at a time."""
        batch, n, _ = matrix.shape
        players = self.players.double().unsqueeze(-1)
        sums = torch.zeros(batch, n, dtype=torch.float64, device=matrix.device)
        step = max(1, PAIR_BLOCK // max(batch * n, 1))
        for first in range(0, n, step):
            rows = slice(first, min(first + step, n))
            weights = torch.maximum(matrix[:, rows], matrix[:, :, rows].transpose(1, 2)).double()
            diagonal = torch.diagonal(weights, offset=first, dim1=-2, dim2=-1)  # j = i is no partner
            sums[:, rows] = torch.matmul(weights, players).squeeze(-1) - diagonal * players[:, rows, 0]
        return sums

    def _absolute_sums(self) -> Tensor:
        """``sum_{j player} |D_ij|`` for every ``i``, float64, a block of packed rows at a time."""
        batch, n = self.rows.shape
        sums = torch.zeros(batch, n, dtype=torch.float64, device=self.rows.device)
        if self.packed is None:
            return sums
        half = self.half
        players = self.players.double()
        doubled = torch.cat([players, players], dim=-1)  # (batch, 2n)
        step = max(1, PAIR_BLOCK // max(batch * half, 1))
        # for even n the pair at distance n/2 is held in both of its rows: count it from the first only
        backward_columns = half if n % 2 == 1 else half - 1
        for first in range(0, n, step):
            last = min(first + step, n)
            magnitude = self.packed[:, first:last].double().abs_()  # |D[i, i + k]|, i in [first, last)
            # players of the partners i + k: a sliding window of the doubled mask
            partners = doubled.as_strided((batch, last - first, half), (2 * n, 1, 1), first + 1)
            sums[:, first:last] += (magnitude * partners).sum(dim=-1)
            # the same |D| counted for the partner i + k, weighted by the player i
            credited = magnitude[..., :backward_columns] * players[:, first:last].unsqueeze(-1)
            index = (
                torch.arange(first, last, device=sums.device).unsqueeze(-1)
                + torch.arange(1, backward_columns + 1, device=sums.device)
            ) % n
            sums.scatter_add_(1, index.reshape(1, -1).expand(batch, -1), credited.reshape(batch, -1))
        return sums
