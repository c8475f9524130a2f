#!/usr/bin/env python3
"""The estimators' shared checks and helpers: the game contract, validation, batching, RNG."""

import numbers
from typing import Callable, Iterator, Tuple

import torch
from torch import Tensor

GameFunction = Callable[[Tensor, Tensor], Tensor]
r"""Value function of a cooperative game: ``game(m, coalitions) -> values``.

``m`` is the ``(n, n)`` influence matrix between the ``n`` players, ``coalitions`` a boolean
tensor of shape ``(k, n)`` whose row ``r`` is the indicator vector of a coalition
:math:`S_r`; the game returns a tensor of shape ``(k,)`` holding :math:`v(S_r)`.
"""

#: Default number of coalitions passed to the game per call (Captum's ``perturbations_per_eval``).
DEFAULT_PERTURBATIONS_PER_EVAL = 2**14


def check_matrix(m: Tensor) -> int:
    """The number of players ``n`` of an ``(n, n)`` influence matrix, or a clear error."""
    if not isinstance(m, Tensor):
        raise TypeError(f"m must be a torch.Tensor of shape (n, n), got {type(m).__name__}")
    if m.dim() != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"m must be a square matrix of shape (n, n), got shape {tuple(m.shape)}")
    return int(m.shape[0])


def check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer (>= 1), got {value!r}")
    return int(value)


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    return int(seed)


def result_dtype(m: Tensor) -> torch.dtype:
    return m.dtype if m.is_floating_point() else torch.float64


def make_generator(seed: int) -> torch.Generator:
    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed)
    return generator


def evaluate(game: GameFunction, m: Tensor, coalitions: Tensor) -> Tensor:
    """Call ``game`` on a batch of coalitions, validate the output, return it in float64."""
    k = coalitions.shape[0]
    values = game(m, coalitions)
    if not isinstance(values, Tensor):
        raise TypeError(
            f"game must return a torch.Tensor of shape ({k},) (one value per coalition), "
            f"got {type(values).__name__}"
        )
    if tuple(values.shape) != (k,):
        raise ValueError(
            f"game must return a tensor of shape ({k},) (one value per coalition row of the "
            f"({k}, {coalitions.shape[1]}) coalitions batch), got shape {tuple(values.shape)}"
        )
    values = values.detach().to(device=m.device, dtype=torch.float64)
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        row = int((~finite).nonzero()[0, 0])
        members = coalitions[row].nonzero().flatten().tolist()
        raise ValueError(
            f"game returned {float(values[row])} for the coalition of players {members} (positions among the "
            f"{coalitions.shape[1]} players; {row} of this batch of {k}): a game must return a finite value for "
            "every coalition, including the empty one. Guard divisions and logarithms in the game (e.g. "
            "clamp the denominator, or return 0 for the empty coalition)."
        )
    return values


def empty_and_full(game: GameFunction, m: Tensor, n: int) -> Tuple[Tensor, Tensor]:
    """Return ``(v(empty), v(N))`` as float64 scalars from a single game call."""
    coalitions = torch.zeros(2, n, dtype=torch.bool, device=m.device)
    coalitions[1] = True
    values = evaluate(game, m, coalitions)
    return values[0], values[1]


def grand_coalition_gain(game: GameFunction, m: Tensor) -> Tensor:
    r"""``v(N) - v(empty)``: what the Shapley values of ``game`` add up to (efficiency).

    Args:
        game (GameFunction): Value function ``game(m, coalitions) -> Tensor[k]``.
        m (Tensor): The ``(n, n)`` influence matrix, passed to ``game`` unchanged.

    Returns:
        Tensor: A float64 scalar on ``m``'s device (0 without players, the game uncalled).
    """
    n = check_matrix(m)
    if n == 0:
        return torch.zeros((), dtype=torch.float64, device=m.device)
    v_empty, v_full = empty_and_full(game, m, n)
    return v_full - v_empty


def chunk_sizes(total: int, chunk: int) -> Iterator[int]:
    done = 0
    while done < total:
        size = min(chunk, total - done)
        yield size
        done += size


def uniform_positions(rows: int, n: int, generator: torch.Generator) -> Tensor:
    """``rows`` independent uniformly random permutations, as position tables.

    Row ``r`` maps each player to its position: ``pos[r, i]`` is where player ``i`` appears in
    the ``r``-th random ordering.
    """
    order = torch.rand(rows, n, generator=generator, dtype=torch.float64).argsort(dim=1)
    positions = torch.empty_like(order)
    positions.scatter_(1, order, torch.arange(n).expand(rows, n).contiguous())
    return positions
