"""Evaluation metrics of attributions: faithfulness to the model and localisation in a known region."""

from captum_attn_shapley.metrics.faithfulness import (
    DEFAULT_BINS,
    FaithfulnessCurves,
    comprehensiveness,
    f1_of_predictions,
    faithfulness_curves,
    sufficiency,
    sufficiency_f1,
    sufficiency_predictions,
)
from captum_attn_shapley.metrics.localisation import mass_inside, pointing_game

__all__ = [
    "DEFAULT_BINS",
    "FaithfulnessCurves",
    "comprehensiveness",
    "f1_of_predictions",
    "faithfulness_curves",
    "mass_inside",
    "pointing_game",
    "sufficiency",
    "sufficiency_f1",
    "sufficiency_predictions",
]
