"""Evaluation metrics of attributions: faithfulness to the model and localisation in a known region."""

from captum_attn_shapley.metrics.f1 import f1_of_predictions, sufficiency_f1, sufficiency_predictions
from captum_attn_shapley.metrics.faithfulness import (
    FaithfulnessCurves,
    comprehensiveness,
    faithfulness_curves,
    sufficiency,
)
from captum_attn_shapley.metrics.localisation import mass_inside, pointing_game
from captum_attn_shapley.metrics.token_selection import (
    DEFAULT_BINS,
    NAMED_REPLACEMENTS,
    Replacement,
    check_bins,
    resolve_replacement,
    resolve_special_token_ids,
    selection_size,
    token_scores,
    top_players,
)

__all__ = [
    "DEFAULT_BINS",
    "FaithfulnessCurves",
    "NAMED_REPLACEMENTS",
    "Replacement",
    "check_bins",
    "comprehensiveness",
    "f1_of_predictions",
    "faithfulness_curves",
    "mass_inside",
    "pointing_game",
    "resolve_replacement",
    "resolve_special_token_ids",
    "selection_size",
    "sufficiency",
    "sufficiency_f1",
    "sufficiency_predictions",
    "token_scores",
    "top_players",
]
