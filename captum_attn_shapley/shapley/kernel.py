#!/usr/bin/env python3
"""KernelSHAP (Covert & Lee, 2021): the Shapley kernel, its exact second moment and the estimator."""

import math

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
)
from captum_attn_shapley.shapley.exact import exact_shapley


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

        >>> from captum_attn_shapley.shapley import shapley_kernel_matrix
        >>> shapley_kernel_matrix(3)
        tensor([[0.5000, 0.1667, 0.1667],
                [0.1667, 0.5000, 0.1667],
                [0.1667, 0.1667, 0.5000]], dtype=torch.float64)
    """
    n = check_positive_int(n, "n")
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


@renamed_keyword("batch_size", "perturbations_per_eval")
def kernel_shapley(
    game: GameFunction,
    m: Tensor,
    n_samples: int,
    seed: int = 0,
    paired: bool = True,
    *,
    perturbations_per_eval: int = DEFAULT_PERTURBATIONS_PER_EVAL,
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
        perturbations_per_eval (int, optional): Number of coalitions per ``game`` call.
                    Default: ``2**14``. Formerly ``batch_size`` (deprecated alias, removed in
                    the next release).

    Returns:
        Tensor: ``phi`` of shape ``(n,)`` in the dtype of ``m`` (float64 if ``m`` is not
        floating point), with ``phi.sum() == v(N) - v(empty)`` up to rounding.

    Examples::

        >>> import torch
        >>> from captum_attn_shapley.shapley import kernel_shapley
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
    n = check_matrix(m)
    n_samples = check_positive_int(n_samples, "n_samples")
    seed = check_seed(seed)
    perturbations_per_eval = check_positive_int(perturbations_per_eval, "perturbations_per_eval")
    out_dtype = result_dtype(m)
    device = m.device
    if n <= 2:
        return exact_shapley(game, m, max_players=2, perturbations_per_eval=perturbations_per_eval)

    v_empty, v_full = empty_and_full(game, m, n)
    generator = make_generator(seed)
    per_call = perturbations_per_eval
    if paired:
        per_call = max(2, per_call - per_call % 2)
    b_sum = torch.zeros(n, dtype=torch.float64, device=device)
    for rows in chunk_sizes(n_samples, per_call):
        z = _sample_kernel_coalitions(rows, n, generator, paired).to(device)
        values = evaluate(game, m, z) - v_empty
        b_sum += z.to(torch.float64).T @ values
    phi = _kernel_solve(b_sum / n_samples, v_full - v_empty, n)
    return phi.to(out_dtype)
