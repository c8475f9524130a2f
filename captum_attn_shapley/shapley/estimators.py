r"""Shapley value estimators for cooperative games played on an influence matrix.

A *game* here is a user supplied value function ``game(m, coalitions)`` that, given the
``n x n`` influence matrix ``m`` between the ``n`` players and a boolean batch of coalitions
of shape ``(k, n)`` (row ``r`` is the indicator vector of a coalition :math:`S_r`), returns
the ``k`` values :math:`v(S_r)`.  See :data:`GameFunction`.

The Shapley value (Shapley, 1953) of player :math:`i` is

.. math::

    \phi_i = \sum_{S \subseteq N \setminus \{i\}}
        \frac{|S|!\,(n - |S| - 1)!}{n!}\,\bigl(v(S \cup \{i\}) - v(S)\bigr),

the average marginal contribution of :math:`i` over all orderings of the players.  It satisfies
*efficiency*, :math:`\sum_i \phi_i = v(N) - v(\emptyset)`.  None of the estimators below assume
:math:`v(\emptyset) = 0`.

Three estimators are provided:

* :func:`exact_shapley` enumerates all :math:`2^n` coalitions (vectorised, in batches).
* :func:`permutation_shapley` is the unbiased permutation sampling estimator of
  Castro et al. (2009), optionally with antithetic (reversed) permutations.
* :func:`kernel_shapley` is the unbiased KernelSHAP estimator of Covert & Lee (2021), which
  uses the exact expectation :math:`A = E[z z^T]` under the Shapley kernel distribution
  (see :func:`shapley_kernel_matrix`), optionally with paired (complementary) sampling.

All computations are carried out in ``float64``; results are returned in the dtype of ``m``
(``float64`` if ``m`` is not a floating point tensor).  Random numbers are drawn from a
dedicated CPU :class:`torch.Generator` seeded with ``seed``, so results are reproducible and
independent of (and do not modify) the global RNG state.

References:
    * L. S. Shapley. A value for n-person games. In *Contributions to the Theory of Games II*,
      Annals of Mathematics Studies 28, pp. 307-317, 1953.
    * J. Castro, D. Gomez, J. Tejada. Polynomial calculation of the Shapley value based on
      sampling. *Computers & Operations Research* 36(5):1726-1730, 2009.
    * R. Mitchell, J. Cooper, E. Frank, G. Holmes. Sampling permutations for Shapley value
      estimation. *Journal of Machine Learning Research* 23(43):1-46, 2022.
    * S. M. Lundberg, S.-I. Lee. A unified approach to interpreting model predictions.
      *NeurIPS* 2017.
    * I. Covert, S.-I. Lee. Improving KernelSHAP: practical Shapley value estimation via
      linear regression. *AISTATS* 2021, PMLR 130:3457-3465.
"""

import math
import numbers
from typing import Callable, Iterator, Tuple

import torch
from torch import Tensor

__all__ = [
    "GameFunction",
    "exact_shapley",
    "permutation_shapley",
    "kernel_shapley",
    "shapley_kernel_matrix",
    "grand_coalition_gain",
]

GameFunction = Callable[[Tensor, Tensor], Tensor]
r"""Value function of a cooperative game: ``game(m, coalitions) -> values``.

``m`` is the ``(n, n)`` influence matrix between the ``n`` players, ``coalitions`` a boolean
tensor of shape ``(k, n)`` whose row ``r`` is the indicator vector of a coalition
:math:`S_r`; the game returns a tensor of shape ``(k,)`` holding :math:`v(S_r)`.
"""

#: Default number of coalitions passed to the game per call.
DEFAULT_BATCH_SIZE = 2**14


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _check_matrix(m: Tensor) -> int:
    if not isinstance(m, Tensor):
        raise TypeError(f"m must be a torch.Tensor of shape (n, n), got {type(m).__name__}")
    if m.dim() != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"m must be a square matrix of shape (n, n), got shape {tuple(m.shape)}")
    return int(m.shape[0])


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer (>= 1), got {value!r}")
    return int(value)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    return int(seed)


