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

Three estimators are provided, one module each:

* :func:`exact_shapley` (:mod:`.exact`) enumerates all :math:`2^n` coalitions (vectorised, in batches).
* :func:`permutation_shapley` (:mod:`.permutation`) is the unbiased permutation sampling estimator of
  Castro et al. (2009), optionally with antithetic (reversed) permutations.
* :func:`kernel_shapley` (:mod:`.kernel`) is the unbiased KernelSHAP estimator of Covert & Lee (2021), which
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

from captum_attn_shapley.shapley._estimation import (
    DEFAULT_PERTURBATIONS_PER_EVAL,
    GameFunction,
    grand_coalition_gain,
)
from captum_attn_shapley.shapley.exact import exact_shapley
from captum_attn_shapley.shapley.kernel import kernel_shapley, shapley_kernel_matrix
from captum_attn_shapley.shapley.permutation import permutation_shapley

__all__ = [
    "DEFAULT_PERTURBATIONS_PER_EVAL",
    "GameFunction",
    "exact_shapley",
    "grand_coalition_gain",
    "kernel_shapley",
    "permutation_shapley",
    "shapley_kernel_matrix",
]
