#!/usr/bin/env python3
"""Exact Shapley values by enumerating all ``2**n`` coalitions (vectorised, in batches)."""

import math
import numbers

import torch
from torch import Tensor

from captum_attn_shapley._utils.deprecation import renamed_keyword
from captum_attn_shapley.shapley._estimation import (
    DEFAULT_PERTURBATIONS_PER_EVAL,
    GameFunction,
    check_matrix,
    check_positive_int,
    chunk_sizes,
    evaluate,
    result_dtype,
)


@renamed_keyword("batch_size", "perturbations_per_eval")
def exact_shapley(
    game: GameFunction,
    m: Tensor,
    max_players: int = 16,
    *,
    perturbations_per_eval: int = DEFAULT_PERTURBATIONS_PER_EVAL,
) -> Tensor:
    r"""Exact Shapley values by enumerating all :math:`2^n` coalitions.

    Coalitions are encoded as bitmasks ``0 .. 2**n - 1`` (bit ``i`` set iff player ``i`` is in
    the coalition) and passed to ``game`` in batches of ``perturbations_per_eval`` rows.  With
    :math:`w(s) = \frac{s!\,(n-s-1)!}{n!} = \frac{1}{n \binom{n-1}{s}}`, the Shapley value is
    rewritten as a sum over coalitions,

    .. math::

        \phi_i = \sum_{S \ni i} w(|S| - 1)\, v(S) - \sum_{S \not\ni i} w(|S|)\, v(S),

    which is accumulated batch by batch with two matrix-vector products, so memory stays
    O(``perturbations_per_eval`` * n) and there is no Python loop over coalitions.  The weights are
    computed from exact integer binomials in float64, and :math:`v(\emptyset)` is subtracted
    from all values first (this leaves :math:`\phi` unchanged, as the coefficients of each
    player sum to zero, and limits cancellation when values have a large offset).

    Args:
        game (GameFunction): Value function ``game(m, coalitions) -> Tensor[k]``; see
                    :data:`GameFunction`.
        m (Tensor): The ``(n, n)`` influence matrix, passed to ``game`` unchanged.
        max_players (int, optional): Largest ``n`` for which the enumeration is attempted
                    (``2**max_players`` game evaluations).
                    Default: 16
        perturbations_per_eval (int, optional): Number of coalitions per ``game`` call.
                    Default: ``2**14``. Formerly ``batch_size`` (deprecated alias, removed in
                    the next release).

    Returns:
        Tensor: ``phi`` of shape ``(n,)`` in the dtype of ``m`` (float64 if ``m`` is not
        floating point), with ``phi.sum() == v(N) - v(empty)`` up to rounding.  ``n = 0``
        gives an empty tensor (``game`` is not called); ``n = 1`` gives
        ``v({0}) - v(empty)``.

    Raises:
        ValueError: If ``n > max_players``.

    Examples::

        >>> import torch
        >>> from captum_attn_shapley.shapley import exact_shapley
        >>> def game(m, coalitions):  # v(S) = s^T m s
        ...     s = coalitions.to(m.dtype)
        ...     return torch.einsum("ki,ij,kj->k", s, m, s)
        >>> m = torch.tensor([[1.0, 2.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 5.0]])
        >>> exact_shapley(game, m)
        tensor([2., 4., 5.])
    """
    n = check_matrix(m)
    if isinstance(max_players, bool) or not isinstance(max_players, numbers.Integral):
        raise TypeError(f"max_players must be an integer, got {max_players!r}")
    perturbations_per_eval = check_positive_int(perturbations_per_eval, "perturbations_per_eval")
    out_dtype = result_dtype(m)
    if n > max_players:
        raise ValueError(
            f"exact_shapley enumerates all 2**n coalitions, but the game has n={n} players, "
            f"more than max_players={max_players} (2**{n} = {2**n:,} game evaluations). "
            f"Pass a larger max_players=... if you can afford it, or use a sampling estimator "
            f"instead: permutation_shapley(...) or kernel_shapley(...)."
        )
    if n == 0:
        return torch.zeros(0, dtype=out_dtype, device=m.device)

    device = m.device
    # w(s) for s = 0..n-1, from exact integers; w_in[s] = w(s - 1), w_out[s] = w(s).
    w = torch.tensor([1.0 / (n * math.comb(n - 1, s)) for s in range(n)], dtype=torch.float64)
    zero = torch.zeros(1, dtype=torch.float64)
    w_in = torch.cat([zero, w]).to(device)
    w_out = torch.cat([w, zero]).to(device)
    bits = torch.arange(n, dtype=torch.int64, device=device)

    phi = torch.zeros(n, dtype=torch.float64, device=device)
    v_empty = None
    start = 0
    for size in chunk_sizes(2**n, perturbations_per_eval):
        masks = torch.arange(start, start + size, dtype=torch.int64, device=device)
        start += size
        members = ((masks.unsqueeze(1) >> bits) & 1).bool()
        values = evaluate(game, m, members)
        if v_empty is None:
            v_empty = values[0].clone()  # the first batch starts with the empty coalition
        values = values - v_empty
        cardinality = members.sum(dim=1)
        z = members.to(torch.float64)
        phi += z.T @ (values * w_in[cardinality]) - (1.0 - z).T @ (values * w_out[cardinality])
    return phi.to(out_dtype)