def _out_dtype(m: Tensor) -> torch.dtype:
    return m.dtype if m.is_floating_point() else torch.float64


def _make_generator(seed: int) -> torch.Generator:
    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed)
    return generator


def _evaluate(game: GameFunction, m: Tensor, coalitions: Tensor) -> Tensor:
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
    return values.detach().to(device=m.device, dtype=torch.float64)


def _empty_and_full(game: GameFunction, m: Tensor, n: int) -> Tuple[Tensor, Tensor]:
    """Return ``(v(empty), v(N))`` as float64 scalars from a single game call."""
    coalitions = torch.zeros(2, n, dtype=torch.bool, device=m.device)
    coalitions[1] = True
    values = _evaluate(game, m, coalitions)
    return values[0], values[1]


def grand_coalition_gain(game: GameFunction, m: Tensor) -> Tensor:
    r"""``v(N) - v(empty)``: what the Shapley values of ``game`` add up to (efficiency).

    Args:
        game (GameFunction): Value function ``game(m, coalitions) -> Tensor[k]``.
        m (Tensor): The ``(n, n)`` influence matrix, passed to ``game`` unchanged.

    Returns:
        Tensor: A float64 scalar on ``m``'s device (0 without players, the game uncalled).
    """
    n = _check_matrix(m)
    if n == 0:
        return torch.zeros((), dtype=torch.float64, device=m.device)
    v_empty, v_full = _empty_and_full(game, m, n)
    return v_full - v_empty


def _chunk_sizes(total: int, chunk: int) -> Iterator[int]:
    done = 0
    while done < total:
        size = min(chunk, total - done)
        yield size
        done += size


def _uniform_positions(rows: int, n: int, generator: torch.Generator) -> Tensor:
    """``rows`` independent uniformly random permutations, as position tables.

    Row ``r`` maps each player to its position: ``pos[r, i]`` is where player ``i`` appears in
    the ``r``-th random ordering.
    """
    order = torch.rand(rows, n, generator=generator, dtype=torch.float64).argsort(dim=1)
    positions = torch.empty_like(order)
    positions.scatter_(1, order, torch.arange(n).expand(rows, n).contiguous())
    return positions


def _harmonic(n: int) -> float:
    """``H_n = sum_{k=1}^n 1 / k`` (summed from small to large terms)."""
    return math.fsum(1.0 / k for k in range(1, n + 1))


def _kernel_size_probabilities(n: int) -> Tensor:
    """Shapley kernel distribution of the coalition size over ``1..n-1`` (float64, ``n >= 2``).

    ``p(k) = (n - 1) / (k (n - k)) / Z``; using ``sum_k 1 / (k (n - k)) = 2 H_{n-1} / n`` this is
    ``p(k) = n / (2 H_{n-1} k (n - k))``.  No binomial coefficients are involved, so there is no
    overflow or underflow even for thousands of players.
    """
    k = torch.arange(1, n, dtype=torch.float64)
    weights = 1.0 / (k * (n - k))
    return weights / weights.sum()


def _sample_kernel_coalitions(rows: int, n: int, generator: torch.Generator, paired: bool) -> Tensor:
    """Draw ``rows`` coalitions from the Shapley kernel distribution (``n >= 2``).

    A size ``k`` is drawn from :func:`_kernel_size_probabilities`, then a uniformly random subset
    of that size.  With ``paired=True`` rows come in ``(z, 1 - z)`` pairs (the complement of a
    kernel sample is again kernel distributed, because ``p(k) = p(n - k)``); if ``rows`` is odd
    the last pair is truncated.
    """
    draws = (rows + 1) // 2 if paired else rows
    sizes = torch.multinomial(_kernel_size_probabilities(n), draws, replacement=True, generator=generator) + 1
    order = torch.rand(draws, n, generator=generator, dtype=torch.float64).argsort(dim=1)
    in_subset = torch.arange(n).unsqueeze(0) < sizes.unsqueeze(1)
    z = torch.zeros(draws, n, dtype=torch.bool)
    z.scatter_(1, order, in_subset)
    if paired:
        z = torch.stack([z, ~z], dim=1).reshape(2 * draws, n)[:rows]
    return z


