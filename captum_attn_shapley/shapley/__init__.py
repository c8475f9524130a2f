"""Model-free cooperative games on an influence matrix and their Shapley values.

The closed forms of the attention games (:mod:`.games`) and the general solvers that check them
(:mod:`.estimators`: enumeration, permutation sampling, KernelSHAP).
"""

from captum_attn_shapley.shapley.estimators import (
    GameFunction,
    exact_shapley,
    grand_coalition_gain,
    kernel_shapley,
    permutation_shapley,
    shapley_kernel_matrix,
)
from captum_attn_shapley.shapley.games import (
    BUILTIN_GAMES,
    PAIR_GAMES,
    game_function,
    grand_coalition_value,
    grand_coalition_value_from_sums,
    pair_weights,
    shapley_values,
    shapley_values_from_sums,
)

__all__ = [
    "BUILTIN_GAMES",
    "PAIR_GAMES",
    "GameFunction",
    "exact_shapley",
    "game_function",
    "grand_coalition_gain",
    "grand_coalition_value",
    "grand_coalition_value_from_sums",
    "kernel_shapley",
    "pair_weights",
    "permutation_shapley",
    "shapley_kernel_matrix",
    "shapley_values",
    "shapley_values_from_sums",
]
