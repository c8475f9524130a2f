#!/usr/bin/env python3
"""Permutation sampling estimate of the Shapley values (Castro et al., 2009), optionally antithetic."""

import torch
from torch import Tensor

from captum_attn_shapley._utils.deprecation import renamed_keyword
from captum_attn_shapley.shapley._estimation import (
    DEFAULT_PERTURBATIONS_PER_EVAL,
    GameFunction,
    check_matrix,
    check_positive_int,
    check_seed,
    chunk_sizes,
    empty_and_full,
    evaluate,
    make_generator,
    result_dtype,
    uniform_positions,
)


@renamed_keyword("batch_size", "perturbations_per_eval")
def permutation_shapley(
    game: GameFunction,
    m: Tensor,
    n_samples: int,
    seed: int = 0,
    antithetic: bool = True,
    *,
    perturbations_per_eval: int = DEFAULT_PERTURBATIONS_PER_EVAL,
) -> Tensor:
    r"""Unbiased permutation sampling estimate of the Shapley values (Castro et al., 2009).

    Draws ``n_samples`` uniformly random orderings :math:`\pi` of the players and averages,
    for each player :math:`i`, the marginal contribution
    :math:`v(P_\pi^i \cup \{i\}) - v(P_\pi^i)` where :math:`P_\pi^i` is the set of players
    preceding :math:`i` in :math:`\pi`.  Each ordering is uniformly distributed, so every
    summand has expectation :math:`\phi_i` and the estimate is unbiased; it also satisfies
    efficiency exactly, since the marginals of one ordering telescope to
    :math:`v(N) - v(\emptyset)`.  The ``n - 1`` proper non-empty prefixes of a batch of
    orderings are evaluated together, in calls of about ``perturbations_per_eval`` coalitions;
    :math:`v(\emptyset)` and :math:`v(N)` are evaluated once.

    With ``antithetic=True`` the orderings come in pairs :math:`(\pi, \text{reversed }\pi)`
    (antithetic variates; see Mitchell et al., 2022).  Each ordering is still uniformly
    distributed, so the estimate stays unbiased (also when ``n_samples`` is odd and the last
    pair is truncated); the pairing cancels the part of the variance that is linear in the
    position of a player.  For games that are at most quadratic in the coalition indicator
    (e.g. :math:`v(S) = s^T m s` or pairwise interaction games) an even number of antithetic
    samples gives the exact Shapley values.

    Args:
        game (GameFunction): Value function ``game(m, coalitions) -> Tensor[k]``; see
                    :data:`GameFunction`.
        m (Tensor): The ``(n, n)`` influence matrix, passed to ``game`` unchanged.
        n_samples (int): Number of sampled permutations (each costs ``n - 1`` coalition
                    evaluations), ``>= 1``.
        seed (int, optional): Seed of the private :class:`torch.Generator`; the result is a
                    deterministic function of the inputs and ``seed``.
                    Default: 0
        antithetic (bool, optional): Sample permutations in (pi, reversed pi) pairs.
                    Default: True
        perturbations_per_eval (int, optional): Approximate number of coalitions per ``game`` call.
                    Default: ``2**14``. Formerly ``batch_size`` (deprecated alias, removed in
                    the next release).

    Returns:
        Tensor: ``phi`` of shape ``(n,)`` in the dtype of ``m`` (float64 if ``m`` is not
        floating point).  ``n = 0`` gives an empty tensor; ``n = 1`` gives
        ``v({0}) - v(empty)`` exactly.

    Examples::

        >>> import torch
        >>> from captum_attn_shapley.shapley import permutation_shapley
        >>> def game(m, coalitions):  # v(S) = sum over pairs {i, j} in S of m[i, j]
        ...     s = coalitions.to(m.dtype)
        ...     return 0.5 * ((s @ m) * s).sum(dim=1)
        >>> w = torch.rand(50, 50)
        >>> m = (w + w.T).fill_diagonal_(0)
        >>> phi = permutation_shapley(game, m, n_samples=200, seed=0)
        >>> torch.allclose(phi, 0.5 * m.sum(dim=1), rtol=1e-4)  # exact for pairwise games
        True
    """
    n = check_matrix(m)
    n_samples = check_positive_int(n_samples, "n_samples")
    seed = check_seed(seed)
    perturbations_per_eval = check_positive_int(perturbations_per_eval, "perturbations_per_eval")
    out_dtype = result_dtype(m)
    device = m.device
    if n == 0:
        return torch.zeros(0, dtype=out_dtype, device=device)
    v_empty, v_full = empty_and_full(game, m, n)
    if n == 1:
        return (v_full - v_empty).reshape(1).to(out_dtype)

    generator = make_generator(seed)
    per_call = max(1, perturbations_per_eval // (n - 1))
    if antithetic:
        per_call = max(2, per_call - per_call % 2)
    prefix_lengths = torch.arange(1, n, device=device)
    phi = torch.zeros(n, dtype=torch.float64, device=device)
    for rows in chunk_sizes(n_samples, per_call):
        if antithetic:
            half = uniform_positions((rows + 1) // 2, n, generator)
            positions = torch.stack([half, n - 1 - half], dim=1).reshape(-1, n)[:rows]
        else:
            positions = uniform_positions(rows, n, generator)
        positions = positions.to(device)
        # prefix t of ordering r contains player i iff positions[r, i] < t  (t = 1..n-1)
        prefixes = positions.unsqueeze(1) < prefix_lengths.view(1, n - 1, 1)
        values = evaluate(game, m, prefixes.reshape(rows * (n - 1), n)).view(rows, n - 1)
        chain = torch.cat(
            [v_empty.expand(rows, 1), values, v_full.expand(rows, 1)], dim=1
        )  # chain[:, t] = v(prefix of length t)
        marginal_at_position = chain.diff(dim=1)  # (rows, n)
        phi += marginal_at_position.gather(1, positions).sum(dim=0)
    return (phi / n_samples).to(out_dtype)