def shapley_kernel_matrix(n: int) -> Tensor:
    r"""Exact second moment :math:`A = E[z z^T]` under the Shapley kernel distribution.

    The Shapley kernel distribution over non-empty proper subsets :math:`z \in \{0, 1\}^n`
    draws a size :math:`k \in \{1, \dots, n-1\}` with probability
    :math:`p(k) \propto \frac{n - 1}{k (n - k)}` and then a uniformly random subset of that
    size (Covert & Lee, 2021).  Since :math:`\sum_{k=1}^{n-1} \frac{1}{k(n-k)}
    = \frac{2 H_{n-1}}{n}` with :math:`H_{n-1} = \sum_{k=1}^{n-1} 1/k`,
    :math:`p(k) = \frac{n}{2 H_{n-1} k (n - k)}`, and

    .. math::

        A_{ii} = \sum_k p(k) \frac{k}{n} = \frac{1}{2}, \qquad
        A_{ij} = \sum_k p(k) \frac{k (k - 1)}{n (n - 1)}
               = \frac{1}{2 H_{n-1} (n - 1)} \sum_{k=1}^{n-1} \frac{k - 1}{n - k}
               = \frac{1}{2} - \frac{1}{2 H_{n-1}} \quad (i \neq j),

    (the diagonal uses the symmetry :math:`p(k) = p(n - k)`; the off-diagonal sum is
    :math:`(n-1) H_{n-1} - (n - 1)` after substituting :math:`j = n - k`).  Hence
    :math:`A = d I + c \mathbf{1}\mathbf{1}^T` with :math:`d = 1 / (2 H_{n-1}) > 0` and
    :math:`c = 1/2 - d \geq 0`, which is positive definite.

    Args:
        n (int): Number of players, ``n >= 2``.

    Returns:
        Tensor: The ``(n, n)`` float64 matrix :math:`A`.

    Examples::

        >>> from captum_attn_shapley.shapley.estimators import shapley_kernel_matrix
        >>> shapley_kernel_matrix(3)
        tensor([[0.5000, 0.1667, 0.1667],
                [0.1667, 0.5000, 0.1667],
                [0.1667, 0.1667, 0.5000]], dtype=torch.float64)
    """
    n = _check_positive_int(n, "n")
    if n < 2:
        raise ValueError(f"the Shapley kernel distribution needs n >= 2 players, got n={n}")
    off_diagonal = 0.5 - 0.5 / _harmonic(n - 1)
    matrix = torch.full((n, n), off_diagonal, dtype=torch.float64)
    matrix.fill_diagonal_(0.5)
    return matrix


def _kernel_solve(b: Tensor, total: Tensor, n: int) -> Tensor:
    r"""Solve the efficiency-constrained least squares problem of KernelSHAP in closed form.

    Computes :math:`\phi = A^{-1}\bigl(b - \mathbf{1}\,\frac{\mathbf{1}^T A^{-1} b - \Delta}
    {\mathbf{1}^T A^{-1} \mathbf{1}}\bigr)` with :math:`\Delta = v(N) - v(\emptyset)` and
    :math:`A` from :func:`shapley_kernel_matrix`.  Because :math:`A = d I + c \mathbf{1}
    \mathbf{1}^T`, :math:`A^{-1} b = b / d + \text{const} \cdot \mathbf{1}` and
    :math:`A^{-1}\mathbf{1} \propto \mathbf{1}`, so :math:`\phi = b / d + \text{const}'
    \cdot \mathbf{1}`; the constant is fixed by efficiency
    (:math:`\mathbf{1}^T\phi = \Delta`), giving

    .. math::

        \phi = 2 H_{n-1} (b - \bar b\,\mathbf{1}) + \frac{\Delta}{n} \mathbf{1}.

    This is O(n) and never forms :math:`A`.
    """
    return 2.0 * _harmonic(n - 1) * (b - b.mean()) + total / n


# --------------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------------


def exact_shapley(
    game: GameFunction, m: Tensor, max_players: int = 16, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> Tensor:
    r"""Exact Shapley values by enumerating all :math:`2^n` coalitions.

    Coalitions are encoded as bitmasks ``0 .. 2**n - 1`` (bit ``i`` set iff player ``i`` is in
    the coalition) and passed to ``game`` in batches of ``batch_size`` rows.  With
    :math:`w(s) = \frac{s!\,(n-s-1)!}{n!} = \frac{1}{n \binom{n-1}{s}}`, the Shapley value is
    rewritten as a sum over coalitions,

    .. math::

        \phi_i = \sum_{S \ni i} w(|S| - 1)\, v(S) - \sum_{S \not\ni i} w(|S|)\, v(S),

    which is accumulated batch by batch with two matrix-vector products, so memory stays
    O(``batch_size`` * n) and there is no Python loop over coalitions.  The weights are
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
        batch_size (int, optional): Number of coalitions per ``game`` call.
                    Default: ``2**14``

    Returns:
        Tensor: ``phi`` of shape ``(n,)`` in the dtype of ``m`` (float64 if ``m`` is not
        floating point), with ``phi.sum() == v(N) - v(empty)`` up to rounding.  ``n = 0``
        gives an empty tensor (``game`` is not called); ``n = 1`` gives
        ``v({0}) - v(empty)``.

    Raises:
        ValueError: If ``n > max_players``.

    Examples::

        >>> import torch
        >>> from captum_attn_shapley.shapley.estimators import exact_shapley
        >>> def game(m, coalitions):  # v(S) = s^T m s
        ...     s = coalitions.to(m.dtype)
        ...     return torch.einsum("ki,ij,kj->k", s, m, s)
        >>> m = torch.tensor([[1.0, 2.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 5.0]])
        >>> exact_shapley(game, m)
        tensor([2., 4., 5.])
    """
    n = _check_matrix(m)
    if isinstance(max_players, bool) or not isinstance(max_players, numbers.Integral):
        raise TypeError(f"max_players must be an integer, got {max_players!r}")
    batch_size = _check_positive_int(batch_size, "batch_size")
    out_dtype = _out_dtype(m)
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
    for size in _chunk_sizes(2**n, batch_size):
        masks = torch.arange(start, start + size, dtype=torch.int64, device=device)
        start += size
        members = ((masks.unsqueeze(1) >> bits) & 1).bool()
        values = _evaluate(game, m, members)
        if v_empty is None:
            v_empty = values[0].clone()  # the first batch starts with the empty coalition
        values = values - v_empty
        cardinality = members.sum(dim=1)
        z = members.to(torch.float64)
        phi += z.T @ (values * w_in[cardinality]) - (1.0 - z).T @ (values * w_out[cardinality])
    return phi.to(out_dtype)


def permutation_shapley(
    game: GameFunction,
    m: Tensor,
    n_samples: int,
    seed: int = 0,
    antithetic: bool = True,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Tensor:
    r"""Unbiased permutation sampling estimate of the Shapley values (Castro et al., 2009).

    Draws ``n_samples`` uniformly random orderings :math:`\pi` of the players and averages,
    for each player :math:`i`, the marginal contribution
    :math:`v(P_\pi^i \cup \{i\}) - v(P_\pi^i)` where :math:`P_\pi^i` is the set of players
    preceding :math:`i` in :math:`\pi`.  Each ordering is uniformly distributed, so every
    summand has expectation :math:`\phi_i` and the estimate is unbiased; it also satisfies
    efficiency exactly, since the marginals of one ordering telescope to
    :math:`v(N) - v(\emptyset)`.  The ``n - 1`` proper non-empty prefixes of a batch of
    orderings are evaluated together, in calls of about ``batch_size`` coalitions;
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
        batch_size (int, optional): Approximate number of coalitions per ``game`` call.
                    Default: ``2**14``

    Returns:
        Tensor: ``phi`` of shape ``(n,)`` in the dtype of ``m`` (float64 if ``m`` is not
        floating point).  ``n = 0`` gives an empty tensor; ``n = 1`` gives
        ``v({0}) - v(empty)`` exactly.

    Examples::

        >>> import torch
        >>> from captum_attn_shapley.shapley.estimators import permutation_shapley
        >>> def game(m, coalitions):  # v(S) = sum over pairs {i, j} in S of m[i, j]
        ...     s = coalitions.to(m.dtype)
        ...     return 0.5 * ((s @ m) * s).sum(dim=1)
        >>> w = torch.rand(50, 50)
        >>> m = (w + w.T).fill_diagonal_(0)
        >>> phi = permutation_shapley(game, m, n_samples=200, seed=0)
        >>> torch.allclose(phi, 0.5 * m.sum(dim=1), rtol=1e-4)  # exact for pairwise games
        True
    """
    n = _check_matrix(m)
    n_samples = _check_positive_int(n_samples, "n_samples")
    seed = _check_seed(seed)
    batch_size = _check_positive_int(batch_size, "batch_size")
    out_dtype = _out_dtype(m)
    device = m.device
    if n == 0:
        return torch.zeros(0, dtype=out_dtype, device=device)
    v_empty, v_full = _empty_and_full(game, m, n)
    if n == 1:
        return (v_full - v_empty).reshape(1).to(out_dtype)

    generator = _make_generator(seed)
    per_call = max(1, batch_size // (n - 1))
    if antithetic:
        per_call = max(2, per_call - per_call % 2)
    prefix_lengths = torch.arange(1, n, device=device)
    phi = torch.zeros(n, dtype=torch.float64, device=device)
    for rows in _chunk_sizes(n_samples, per_call):
        if antithetic:
            half = _uniform_positions((rows + 1) // 2, n, generator)
            positions = torch.stack([half, n - 1 - half], dim=1).reshape(-1, n)[:rows]
        else:
            positions = _uniform_positions(rows, n, generator)
        positions = positions.to(device)
        # prefix t of ordering r contains player i iff positions[r, i] < t  (t = 1..n-1)
        prefixes = positions.unsqueeze(1) < prefix_lengths.view(1, n - 1, 1)
        values = _evaluate(game, m, prefixes.reshape(rows * (n - 1), n)).view(rows, n - 1)
        chain = torch.cat(
            [v_empty.expand(rows, 1), values, v_full.expand(rows, 1)], dim=1
        )  # chain[:, t] = v(prefix of length t)
        marginal_at_position = chain.diff(dim=1)  # (rows, n)
        phi += marginal_at_position.gather(1, positions).sum(dim=0)
    return (phi / n_samples).to(out_dtype)


def kernel_shapley(
    game: GameFunction,
    m: Tensor,
    n_samples: int,
    seed: int = 0,
    paired: bool = True,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Tensor:
    r"""Unbiased KernelSHAP estimate of the Shapley values (Covert & Lee, 2021).

    KernelSHAP (Lundberg & Lee, 2017) characterises the Shapley values as the solution of the
    efficiency-constrained weighted least squares problem

    .. math::

        \min_\phi\; E_{z \sim p}\bigl[(v(z) - v(\emptyset) - z^T\phi)^2\bigr]
        \quad \text{s.t.} \quad \mathbf{1}^T\phi = v(N) - v(\emptyset),

    with :math:`p` the Shapley kernel distribution over non-empty proper subsets: a size
    :math:`k \in \{1..n-1\}` drawn with :math:`p(k) \propto (n - 1) / (k (n - k))`, then a
    uniformly random subset of that size.  Its solution is

    .. math::

        \phi = A^{-1}\Bigl(b - \mathbf{1}\,
            \frac{\mathbf{1}^T A^{-1} b - v(N) + v(\emptyset)}{\mathbf{1}^T A^{-1}\mathbf{1}}
        \Bigr), \qquad A = E[z z^T], \quad b = E[z\,(v(z) - v(\emptyset))].

    Following Covert & Lee (2021), :math:`A` is known in closed form
    (:func:`shapley_kernel_matrix`) and only :math:`b` is estimated, by the sample mean
    :math:`\hat b` over ``n_samples`` kernel samples.  As :math:`\phi` is affine in :math:`b`,
    the estimate is unbiased, and it satisfies efficiency exactly for every sample.  The
    structure :math:`A = d I + c\,\mathbf{1}\mathbf{1}^T` reduces the solve to
    :math:`\phi = 2 H_{n-1} (\hat b - \bar{\hat b}) + (v(N) - v(\emptyset)) / n`.
    Sampling sizes from :math:`p(k)` directly (instead of weighting enumerated subsets by
    :math:`1 / \binom{n}{k}`) avoids any overflow or underflow for large ``n``.

    With ``paired=True`` samples come in pairs :math:`(z, \mathbf{1} - z)` (the paired
    sampling of Covert & Lee, 2021); since :math:`p(k) = p(n - k)` the complement is again
    kernel distributed, so the estimate stays unbiased (also for odd ``n_samples``, where
    the last pair is truncated).

    For ``n = 1`` the kernel distribution is empty (there is no non-empty proper subset) and
    :math:`\phi = v(N) - v(\emptyset)` by efficiency; for ``n = 2`` it has only the two
    singletons, each with probability 1/2, so :math:`b` is computed exactly from them.  In
    both cases the result is the exact Shapley value, obtained without sampling (and
    ``n_samples`` / ``seed`` are ignored beyond validation).

    Args:
        game (GameFunction): Value function ``game(m, coalitions) -> Tensor[k]``; see
                    :data:`GameFunction`.
        m (Tensor): The ``(n, n)`` influence matrix, passed to ``game`` unchanged.
        n_samples (int): Number of sampled coalitions (one game evaluation each, plus two
                    for :math:`v(\emptyset)` and :math:`v(N)`), ``>= 1``.
        seed (int, optional): Seed of the private :class:`torch.Generator`; the result is a
                    deterministic function of the inputs and ``seed``.
                    Default: 0
        paired (bool, optional): Sample coalitions in (z, complement of z) pairs.
                    Default: True
        batch_size (int, optional): Number of coalitions per ``game`` call.
                    Default: ``2**14``

    Returns:
        Tensor: ``phi`` of shape ``(n,)`` in the dtype of ``m`` (float64 if ``m`` is not
        floating point), with ``phi.sum() == v(N) - v(empty)`` up to rounding.

    Examples::

        >>> import torch
        >>> from captum_attn_shapley.shapley.estimators import kernel_shapley
        >>> def game(m, coalitions):  # v(S) = s^T m s
        ...     s = coalitions.to(m.dtype)
        ...     return torch.einsum("ki,ij,kj->k", s, m, s)
        >>> m = torch.rand(20, 20, dtype=torch.float64)
        >>> phi = kernel_shapley(game, m, n_samples=4096, seed=0)
        >>> phi.shape
        torch.Size([20])
        >>> torch.allclose(phi.sum(), m.sum())  # efficiency: v(N) - v(empty)
        True
    """
    n = _check_matrix(m)
    n_samples = _check_positive_int(n_samples, "n_samples")
    seed = _check_seed(seed)
    batch_size = _check_positive_int(batch_size, "batch_size")
    out_dtype = _out_dtype(m)
    device = m.device
    if n <= 2:
        return exact_shapley(game, m, max_players=2, batch_size=batch_size)

    v_empty, v_full = _empty_and_full(game, m, n)
    generator = _make_generator(seed)
    per_call = batch_size
    if paired:
        per_call = max(2, per_call - per_call % 2)
    b_sum = torch.zeros(n, dtype=torch.float64, device=device)
    for rows in _chunk_sizes(n_samples, per_call):
        z = _sample_kernel_coalitions(rows, n, generator, paired).to(device)
        values = _evaluate(game, m, z) - v_empty
        b_sum += z.to(torch.float64).T @ values
    phi = _kernel_solve(b_sum / n_samples, v_full - v_empty, n)
    return phi.to(out_dtype)
